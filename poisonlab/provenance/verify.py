"""Recompute everything a ledger claims and report each disagreement, naming its record.

Checked: every event hash and chain link, the first link against the ``meta``
table (the genesis); every shard's SHA-256 against its name;
every sample hash against its batch's Merkle root (and, when a damaged shard can
still be parsed, the first sample that differs); every signature; every version's
membership object, its Merkle root and its agreement with the stored shards;
that the event payloads agree with the batch and version rows; and that a rollback
version holds its target's root. Damaged content
(missing, truncated or garbled files, rows edited by hand) becomes a problem line,
never an exception.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poisonlab.errors import DataError
from poisonlab.provenance.chain import (
    EVENT_KINDS,
    LEGACY_GENESIS,
    batch_message,
    canonical_json,
    event_hash,
    genesis_hash,
)
from poisonlab.provenance.hashing import HASH_SIZE, check_arrays, sample_hashes
from poisonlab.provenance.merkle import MerkleAccumulator
from poisonlab.provenance.npz import NpzReader, block_rows
from poisonlab.provenance.records import VerifyReport
from poisonlab.provenance.signing import verify_signature
from poisonlab.provenance.store import (
    MEMBERSHIP_ARRAYS,
    SHARD_ARRAYS,
    Membership,
    ObjectStore,
    file_digest,
    is_digest,
    read_arrays,
    read_arrays_ignoring_crc,
)

BATCH_FIELDS = ("id", "source", "shard", "n", "root", "public_key", "signature")
KINDS_WITH_BATCH = ("add", "transform")


@dataclass
class _State:
    store: ObjectStore
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    payloads: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    memberships: dict[str, str | None] = field(default_factory=dict)  # digest -> why it fails, or None
    used_shards: dict[str, set[str]] = field(default_factory=dict)  # membership digest -> shards it uses
    shard_hashes: dict[str, np.ndarray] = field(default_factory=dict)
    shard_ids: dict[str, np.ndarray] = field(default_factory=dict)
    shard_roots: dict[str, str] = field(default_factory=dict)
    version_roots: dict[Any, Any] = field(default_factory=dict)


def verify_ledger(db: sqlite3.Connection, store: ObjectStore, *, objects: bool = True) -> VerifyReport:
    """Check a ledger's database and objects; see the module docstring.

    With ``objects=False`` only the database is checked (the chain, its genesis, and
    that every batch and version row agrees with its event): cheap enough to run
    before every read and write.
    """
    state = _State(store)
    try:  # one read transaction: a writer committing between the SELECTs must not look like tampering
        own = not db.in_transaction
        if own:
            db.execute("BEGIN")
        try:
            meta = db.execute("SELECT key, value FROM meta").fetchall()
            events = db.execute("SELECT * FROM events ORDER BY seq").fetchall()
            batches = db.execute("SELECT * FROM batches ORDER BY id").fetchall()
            versions = db.execute("SELECT * FROM versions ORDER BY number").fetchall()
        finally:
            if own:
                db.execute("COMMIT")
    except sqlite3.Error as exc:
        return VerifyReport(False, [f"ledger database: cannot be read ({exc})"])
    try:
        genesis = genesis_hash(dict(meta))
    except (TypeError, ValueError) as exc:  # a hand-edited meta row of another type
        state.problems.append(f"ledger meta: cannot be hashed ({type(exc).__name__}: {exc})")
        genesis = LEGACY_GENESIS
    _check_chain(state, events, genesis)
    state.version_roots = {row[0]: row[3] for row in versions}
    if objects:
        for row in versions:
            try:
                _membership_problem(state, row[5])
            except Exception:  # reported by the version check below
                continue
    for row in batches:
        label = f"batch {row[0]} (source {row[3]})"
        try:
            _check_batch_record(state, row, label)
            if objects:
                _check_batch_objects(state, row, label)
        except Exception as exc:  # a hand-edited row can hold any type
            state.problems.append(f"{label}: cannot be checked ({type(exc).__name__}: {exc})")
    for row in versions:
        label = f"version {row[0]}"
        try:
            _check_version_record(state, row, label)
            if objects:
                _check_version_objects(state, row, label)
        except Exception as exc:
            state.problems.append(f"{label}: cannot be checked ({type(exc).__name__}: {exc})")
    checks = (_check_coverage, _check_shards_recorded, _note_orphans) if objects else (_check_coverage,)
    for check in checks:
        try:
            check(state, batches, versions)
        except Exception as exc:  # hand-edited rows of the wrong shape
            state.problems.append(f"ledger: records cannot be cross-checked ({type(exc).__name__}: {exc})")
    return VerifyReport(not state.problems, state.problems, state.notes)


def _check_chain(state: _State, rows: list[tuple[Any, ...]], genesis: str) -> None:
    prev, expected = genesis, 1
    if rows and rows[0][5] == LEGACY_GENESIS and genesis != LEGACY_GENESIS:
        prev = LEGACY_GENESIS  # written before the genesis was bound: the chain holds, meta is unbound
        state.notes.append("ledger meta: not bound into the chain (a ledger made by an earlier poisonlab)")
    for row in rows:
        try:
            prev, expected = _check_event(state, row, prev, expected)
        except Exception as exc:  # a hand-edited row can hold any type
            state.problems.append(f"event {row[0]}: cannot be checked ({type(exc).__name__}: {exc})")
            prev, expected = str(row[-1]), expected + 1


def _check_event(state: _State, row: tuple[Any, ...], prev: str, expected: int) -> tuple[str, int]:
    """Check one event against the previous hash; return its hash and the next expected seq."""
    seq, time, actor, kind, text, prev_hash, digest = row
    label = f"event {seq}"
    if seq != expected:
        state.problems.append(f"{label}: out of sequence (expected event {expected})")
    if kind not in EVENT_KINDS:
        state.problems.append(f"{label}: unknown kind {kind!r}")
    if prev_hash != prev:
        what = "the ledger's genesis (its meta table)" if seq == 1 else "the previous event's hash"
        state.problems.append(f"{label}: prev_hash does not link to {what}")
    try:
        payload = json.loads(text)
        canonical = canonical_json(payload)
    except (TypeError, ValueError):
        state.problems.append(f"{label}: payload is not valid JSON")
        return digest, seq + 1
    if canonical != text:
        state.problems.append(f"{label}: payload is not in canonical JSON form")
    try:
        recomputed = event_hash(seq, prev_hash, time, actor, kind, payload)
    except (TypeError, ValueError):
        recomputed = None
    if recomputed != digest:
        state.problems.append(f"{label}: hash does not match its contents")
    if isinstance(payload, dict):
        state.payloads[seq] = (kind, payload)
    else:
        state.problems.append(f"{label}: payload is not a JSON object")
    return digest, seq + 1


def _membership_problem(state: _State, digest: str) -> str | None:
    """Why a membership object cannot be trusted (name, presence, file digest), or ``None`` (cached)."""
    if digest in state.memberships:
        return state.memberships[digest]
    result: str | None = None
    if not is_digest(digest):
        result = f"membership name {digest!r} is not a SHA-256 digest"
    else:
        try:
            actual: str | None = file_digest(state.store.path(digest))
        except FileNotFoundError:
            actual = None
        except OSError as exc:
            actual = f"unreadable ({exc.strerror})"
        if actual is None:
            result = f"membership object {digest}: file missing"
        elif actual != digest:
            result = f"membership object {digest}: file digest mismatch"
    state.memberships[digest] = result
    return result


def _reference(state: _State, shard: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rows, recorded sample hashes and ids of ``shard``, from any intact membership holding it.

    Only asked when a shard is damaged, to name the sample: memberships are read whole here.
    """
    for digest, problem in state.memberships.items():
        if problem is not None:
            continue
        try:
            members = Membership.load(state.store, digest)
        except (DataError, TypeError, ValueError):
            continue
        if shard in members.shards.tolist():
            k = members.shards.tolist().index(shard)
            where = np.nonzero(members.shard == k)[0]
            order = np.argsort(members.row[where], kind="stable")
            where = where[order]
            return members.row[where], members.hashes[where], members.ids[where]
    return None


