"""The content-addressed object store of a ledger: ``objects/ab/abcdef….npz``.

An object's name is the SHA-256 hex of its file bytes. Objects are ``.npz`` files
written uncompressed, as :func:`numpy.savez` writes them but a block of rows at a
time (:mod:`.npz`) and with a fixed zip timestamp, to a temporary ``.tmp-*`` name at
the top of the store, fsynced, hashed, then renamed into place, so a reader never
sees half a file and a crash leaves at worst an orphan (a ``.tmp-*`` file or an
object no record refers to). They are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from poisonlab.errors import DataError
from poisonlab.provenance.npz import NpzWriter

DIGEST_CHARS = frozenset("0123456789abcdef")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    """SHA-256 hex of a file's bytes (``OSError`` if it cannot be read)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_digest(text: object) -> bool:
    """Whether ``text`` looks like a SHA-256 hex digest."""
    return isinstance(text, str) and len(text) == 64 and set(text) <= DIGEST_CHARS


#: Age after which a ``.tmp-*`` file in the store is a leftover of a killed writer (seconds).
STALE_AFTER = 3600.0


class ObjectStore:
    """Immutable ``.npz`` objects named by the SHA-256 of their bytes, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        """Where the object ``digest`` lives.

        ``digest`` comes from the database or a membership object, both editable by
        hand: anything but a SHA-256 hex digest (``../../x``) is a :class:`DataError`,
        so a record can never make the ledger read a file outside its store.
        """
        if not is_digest(digest):
            raise DataError(f"object name {digest!r} is not a SHA-256 digest")
        return self.root / digest[:2] / f"{digest}.npz"

    def put(self, **arrays: np.ndarray) -> str:
        """Store the arrays as one ``.npz`` object and return its digest (idempotent)."""

        def fill(writer: NpzWriter) -> None:
            for name, array in arrays.items():
                writer.array(name, array)

        return self.write(fill)

    def write(self, fill: Callable[[NpzWriter], None]) -> str:
        """Store the ``.npz`` that ``fill`` writes member by member; return its digest (idempotent).

        The object goes to a temporary file in the store's folder (never whole in
        memory), is fsynced and hashed, then renamed into place; if ``fill`` raises,
        the temporary file is removed and nothing is stored.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "w+b") as handle:
                writer = NpzWriter(handle)
                try:
                    fill(writer)
                finally:
                    writer.close()  # also on failure: an open zip would write into a closed file later
                handle.flush()
                os.fsync(handle.fileno())
                handle.seek(0)
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            target = self.path(digest)
            if target.exists():
                with contextlib.suppress(OSError):
                    if file_digest(target) == digest:
                        os.unlink(tmp)
                        return digest
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.root)  # make the new fan-out folder itself durable
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(target.parent)
        fsync_dir(self.root)  # the temporary name is gone from here
        return digest

    def spool(self) -> IO[bytes]:
        """An anonymous scratch file beside the objects: gone when closed, or when the process dies."""
        self.root.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=self.root)

    def get(self, digest: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The named arrays of object ``digest``; :class:`DataError` if it is missing or unreadable."""
        return read_arrays(self.path(digest), names)

    def remove_stale_temporaries(self, older_than: float = STALE_AFTER) -> list[Path]:
        """Delete ``.tmp-*`` files left by writes killed mid-way, if older than ``older_than`` seconds.

        A live writer's temporary file exists only while it writes one object (seconds);
        one older than an hour belongs to a writer that no longer runs. Returns what was removed.
        """
        import time

        cutoff = time.time() - older_than
        removed = []
        for path in self.all_objects():
            if path.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):  # another process may remove it first
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed.append(path)
        return removed

    def all_objects(self) -> list[Path]:
        """Every file under the store (objects, and leftover temporary files, also at its top)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in [*self.root.glob(".tmp-*"), *self.root.glob("*/*")] if p.is_file())


