"""``.npz`` files read and written a block of rows at a time, never unpickled.

:class:`NpzReader` opens an archive's ``.npy`` members and hands out consecutive
rows of each, so a batch larger than memory is hashed and copied in blocks. Stored
members (what :func:`numpy.savez` writes) are read straight from the file; deflated
ones (:func:`numpy.savez_compressed`) are decompressed as they are read; both end
with the zip CRC check. A Fortran-ordered member has no consecutive rows on disk and
is read whole.

:class:`NpzWriter` writes members as :func:`numpy.savez` does (stored, zip64, a
version 1.0 ``.npy`` header), block by block, with a fixed timestamp so that the
same arrays always give the same bytes (and the same object name in a store).
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Callable, Iterator
from typing import IO

import numpy as np

from poisonlab.errors import DataError

#: Rows read or written at once, at most (fewer for wide rows: see :func:`block_rows`).
CHUNK_ROWS = 2**16
#: Bytes of one block of rows, at most (a single row wider than this is its own block).
CHUNK_BYTES = 16 * 2**20
#: Zip timestamps are part of an object's bytes: a fixed one keeps objects content-addressed.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def block_rows(row_bytes: int, rows: int | None = None) -> int:
    """Rows per block for rows of ``row_bytes`` bytes: ``rows`` (default :data:`CHUNK_ROWS`) or fewer."""
    rows = CHUNK_ROWS if rows is None else rows
    if rows < 1:
        raise DataError(f"a block holds at least one row, got {rows}")
    return max(1, min(rows, CHUNK_BYTES // max(1, row_bytes)))


class Member:
    """One ``.npy`` member of an open archive, read in consecutive rows."""

    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self.name = name
        self._fp: IO[bytes] = archive.open(f"{name}.npy")
        self._whole: np.ndarray | None = None
        version = np.lib.format.read_magic(self._fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(self._fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(self._fp)
        else:
            raise DataError(f"{name}.npy: .npy format version {version} is not supported")
        if dtype.hasobject:
            raise DataError("holds object arrays, which poisonlab never unpickles")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype: np.dtype = dtype
        self.row_bytes = dtype.itemsize * math.prod(self.shape[1:])
        self.done = 0
        if fortran and len(self.shape) > 1:
            size = math.prod(self.shape) * dtype.itemsize
            self._whole = self._read_bytes(size).reshape(self.shape, order="F")

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    def _read_bytes(self, size: int) -> np.ndarray:
        with errors_as_data():  # a bad CRC or a broken deflate stream shows only now
            data = self._fp.read(size)
        if len(data) != size:
            raise DataError(f"{self.name}.npy is truncated")
        return np.frombuffer(data, dtype=self.dtype)

    def read(self, rows: int) -> np.ndarray:
        """The next ``rows`` rows (fewer at the end), in the member's dtype."""
        if not self.shape:
            if self.done:
                return np.zeros(0, dtype=self.dtype)
            self.done = 1
            return self._read_bytes(self.dtype.itemsize).reshape(())
        count = min(rows, self.shape[0] - self.done)
        start, self.done = self.done, self.done + count
        if self._whole is not None:
            return self._whole[start : self.done]
        return self._read_bytes(count * self.row_bytes).reshape(count, *self.shape[1:])

    def rest(self) -> np.ndarray:
        """Every row not read yet."""
        return self.read(len(self) - self.done)

    def close(self) -> None:
        self._fp.close()


class NpzReader:
    """An ``.npz`` archive whose members are read in blocks; any parse failure is a :class:`DataError`.

    Use as a context manager; :meth:`member` opens a member (several may be open at once).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self._archive = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise DataError("file missing") from None
        except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
            raise DataError(f"not a zip archive of arrays ({exc})") from None
        self.names = [n[: -len(".npy")] for n in self._archive.namelist() if n.endswith(".npy")]
        self._open: list[Member] = []

    def member(self, name: str) -> Member:
        if name not in self.names:
            raise DataError(f"lacks array(s) {[name]}")
        with errors_as_data():
            member = Member(self._archive, name)
        self._open.append(member)
        return member

    def close(self) -> None:
        for member in self._open:
            with contextlib.suppress(Exception):
                member.close()
        self._archive.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def errors_as_data() -> Iterator[None]:
    """Any failure to parse untrusted bytes becomes one :class:`DataError` line."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError("file missing") from None
    except Exception as exc:
        raise DataError(f"unreadable ({type(exc).__name__}: {str(exc)[:120]})") from exc


class NpzWriter:
    """Writes an ``.npz`` into an open, seekable binary file, one member at a time."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._zip = zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    @contextlib.contextmanager
    def member(
        self, name: str, dtype: np.dtype, shape: tuple[int, ...]
    ) -> Iterator[Callable[[np.ndarray], None]]:
        """A member of ``shape`` and ``dtype``; the yielded function appends rows, which must add up."""
        info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
        info.compress_type = zipfile.ZIP_STORED
        written = 0
        with self._zip.open(info, "w", force_zip64=True) as fid:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(fid, header)

            def write(rows: np.ndarray) -> None:
                nonlocal written
                rows = np.ascontiguousarray(rows, dtype=dtype)
                written += rows.shape[0] if rows.ndim else 1
                fid.write(rows.reshape(-1).view(np.uint8).data)

            yield write
        expected = shape[0] if shape else 1
        if written != expected:
            raise ValueError(f"{name}: wrote {written} rows of {expected}")

    def array(self, name: str, array: np.ndarray) -> None:
        """A whole array as one member, written a block at a time."""
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise DataError(f"{name}: object arrays are never stored")
        with self.member(name, array.dtype, array.shape) as write:
            if array.ndim == 0:
                write(array)
                return
            step = block_rows(array.dtype.itemsize * math.prod(array.shape[1:]))
            for start in range(0, array.shape[0], step):
                write(array[start : start + step])

    def close(self) -> None:
        self._zip.close()