def _first_differing_id(state: _State, shard: str, path: Any) -> str:
    """Why a shard's bytes differ, at sample level when the damaged file still parses."""
    try:
        arrays = read_arrays(path, SHARD_ARRAYS)
    except DataError:
        try:
            arrays = read_arrays_ignoring_crc(path, SHARD_ARRAYS)
        except DataError:
            return "; the shard cannot be read"
    reference = _reference(state, shard)
    if reference is None:
        return ""
    rows, recorded, ids = reference
    try:
        hashes = sample_hashes(arrays["X"], arrays["y"], arrays["ids"])
    except DataError:
        return f"; first differing sample id {ids[0].item()!r}" if ids.size else ""
    for row, digest, sample_id in zip(rows.tolist(), recorded, ids.tolist(), strict=True):
        if row >= hashes.shape[0] or not np.array_equal(hashes[row], digest):
            return f"; first differing sample id {sample_id!r}"
    return "; its samples are intact"


def _check_batch_record(state: _State, row: tuple[Any, ...], label: str) -> None:
    """The batch row against its event, and its signature."""
    batch_id, seq, kind, source, shard, n, root, public_key, signature = row
    event = state.payloads.get(seq)
    if event is None:
        state.problems.append(f"{label}: its event {seq} is missing or unreadable")
    else:
        event_kind, payload = event
        if event_kind != kind:
            state.problems.append(f"{label}: kind {kind!r} differs from event {seq} ({event_kind!r})")
        recorded = payload.get("batch")
        mine = dict(zip(BATCH_FIELDS, (batch_id, source, shard, n, root, public_key, signature), strict=True))
        if not isinstance(recorded, dict):
            state.problems.append(f"{label}: event {seq} records no batch")
        else:
            for name in BATCH_FIELDS:
                if recorded.get(name) != mine[name]:
                    state.problems.append(f"{label}: {name} differs from event {seq}")
    if public_key is not None or signature is not None:
        try:
            good = verify_signature(public_key, batch_message(root, shard, source), bytes.fromhex(signature))
        except (TypeError, ValueError, AttributeError):
            good = False
        if not good:
            state.problems.append(f"{label}: signature does not match")