def read_arrays(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load arrays ``names`` from an ``.npz`` without pickle; :class:`DataError` on any failure."""
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise DataError(f"lacks array(s) {missing}")
            return {name: archive[name] for name in names}
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError("file missing") from None
    except Exception as exc:  # any parse failure of untrusted bytes is a data problem
        raise DataError(f"unreadable ({type(exc).__name__}: {str(exc)[:120]})") from exc


def read_arrays_ignoring_crc(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Like :func:`read_arrays`, but read stored members byte by byte without the zip CRC check.

    Used only to say *which* sample of a damaged shard differs: a flipped byte in an
    array fails the CRC, and the normal reader refuses the whole file.
    """
    try:
        with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
            out: dict[str, np.ndarray] = {}
            for name in names:
                info = archive.getinfo(f"{name}.npy")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise DataError("compressed member")
                handle.seek(info.header_offset)
                local = handle.read(30)
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                handle.seek(info.header_offset + 30 + name_len + extra_len)
                raw = handle.read(info.compress_size)
                out[name] = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
            return out
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"unreadable ({type(exc).__name__})") from exc


SHARD_ARRAYS = ("X", "y", "ids")
MEMBERSHIP_ARRAYS = ("hashes", "shard", "row", "shards", "ids", "source", "sources")


@dataclass(frozen=True, eq=False)
class Membership:
    """Which stored samples a version holds, in order.

    Sample ``i`` is row ``row[i]`` of shard ``shards[shard[i]]``, has sample hash
    ``hashes[i]`` and id ``ids[i]``, and came from source ``sources[source[i]]``.
    """

    hashes: np.ndarray
    shard: np.ndarray
    row: np.ndarray
    shards: np.ndarray
    ids: np.ndarray
    source: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in MEMBERSHIP_ARRAYS}

    @classmethod
    def load(cls, store: ObjectStore, digest: str) -> Membership:
        arrays = store.get(digest, MEMBERSHIP_ARRAYS)
        return cls(**arrays)

    def subset(self, keep: np.ndarray) -> Membership:
        """The samples where ``keep`` is true, in the same order."""
        return Membership(
            hashes=self.hashes[keep],
            shard=self.shard[keep],
            row=self.row[keep],
            shards=self.shards,
            ids=self.ids[keep],
            source=self.source[keep],
            sources=self.sources,
        )

    def source_names(self) -> np.ndarray:
        """Per-sample source names (unicode)."""
        if len(self) == 0:
            return np.zeros(0, dtype="<U1")
        return self.sources[self.source]


def empty_membership(ids_dtype: np.dtype) -> Membership:
    """The membership of an empty version."""
    return Membership(
        hashes=np.zeros((0, 32), dtype=np.uint8),
        shard=np.zeros(0, dtype=np.int32),
        row=np.zeros(0, dtype=np.int64),
        shards=np.zeros(0, dtype="<U64"),
        ids=np.zeros(0, dtype=ids_dtype),
        source=np.zeros(0, dtype=np.int32),
        sources=np.zeros(0, dtype="<U1"),
    )


def _index_of(values: list[str], value: str) -> tuple[list[str], int]:
    if value in values:
        return values, values.index(value)
    return [*values, value], len(values)


def extended(
    parent: Membership, *, hashes: np.ndarray, shard: str, ids: np.ndarray, sources: str | np.ndarray
) -> Membership:
    """``parent`` followed by every row of ``shard``; ``sources`` is one name or one per row."""
    shard_list, shard_index = _index_of(parent.shards.tolist(), shard)
    source_list = parent.sources.tolist()
    n = hashes.shape[0]
    if isinstance(sources, str):
        source_list, k = _index_of(source_list, sources)
        source_index = np.full(n, k, dtype=np.int32)
    else:
        names, inverse = np.unique(sources, return_inverse=True)
        mapping = np.empty(len(names), dtype=np.int32)
        for k, name in enumerate(names.tolist()):
            source_list, mapping[k] = _index_of(source_list, name)
        source_index = mapping[inverse.reshape(-1)]
    return Membership(
        hashes=np.concatenate([parent.hashes, hashes]),
        shard=np.concatenate([parent.shard, np.full(n, shard_index, dtype=np.int32)]),
        row=np.concatenate([parent.row, np.arange(n, dtype=np.int64)]),
        shards=np.array(shard_list, dtype="<U64"),
        ids=np.concatenate([parent.ids, ids]) if len(parent) else ids,
        source=np.concatenate([parent.source, source_index]).astype(np.int32),
        sources=np.array(source_list) if source_list else np.zeros(0, dtype="<U1"),
    )
