"""The provenance ledger: signed batches, versions and a hash-chained event log.

A ledger is a folder::

    DIR/ledger.sqlite     meta, events (the hash chain), batches, versions
    DIR/objects/ab/ab….npz  shards (the arrays of a batch, bit-exact) and version
                            memberships, named by the SHA-256 of their bytes

Every write is one SQLite transaction started with ``BEGIN IMMEDIATE`` (so writers
from several processes serialise and each rereads the chain head under the lock); a
writer that waits longer than :data:`BUSY_TIMEOUT` for the lock gets
:class:`~poisonlab.errors.LedgerBusy` and may simply try again;
objects are written and fsynced *before* the commit, so a process killed at
any point leaves the batch either fully recorded or not recorded at all (at worst
an orphan object, which :meth:`Ledger.verify` reports as a note).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from poisonlab.errors import ConfigError, DataError, IntegrityError, LedgerBusy, LedgerError
from poisonlab.provenance.chain import (
    as_ids_like,
    batch_message,
    canonical_json,
    default_actor,
    describe_schema,
    event_hash,
    genesis_hash,
    json_dict,
    now,
    positions,
    schema_of,
    text_option,
)
from poisonlab.provenance.hashing import check_arrays, check_unique_ids, sample_hashes
from poisonlab.provenance.merkle import MerkleAccumulator, merkle_root
from poisonlab.provenance.npz import NpzReader, NpzWriter, block_rows
from poisonlab.provenance.reader import ArrayBatch, BatchReader
from poisonlab.provenance.records import Batch, Diff, Event, Quarantined, VerifyReport, Version
from poisonlab.provenance.shards import write_extended_membership, write_shard
from poisonlab.provenance.signing import Ed25519PrivateKey, load_private_key, public_key_hex, sign
from poisonlab.provenance.store import (
    SHARD_ARRAYS,
    Membership,
    ObjectStore,
    empty_membership,
    extended,
    fsync_dir,
    is_digest,
)

if TYPE_CHECKING:
    from poisonlab.data.dataset import Dataset, Task
    from poisonlab.provenance.scans import ScanReport

FORMAT = "poisonlab-ledger"
FORMAT_VERSION = 1
DB_NAME = "ledger.sqlite"
#: Seconds a writer waits for another process's write lock before :class:`LedgerBusy`.
BUSY_TIMEOUT = 120.0
#: SQLite's primary result codes for a lock held elsewhere (an extended code's low byte).
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL,
    payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    shard TEXT NOT NULL, n INTEGER NOT NULL, root TEXT NOT NULL, public_key TEXT, signature TEXT);
CREATE TABLE versions (
    number INTEGER PRIMARY KEY, parent INTEGER, event_seq INTEGER NOT NULL, root TEXT NOT NULL,
    n INTEGER NOT NULL, membership TEXT NOT NULL, schema TEXT NOT NULL);
"""

# Tests set this to stop a writer at a named point ("shard-written", "before-commit").
_crash_hook: Callable[[str], None] | None = None


def _checkpoint(stage: str) -> None:
    if _crash_hook is not None:
        _crash_hook(stage)


def _connect(db_path: Path, *, create: bool) -> sqlite3.Connection:
    uri = db_path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT)


def _is_damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file corrupt or not a database at all (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (11, 26)


def _is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite gave up waiting for a lock another connection holds.

    Decided here, in the library, from SQLite's result code (its message where the
    driver gives no code), so no caller ever reads an exception's text.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _BUSY_CODES
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _write_error(exc: sqlite3.Error, path: Path) -> LedgerError:
    """The ledger error for a failed write: busy (try again) or any other refusal, one line each."""
    if _is_busy(exc):
        return LedgerBusy(f"the ledger {path} is locked by another writer; try again")
    return LedgerError(f"the ledger {path} cannot be written ({exc})")