def _check_batch_objects(state: _State, row: tuple[Any, ...], label: str) -> None:
    """The batch's shard file against its digest, sample hashes and root."""
    _, _, _, _, shard, n, root, _, _ = row
    if not is_digest(shard):
        state.problems.append(f"{label}: shard name {shard!r} is not a SHA-256 digest")
        return
    path = state.store.path(shard)
    where = f"{label}: shard {shard}"
    try:
        actual = file_digest(path)
    except FileNotFoundError:
        state.problems.append(f"{where}: file missing")
        return
    except OSError as exc:
        state.problems.append(f"{where}: unreadable ({exc.strerror})")
        return
    if actual != shard:
        state.problems.append(f"{where}: file digest mismatch{_first_differing_id(state, shard, path)}")
        return
    try:
        hashes, ids = _shard_hashes(path)
    except DataError as exc:
        state.problems.append(f"{where}: {exc}")
        return
    if hashes.shape[0] != n:
        state.problems.append(f"{where}: holds {hashes.shape[0]} samples, the record says {n}")
    computed = merkle_root_of_blocks(hashes).hex()
    if computed != root:
        state.problems.append(f"{where}: sample hashes do not match the batch root")
    state.shard_hashes[shard] = hashes
    state.shard_ids[shard] = ids
    state.shard_roots[shard] = computed


def _shard_hashes(path: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every sample hash of a shard and its ids, its features read a block at a time."""
    with NpzReader(path) as archive:
        X, y, ids_member = (archive.member(name) for name in SHARD_ARRAYS)
        ids = ids_member.rest()
        if not (len(X) == len(y) == len(ids)) or not X.shape or ids.ndim != 1:
            check_arrays(np.empty(X.shape, X.dtype), np.empty(y.shape, y.dtype), ids)  # names the mismatch
        n = len(X)
        hashes = np.empty((n, HASH_SIZE), dtype=np.uint8)
        step = block_rows(X.row_bytes + y.row_bytes)
        for start in range(0, n, step):
            block_x, block_y = X.read(step), y.read(step)
            hashes[start : start + block_x.shape[0]] = sample_hashes(
                block_x, block_y, ids[start : start + block_x.shape[0]]
            )
    return hashes, ids


def merkle_root_of_blocks(hashes: np.ndarray) -> bytes:
    """:func:`merkle_root` of ``hashes``, a block at a time (no whole-level copies)."""
    merkle = MerkleAccumulator()
    for start in range(0, hashes.shape[0], 2**16):
        merkle.update(hashes[start : start + 2**16])
    return merkle.root()


def _check_version_record(state: _State, row: tuple[Any, ...], label: str) -> None:
    """The version row against its event (and a rollback's root against its target's)."""
    number, parent, seq, root, n, digest, schema = row
    event = state.payloads.get(seq)
    if event is None:
        state.problems.append(f"{label}: its event {seq} is missing or unreadable")
    else:
        payload = event[1]
        mine = {"version": number, "parent": parent, "root": root, "n": n, "membership": digest}
        for name, value in mine.items():
            if payload.get(name) != value:
                state.problems.append(f"{label}: {name} differs from event {seq}")
        if event[0] == "rollback":  # the log says "rollback to T": the content must be T's
            target = payload.get("target")
            if target not in state.version_roots or state.version_roots[target] != root:
                state.problems.append(f"{label}: root differs from that of its rollback target {target!r}")
        try:
            same_schema = json.loads(schema) == payload.get("schema")
        except (TypeError, ValueError):
            same_schema = False
        if not same_schema:
            state.problems.append(f"{label}: schema differs from event {seq}")


def _check_version_objects(state: _State, row: tuple[Any, ...], label: str) -> None:
    """The version's membership object against its row and the verified shards, read a block at a time."""
    _, _, _, root, n, digest, _ = row
    problem = _membership_problem(state, digest)
    if problem is not None:
        state.problems.append(f"{label}: {problem}")
        return
    try:
        with NpzReader(state.store.path(digest)) as archive:
            _check_membership(state, archive, digest, label, root, n)
    except DataError as exc:
        state.memberships[digest] = f"membership object {digest}: {exc}"
        state.problems.append(f"{label}: membership object {digest}: {exc}")


def _check_membership(state: _State, archive: NpzReader, digest: str, label: str, root: str, n: Any) -> None:
    members = {name: archive.member(name) for name in MEMBERSHIP_ARRAYS}
    shards = members["shards"].rest().tolist()
    count = len(members["hashes"])
    if len({len(members[name]) for name in ("hashes", "shard", "row", "ids", "source")}) != 1:
        raise DataError("its arrays differ in length")
    if members["hashes"].shape[1:] != (HASH_SIZE,) or members["hashes"].dtype != np.uint8:
        raise DataError(f"hashes of shape {members['hashes'].shape} and dtype {members['hashes'].dtype}")
    if count != n:
        state.problems.append(f"{label}: membership holds {count} samples, the record says {n}")
    # First pass, over the indices only: which shards are used, and is this one whole shard in order?
    step = block_rows(HASH_SIZE + 16)
    used: set[int] = set()
    in_order = True
    with NpzReader(state.store.path(digest)) as again:
        shard_of, row_of = again.member("shard"), again.member("row")
        for start in range(0, count, step):
            k, r = shard_of.read(step), row_of.read(step)
            used.update(np.unique(k).tolist())
            in_order = in_order and bool(np.all(r == np.arange(start, start + r.shape[0])))
    if used - set(range(len(shards))):
        raise DataError("it points past the end of its shard list")
    state.used_shards[digest] = {shards[k] for k in used}
    single = None
    if in_order and len(used) == 1:
        only = shards[used.pop()]
        if only in state.shard_hashes and state.shard_hashes[only].shape[0] == count:
            single = only  # a version that is exactly one verified shard, in order, shares its root
    merkle = None if single is not None else MerkleAccumulator()
    reported: set[str] = set()
    for _ in range(0, count, step):
        hashes, k, r = (members[name].read(step) for name in ("hashes", "shard", "row"))
        ids = members["ids"].read(step)
        if merkle is not None:
            merkle.update(np.ascontiguousarray(hashes))
        for index in np.unique(k).tolist():
            shard = shards[index]
            if shard not in state.shard_hashes or shard in reported:
                continue  # the batch check reported why (or the shard has no batch: see coverage)
            stored, stored_ids = state.shard_hashes[shard], state.shard_ids[shard]
            where = np.nonzero(k == index)[0]
            rows = r[where]
            if rows.size and (rows.min() < 0 or rows.max() >= stored.shape[0]):
                state.problems.append(f"{label}: membership points past the end of shard {shard}")
                reported.add(shard)
                continue
            bad = ~np.all(stored[rows] == hashes[where], axis=1)
            if stored_ids.dtype.kind != ids.dtype.kind:
                bad[:] = True
            else:
                bad |= stored_ids[rows] != ids[where]
            if bad.any():
                first = ids[where][int(np.argmax(bad))].item()
                state.problems.append(f"{label}: sample {first!r} disagrees with shard {shard}")
                reported.add(shard)
    computed = state.shard_roots[single] if single is not None else merkle.root().hex()  # type: ignore[union-attr]
    if computed != root:
        state.problems.append(f"{label}: Merkle root mismatch")


def _check_coverage(state: _State, batches: list[tuple[Any, ...]], versions: list[tuple[Any, ...]]) -> None:
    """Every event made one version (and add/transform one batch), and nothing else did."""
    version_events = {row[2] for row in versions}
    batch_events = {row[1] for row in batches}
    for seq, (kind, _) in sorted(state.payloads.items()):
        if seq not in version_events:
            state.problems.append(f"event {seq}: its version record is missing")
        if kind in KINDS_WITH_BATCH and seq not in batch_events:
            state.problems.append(f"event {seq}: its batch record is missing")


def _check_shards_recorded(
    state: _State, batches: list[tuple[Any, ...]], versions: list[tuple[Any, ...]]
) -> None:
    """Every shard a membership refers to has a batch record."""
    shards = {row[4] for row in batches}
    for row in versions:
        used = state.used_shards.get(row[5], set())
        for shard in sorted(used - shards):
            state.problems.append(f"version {row[0]}: refers to shard {shard}, which no batch records")


def _note_orphans(state: _State, batches: list[tuple[Any, ...]], versions: list[tuple[Any, ...]]) -> None:
    referenced = {row[4] for row in batches} | {row[5] for row in versions}
    for path in state.store.all_objects():
        if path.name.startswith(".tmp-"):
            state.notes.append(f"{path.name}: leftover temporary file of an interrupted write")
        elif path.stem not in referenced:
            state.notes.append(f"object {path.stem}: no record refers to it (an interrupted write?)")