def _set_pragmas(db: sqlite3.Connection) -> None:
    """WAL so readers never block the writer; FULL so a committed event survives a power cut."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")


class Ledger:
    """A provenance ledger in a folder; use :meth:`init` or :meth:`open`, ideally as a context manager.

    Every write (``add``, ``transform``, ``quarantine``, ``rollback``) raises
    :class:`~poisonlab.errors.LedgerBusy` when another process held the write lock for
    longer than :data:`BUSY_TIMEOUT` (nothing was recorded: try again), and
    :class:`~poisonlab.errors.LedgerError` when SQLite refuses it otherwise (a
    read-only or full disk). Reads raise :class:`~poisonlab.errors.IntegrityError` when
    what the ledger stores no longer matches its hashes.

    Examples
    --------
    >>> with Ledger.init(folder) as ledger:                       # doctest: +SKIP
    ...     v1 = ledger.add(X, y, ids, source="vendor-a")
    ...     report = ledger.verify()
    """

    def __init__(self, path: Path, db: sqlite3.Connection, meta: dict[str, str]) -> None:
        self.path = path
        self._db = db
        self._store = ObjectStore(path / "objects")
        self._genesis = genesis_hash(meta)
        self._checked: tuple[Any, ...] | None = None  # the record state last found intact

    # -- opening and closing ---------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> Ledger:
        """Create a ledger in folder ``path`` (made if missing).

        Raises
        ------
        ConfigError
            If ``path`` is already a ledger, or is a file.
        """
        path = Path(path)
        db_path = path / DB_NAME
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a folder")
        if db_path.exists():
            try:
                cls.open(path).close()
            except ConfigError:
                raise ConfigError(f"{db_path} exists and is not a poisonlab ledger") from None
            except IntegrityError:  # damaged: never initialise over it
                raise
            except LedgerError:  # a ledger this poisonlab cannot read, still a ledger
                pass
            raise ConfigError(f"{path} is already a poisonlab ledger")
        (path / "objects").mkdir(parents=True, exist_ok=True)
        # Build the database under a private name and link it into place only when complete:
        # a kill midway leaves no half-made ledger.sqlite, and of two inits racing, one wins
        # and the other is told the folder is already a ledger.
        fd, tmp_name = tempfile.mkstemp(dir=path, prefix=f".{DB_NAME}.", suffix=".init")
        os.close(fd)
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the ledger from the team that reads it
        try:
            db = _connect(tmp, create=True)
            try:
                db.execute("PRAGMA journal_mode=DELETE")  # no -wal file to carry across the link
                db.execute("PRAGMA synchronous=FULL")  # the commit reaches the disk
                db.execute("BEGIN IMMEDIATE")
                for statement in _TABLES.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("format", FORMAT), ("format_version", str(FORMAT_VERSION)), ("created", now())],
                )
                db.execute("COMMIT")
                db.execute("PRAGMA journal_mode=WAL")  # recorded in the file's header
            finally:
                db.close()
            try:
                os.link(tmp, db_path)  # unlike a rename, fails if another init got there first
            except FileExistsError:
                raise ConfigError(f"{path} is already a poisonlab ledger") from None
            fsync_dir(path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Ledger:
        """Open an existing ledger.

        Raises
        ------
        ConfigError
            If ``path`` is not a ledger.
        LedgerError
            If it is a ledger in a format this poisonlab cannot read.
        """
        path = Path(path)
        not_ledger = ConfigError(f"{path} is not a poisonlab ledger (run `poisonlab ledger init {path}`)")
        db_path = path / DB_NAME
        if not db_path.is_file():
            raise not_ledger
        try:
            db = _connect(db_path, create=False)
        except sqlite3.Error:
            raise not_ledger from None
        try:  # look before setting WAL: never convert somebody else's database
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            db.close()
            if _is_damaged(exc):  # a file that was a database and is no longer readable as one
                raise IntegrityError(
                    f"{db_path} exists but is damaged ({exc}); restore it from a copy, it cannot be read"
                ) from None
            raise not_ledger from None
        except sqlite3.Error:
            db.close()
            raise not_ledger from None
        if meta.get("format") != FORMAT:
            db.close()
            raise not_ledger
        if meta.get("format_version") != str(FORMAT_VERSION):
            db.close()
            raise LedgerError(
                f"{path}: ledger format version {meta.get('format_version')} is not supported "
                f"(this poisonlab reads version {FORMAT_VERSION})"
            )
        try:
            _set_pragmas(db)
        except sqlite3.Error as exc:
            db.close()
            raise _write_error(exc, path) from exc
        return cls(path, db, meta)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite's refusals become :class:`LedgerBusy` or :class:`LedgerError`."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # waited BUSY_TIMEOUT for another writer's lock
            raise _write_error(exc, self.path) from exc
        try:
            self._check_records()  # never extend a chain that no longer holds together
            yield self._db
            _checkpoint("before-commit")
            self._db.execute("COMMIT")
            self._checked = self._record_state()
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):  # a full disk, a read-only file, a lost lock
                raise _write_error(exc, self.path) from exc
            raise

    # -- reading records -------------------------------------------------------
    def _record_state(self) -> tuple[Any, ...]:
        """What changes whenever a writer commits: the last event, and the row counts."""
        return self._db.execute(
            "SELECT (SELECT MAX(seq) FROM events), (SELECT hash FROM events ORDER BY seq DESC LIMIT 1), "
            "(SELECT COUNT(*) FROM batches), (SELECT COUNT(*) FROM versions)"
        ).fetchone()  # type: ignore[no-any-return]

    def _check_records(self) -> None:
        """Refuse a ledger whose database fails verify's record checks (chain, genesis, rows vs events).

        Objects are not re-hashed here (reading a version checks its samples); the
        result is kept until another writer commits.
        """
        from poisonlab.provenance.verify import verify_ledger

        state = self._record_state()
        if state == self._checked:
            return
        report = verify_ledger(self._db, self._store, objects=False)
        if not report.ok:
            raise IntegrityError(f"{report.first_problem} (run `poisonlab ledger verify`)")
        self._checked = state

    def versions(self) -> list[Version]:
        """Every version, oldest first."""
        self._check_records()
        rows = self._db.execute("SELECT * FROM versions ORDER BY number").fetchall()
        return [_version(row) for row in rows]

    def _head(self) -> Version | None:
        self._check_records()
        row = self._db.execute("SELECT * FROM versions ORDER BY number DESC LIMIT 1").fetchone()
        return None if row is None else _version(row)

    def head(self) -> Version:
        """The latest version; :class:`ConfigError` if nothing was added yet."""
        head = self._head()
        if head is None:
            raise ConfigError(f"the ledger {self.path} has no versions yet (add a batch first)")
        return head

    def version(self, version: int | str | Version) -> Version:
        """Version ``version``: a number, ``"head"``/``"HEAD"``, or a :class:`Version`.

        Raises
        ------
        ConfigError
            If there is no such version.
        """
        self._check_records()
        if isinstance(version, Version):
            version = version.number
        if isinstance(version, str):
            if version.lower() == "head":
                return self.head()
            text = version.strip()
            if not (text.isascii() and text.isdigit()):  # "²".isdigit() is true, int("²") fails
                raise ConfigError(f"a version is a number or 'head', got {version!r}")
            version = int(text)
        number = int(version)
        row = None
        if 0 <= number < 2**63:  # SQLite integers are 64-bit; a larger one would be an OverflowError
            row = self._db.execute("SELECT * FROM versions WHERE number = ?", (number,)).fetchone()
        if row is None:
            count = self._db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
            known = f"versions 1..{count}" if count else "no versions yet"
            raise ConfigError(f"no version {version}; the ledger has {known}")
        return _version(row)

    def log(self) -> list[Event]:
        """Every event of the chain, oldest first.

        Raises
        ------
        IntegrityError
            If the chain or a record no longer agrees with its hashes.
        """
        self._check_records()
        events = []
        rows = self._db.execute("SELECT * FROM events ORDER BY seq").fetchall()
        for seq, time, actor, kind, text, prev, digest in rows:
            try:
                payload = json.loads(text)
            except (TypeError, ValueError):
                raise IntegrityError(f"event {seq}: the payload is not JSON (run verify)") from None
            if not isinstance(payload, dict):  # every event's payload is an object: anything else was edited
                raise IntegrityError(
                    f"event {seq}: the payload is a JSON {type(payload).__name__}, not an object "
                    "(run `poisonlab ledger verify`)"
                )
            events.append(Event(seq, time, actor, kind, payload, prev, digest))
        return events

    def batches(self) -> list[Batch]:
        """Every stored shard (added batches and transform outputs), oldest first."""
        rows = self._db.execute("SELECT * FROM batches ORDER BY id").fetchall()
        return [Batch(*row) for row in rows]

    def quarantined(self) -> list[Quarantined]:
        """Every quarantined sample with the event that quarantined it (samples stay stored)."""
        out = []
        for event in self.log():
            if event.kind == "quarantine":
                for sample_id, digest in zip(
                    event.payload["ids"], event.payload["sample_hashes"], strict=True
                ):
                    out.append(Quarantined(sample_id, event.seq, digest))
        return out

    def membership(self, version: int | str | Version) -> Membership:
        """The membership object of a version (sample hashes, ids and where each sample is stored).

        Raises
        ------
        IntegrityError
            If the object is missing, unreadable or not named by a digest, or the
            ledger's records no longer agree with their chain.
        """
        record = self.version(version)  # checks the records first
        try:
            return Membership.load(self._store, record.membership)
        except DataError as exc:  # the store holds what the ledger wrote: anything else is damage
            raise IntegrityError(f"version {record.number}: membership {record.membership}: {exc}") from None

    def arrays(
        self, version: int | str | Version = "head"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(X, y, ids, source)`` of a version, bit-exact to what was added or transformed.

        ``source`` is a unicode array naming each sample's batch source. Every sample
        is checked against its recorded hash, so a shard replaced on disk (which the
        zip CRC does not catch when the new file is well formed) is an
        :class:`IntegrityError` naming the sample, not data silently exported or scanned.

        Raises
        ------
        IntegrityError
            If a stored object is missing or damaged, or a sample differs from its hash.
        """
        record = self.version(version)
        members = self.membership(record)
        schema = record.schema
        n = len(members)
        X = np.empty((n, *schema["x_shape"]), dtype=np.dtype(schema["x_dtype"]))
        y = np.empty(n, dtype=np.dtype(schema["y_dtype"]))
        ids = np.empty(n, dtype=members.ids.dtype)
        for k, digest in enumerate(members.shards.tolist()):
            where = np.nonzero(members.shard == k)[0]
            if where.size == 0:
                continue
            try:
                shard = self._store.get(digest, SHARD_ARRAYS)
            except DataError as exc:
                raise IntegrityError(f"version {record.number}: shard {digest}: {exc}") from None
            rows = members.row[where]
            try:
                X[where], y[where], ids[where] = shard["X"][rows], shard["y"][rows], shard["ids"][rows]
            except (IndexError, ValueError, TypeError) as exc:  # a shard replaced on disk
                raise IntegrityError(
                    f"version {record.number}: shard {digest} does not fit the version ({exc})"
                ) from None
        differ = np.nonzero(np.any(sample_hashes(X, y, ids) != members.hashes, axis=1))[0]
        if differ.size:
            raise IntegrityError(
                f"version {record.number}: sample {ids[differ[0]].item()!r} does not match its "
                "recorded hash (run `poisonlab ledger verify`)"
            )
        return X, y, ids, members.source_names()

    def export(self, version: int | str | Version, path: str | os.PathLike[str]) -> Path:
        """Write a version as an ``.npz`` (``X``, ``y``, ``ids``, ``source``; no pickle); return the path."""
        X, y, ids, source = self.arrays(version)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, X=X, y=y, ids=ids, source=source)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; an export is meant to be shared
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    # -- writing ---------------------------------------------------------------
    def _append_event(self, db: sqlite3.Connection, kind: str, actor: str, payload: dict[str, Any]) -> int:
        last = db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (1, self._genesis) if last is None else (last[0] + 1, last[1])
        time = now()
        try:
            text = canonical_json(payload)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{kind}: the record holds a value JSON cannot store ({exc})") from None
        digest = event_hash(seq, prev, time, actor, kind, json.loads(text))
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, time, actor, kind, text, prev, digest)
        )
        return seq

    def _new_version(
        self,
        db: sqlite3.Connection,
        *,
        kind: str,
        actor: str,
        members: Membership,
        root: str | None,
        schema: dict[str, Any],
        payload: dict[str, Any],
        batch: dict[str, Any] | None = None,
    ) -> Version:
        """Store ``members``; record the event, the batch (if any) and the version in ``db``'s transaction."""
        root = root or merkle_root(members.hashes).hex()
        digest = self._store.put(**members.arrays())
        return self._record_version(
            db, kind=kind, actor=actor, membership=digest, n=len(members), root=root, schema=schema,
            payload=payload, batch=batch,
        )  # fmt: skip

    def _record_version(
        self,
        db: sqlite3.Connection,
        *,
        kind: str,
        actor: str,
        membership: str,
        n: int,
        root: str,
        schema: dict[str, Any],
        payload: dict[str, Any],
        batch: dict[str, Any] | None = None,
    ) -> Version:
        """Record the event, the batch (if any) and the version of a stored membership."""
        head = self._head()
        number = 1 if head is None else head.number + 1
        payload = {
            **payload,
            "version": number,
            "parent": None if head is None else head.number,
            "root": root,
            "n": n,
            "membership": membership,
            "schema": schema,
        }
        if batch is not None:
            batch_id = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM batches").fetchone()[0]
            batch = {"id": batch_id, **batch}
            payload["batch"] = batch
        seq = self._append_event(db, kind, actor, payload)
        if batch is not None:
            db.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch["id"], seq, kind, batch["source"], batch["shard"], batch["n"], batch["root"],
                 batch["public_key"], batch["signature"]),
            )  # fmt: skip
        db.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (number, payload["parent"], seq, root, n, membership, canonical_json(schema)),
        )
        return Version(number, payload["parent"], seq, root, n, membership, schema)

    def _fits(self, head: Version | None, schema: dict[str, Any], ids: np.ndarray) -> None:
        """Check that a batch with ``schema`` and ``ids`` can join the head (only the head's ids are read)."""
        if head is None:
            return
        if head.schema != schema:
            raise DataError(
                f"the batch ({describe_schema(schema)}) does not match the ledger's schema "
                f"({describe_schema(head.schema)}), fixed by its first add"
            )
        try:
            head_ids = self._store.get(head.membership, ("ids",))["ids"]
        except DataError as exc:
            raise IntegrityError(f"version {head.number}: membership {head.membership}: {exc}") from None
        taken = np.nonzero(positions(head_ids, ids) >= 0)[0]
        if taken.size:
            raise DataError(f"id {ids[taken[0]].item()!r} is already in version {head.number}")

    def add(
        self,
        X: object,
        y: object,
        ids: object,
        *,
        source: str,
        actor: str | None = None,
        sign_key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
        note: str | None = None,
    ) -> Version:
        """Store a batch as given (dtypes kept, bit-exact) and make version head + batch.

        Parameters
        ----------
        X, y, ids : arrays
            Features (one sample per row), labels and unique sample ids (integers or strings).
        source : str
            Where the batch came from (vendor, crawl, annotator pool, …).
        actor : str, optional
            Who records it; the operating-system user by default.
        sign_key : Ed25519 private key or path to one, optional
            Signs the batch root, shard digest and source.
        note : str, optional
            Free text kept in the event.

        Raises
        ------
        DataError
            On bad arrays, an empty batch, duplicate ids, ids already in the head
            version, or a schema other than the ledger's. Nothing is recorded.
        """
        return self.add_batch(ArrayBatch(X, y, ids), source=source, actor=actor, sign_key=sign_key, note=note)

    def add_batch(
        self,
        batch: BatchReader,
        *,
        source: str,
        actor: str | None = None,
        sign_key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
        note: str | None = None,
        rows: int | None = None,
    ) -> Version:
        """:meth:`add` for a batch read a block at a time (see :func:`poisonlab.provenance.io.open_batch`).

        At most ``rows`` samples (default :data:`~poisonlab.provenance.npz.CHUNK_ROWS`,
        fewer for wide samples) are read, hashed and written at once; the ids, which
        must be checked for clashes first, are the only per-sample data held whole.
        The version is the same as :meth:`add` of the whole arrays gives: same shard,
        same roots.

        Raises
        ------
        DataError
            As :meth:`add`, and for a batch that fails its reader's checks midway
            (nothing is recorded and no object is left).
        """
        if batch.n == 0:
            raise DataError("the batch is empty")
        ids = batch.ids
        check_unique_ids(ids)
        source = text_option(source, "source")
        actor = text_option(actor if actor is not None else default_actor(), "actor")
        key = load_private_key(sign_key) if isinstance(sign_key, str | os.PathLike) else sign_key
        schema = batch.schema()
        self._fits(self._head(), schema, ids)
        step = block_rows(batch.row_bytes, rows)
        self._store.remove_stale_temporaries()  # a killed add's half-written object, if any
        with self._store.spool() as hashes, self._store.spool() as labels:
            merkle = MerkleAccumulator()
            shard = self._store.write(
                lambda out: write_shard(out, batch, rows=step, hashes=hashes, labels=labels, merkle=merkle)
            )
            batch_root = merkle.root().hex()
            _checkpoint("shard-written")
            public_key = signature = None
            if key is not None:
                public_key = public_key_hex(key)
                signature = sign(key, batch_message(batch_root, shard, source)).hex()
            record = {"source": source, "shard": shard, "n": batch.n, "root": batch_root}
            record |= {"public_key": public_key, "signature": signature}
            with self._write() as db:
                head = self._head()
                self._fits(head, schema, ids)  # again: another writer may have moved the head
                membership, n, root = self._extend(head, hashes=hashes, shard=shard, ids=ids, source=source)
                return self._record_version(
                    db, kind="add", actor=actor, membership=membership, n=n, root=root or batch_root,
                    schema=schema, payload={"note": note}, batch=record,
                )  # fmt: skip

    def _extend(
        self, head: Version | None, *, hashes: IO[bytes], shard: str, ids: np.ndarray, source: str
    ) -> tuple[str, int, str | None]:
        """Store the head's membership, then the batch's rows: digest, size, root (``None``: the batch's)."""
        merkle = MerkleAccumulator() if head is not None and head.n else None
        total = 0

        def fill(writer: NpzWriter) -> None:
            nonlocal total
            if head is None:
                total = write_extended_membership(
                    writer, None, hashes=hashes, shard=shard, ids=ids, source=source, merkle=merkle
                )
                return
            with NpzReader(self._store.path(head.membership)) as parent:
                total = write_extended_membership(
                    writer, parent, hashes=hashes, shard=shard, ids=ids, source=source, merkle=merkle
                )

        try:
            digest = self._store.write(fill)
        except DataError as exc:  # the head's membership object no longer reads
            number = "?" if head is None else head.number
            raise IntegrityError(
                f"version {number}: membership: {exc} (run `poisonlab ledger verify`)"
            ) from None
        return digest, total, None if merkle is None else merkle.root().hex()

    def transform(
        self,
        name: str,
        params: dict[str, Any],
        X: object,
        y: object,
        ids: object,
        *,
        code_hash: str,
        actor: str | None = None,
    ) -> Version:
        """Record that ``name(params)`` turned the head version into ``(X, y, ids)``.

        The new arrays are stored as a shard and become the next version. A sample
        keeps the source of the head sample with its id; new ids get the source
        ``transform:<name>``. ``code_hash`` is the SHA-256 hex of the code or config
        that did the transform.

        Raises
        ------
        ConfigError
            On a bad name, params that are not JSON, a malformed ``code_hash`` or an
            empty ledger.
        DataError
            On bad arrays.
        LedgerError
            If another writer moved the head while the transform ran.
        """
        name = text_option(name, "transform name")
        if not is_digest(code_hash):
            raise ConfigError(f"code_hash must be a lowercase SHA-256 hex digest, got {code_hash!r}")
        params = json_dict(params, "transform params")
        actor = text_option(actor if actor is not None else default_actor(), "actor")
        X, y, ids = check_arrays(X, y, ids)
        if X.shape[0] == 0:
            raise DataError("the transform produced no samples")
        check_unique_ids(ids)
        seen = self.head()
        before = self.membership(seen)
        where = positions(before.ids, ids)
        source_names = np.where(where >= 0, before.source_names()[np.maximum(where, 0)], f"transform:{name}")
        hashes = sample_hashes(X, y, ids)
        batch_root = merkle_root(hashes).hex()
        self._store.remove_stale_temporaries()  # a killed add's half-written object, if any
        shard = self._store.put(X=X, y=y, ids=ids)
        batch = {"source": f"transform:{name}", "shard": shard, "n": int(X.shape[0]), "root": batch_root}
        batch |= {"public_key": None, "signature": None}
        members = extended(
            empty_membership(ids.dtype), hashes=hashes, shard=shard, ids=ids, sources=source_names
        )
        payload = {"name": name, "params": params, "code_hash": code_hash, "input_version": seen.number}
        with self._write() as db:
            head = self.head()
            if head.number != seen.number:
                raise LedgerError(f"the ledger moved to version {head.number} during the transform; rerun it")
            return self._new_version(
                db, kind="transform", actor=actor, members=members, root=batch_root,
                schema=schema_of(X, y, ids), payload=payload, batch=batch,
            )  # fmt: skip

    def quarantine(
        self, ids: Sequence[int | str] | np.ndarray, *, reason: dict[str, Any], actor: str | None = None
    ) -> Version:
        """Make a version without the samples ``ids`` (they stay stored); ``reason`` is kept in the event.

        Raises
        ------
        DataError
            If no ids are given or one is not in the head version (nothing changes).
        ConfigError
            If ``reason`` is not a JSON-able dict.
        """
        reason = json_dict(reason, "a quarantine reason")
        actor = text_option(actor if actor is not None else default_actor(), "actor")
        wanted = np.asarray(ids).reshape(-1)
        if wanted.size == 0:
            raise DataError("no ids to quarantine")
        with self._write() as db:
            head = self.head()
            members = self.membership(head)
            wanted_ids = as_ids_like(wanted, members.ids)
            where = positions(members.ids, wanted_ids)
            if (where < 0).any():
                unknown = wanted[int(np.argmax(where < 0))].item()
                raise DataError(f"id {unknown!r} is not in version {head.number}")
            where = np.unique(where)
            keep = np.ones(len(members), dtype=bool)
            keep[where] = False
            payload = {
                "input_version": head.number,
                "reason": reason,
                "ids": members.ids[where].tolist(),
                "sample_hashes": [bytes(h).hex() for h in members.hashes[where]],
            }
            return self._new_version(
                db, kind="quarantine", actor=actor, members=members.subset(keep), root=None,
                schema=head.schema, payload=payload,
            )  # fmt: skip

    def rollback(self, version: int | str | Version, *, actor: str | None = None) -> Version:
        """Make a new version whose samples are exactly those of ``version`` (same Merkle root)."""
        actor = text_option(actor if actor is not None else default_actor(), "actor")
        with self._write() as db:
            target = self.version(version)
            head = self.head()
            members = self.membership(target)
            return self._new_version(
                db, kind="rollback", actor=actor, members=members, root=target.root, schema=target.schema,
                payload={"target": target.number, "input_version": head.number},
            )  # fmt: skip

    # -- comparing, attesting, verifying ---------------------------------------
    def diff(self, v1: int | str | Version, v2: int | str | Version) -> Diff:
        """Ids added, removed, relabelled and modified from version ``v1`` to ``v2``."""
        from poisonlab.provenance.report import diff_versions

        return diff_versions(self, self.version(v1), self.version(v2))

    def attestation(self, version: int | str | Version = "head") -> dict[str, Any]:
        """An in-toto Statement v1 for a version (see :mod:`poisonlab.provenance.report`)."""
        from poisonlab.provenance.report import attestation

        return attestation(self, self.version(version))

    def match_scan(self, report: ScanReport, version: int | str | Version = "head") -> Version:
        """``version``, after checking ``report`` is a scan of its samples (:func:`.scans.match_scan`).

        Raises
        ------
        ConfigError
            If the report is a scan of other samples or of another version's contents.
        """
        from poisonlab.provenance.scans import match_scan

        return match_scan(self, report, version)

    def dataset(self, version: int | str | Version = "head", *, task: Task | None = None) -> Dataset:
        """A version as a :class:`~poisonlab.data.Dataset` with each sample's source, named ``DIR@vN``.

        Without ``task``, float labels are read as a regression response and integer
        labels as classes.
        """
        from poisonlab.provenance.io import as_dataset

        record = self.version(version)
        X, y, ids, source = self.arrays(record)
        name = f"{self.path.name or self.path}@v{record.number}"
        return as_dataset(X, y, ids, source, name=name, task=task)

    def verify(self) -> VerifyReport:
        """Recompute every hash, link, signature and root (see :mod:`poisonlab.provenance.verify`)."""
        from poisonlab.provenance.verify import verify_ledger

        return verify_ledger(self._db, self._store)


def _version(row: tuple[Any, ...]) -> Version:
    number, parent, seq, root, n, membership, schema = row
    try:
        parsed = json.loads(schema)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):  # the ledger writes an object: anything else was edited
        raise IntegrityError(f"version {number}: its schema is damaged (run `poisonlab ledger verify`)")
    return Version(number, parent, seq, root, n, membership, parsed)
