"""The provenance ledger: bit-exact round trips, versions, tamper evidence, concurrency, crash safety."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonlab.data.readers import read_npz
from poisonlab.errors import ConfigError, DataError, IntegrityError, LedgerBusy, LedgerError
from poisonlab.provenance import (
    Ledger,
    generate_key,
    load_private_key,
    merkle_proof,
    merkle_root,
    sample_hashes,
    sign,
    verify_proof,
    verify_signature,
)
from poisonlab.provenance.chain import batch_message, canonical_json, event_hash

CODE_HASH = hashlib.sha256(b"normalise v1").hexdigest()


def _batch(n: int, start: int, *, dtype: str = "<f4", seed: int = 0, string_ids: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(dtype)
    y = rng.integers(0, 3, n).astype(np.int64)
    y[:2] = [0, 1]  # at least two classes for read_npz
    ids = np.arange(start, start + n)
    return X, y, (np.array([f"s-{i}" for i in ids]) if string_ids else ids)


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger.init(tmp_path / "ledger") as opened:
        yield opened


def _signed_ledger(tmp_path: Path) -> Path:
    """Every kind of event: v1 add (signed), v2 add (signed), v3 quarantine, v4 transform, v5 rollback."""
    key = generate_key(tmp_path / "key.pem")
    with Ledger.init(tmp_path / "ledger") as ledger:
        ledger.add(*_batch(40, 0), source="vendor-a", sign_key=key, actor="alice")
        ledger.add(*_batch(30, 1000, seed=1), source="crowd", sign_key=tmp_path / "key.pem", note="round 2")
        ledger.quarantine([3, 1004], reason={"detector": "spectral", "report": "f" * 64})
        X, y, ids, _ = ledger.arrays()
        ledger.transform("normalise", {"mean": 0.0}, (X * 2).astype(X.dtype), y, ids, code_hash=CODE_HASH)
        ledger.rollback(2)
    return tmp_path / "ledger"


# -- round trips and versions -------------------------------------------------------
@pytest.mark.parametrize("dtype", ["<f4", "<f8", ">f8"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_every_version_exports_bit_exact(tmp_path: Path, dtype: str, string_ids: bool) -> None:
    X1, y1, ids1 = _batch(20, 0, dtype=dtype, string_ids=string_ids)
    X2, y2, ids2 = _batch(15, 100, dtype=dtype, seed=1, string_ids=string_ids)
    if dtype != "<f4":
        X1[0, 0] = np.nan  # NaN payloads must survive bit for bit (read_npz below refuses NaN)
    expected = {}
    with Ledger.init(tmp_path / "l") as ledger:
        expected[ledger.add(X1, y1, ids1, source="a").number] = (X1, y1, ids1)
        expected[ledger.add(X2, y2, ids2, source="b").number] = (
            np.concatenate([X1, X2]),
            np.concatenate([y1, y2]),
            np.concatenate([ids1, ids2]),
        )
        X, y, ids = expected[2]
        keep = np.ones(35, dtype=bool)
        keep[[4, 30]] = False
        expected[ledger.quarantine(ids[[4, 30]], reason={"why": "test"}).number] = (
            X[keep],
            y[keep],
            ids[keep],
        )
        Xt = (X[keep] * 3).astype(dtype)
        expected[ledger.transform("scale", {"k": 3}, Xt, y[keep], ids[keep], code_hash=CODE_HASH).number] = (
            Xt,
            y[keep],
            ids[keep],
        )
        expected[ledger.rollback(1).number] = (X1, y1, ids1)
        for number, (X, y, ids) in expected.items():
            path = ledger.export(number, tmp_path / f"v{number}.npz")
            with np.load(path, allow_pickle=False) as archive:
                assert archive["X"].dtype == np.dtype(dtype)
                assert archive["X"].tobytes() == X.astype(dtype).tobytes()  # concatenate makes it native
                assert archive["y"].tobytes() == y.tobytes()
                assert archive["ids"].tolist() == ids.tolist()
                assert archive["source"].dtype.kind == "U"
        assert ledger.verify().ok
    if dtype == "<f4":
        dataset = read_npz(tmp_path / "v2.npz")
        assert len(dataset) == 35
        assert set(dataset.source.tolist()) == {"a", "b"}


def test_rollback_gives_the_same_root_and_samples(ledger: Ledger) -> None:
    v1 = ledger.add(*_batch(10, 0), source="a")
    ledger.add(*_batch(10, 10, seed=2), source="b")
    ledger.quarantine([0], reason={})
    v4 = ledger.rollback("1")
    assert (v4.number, v4.parent, v4.root, v4.n) == (4, 3, v1.root, v1.n)
    assert ledger.head() == v4 and ledger.version("HEAD") == v4
    assert ledger.log()[-1].payload["target"] == 1
    assert ledger.arrays(4)[0].tobytes() == ledger.arrays(1)[0].tobytes()


def test_diff_names_added_removed_relabelled_and_modified(ledger: Ledger) -> None:
    X, y, ids = _batch(10, 0)
    ledger.add(X, y, ids, source="a")
    X2, y2 = X.copy(), y.copy()
    y2[2] = (y2[2] + 1) % 3  # relabelled
    X2[5, 1] += 1.0  # modified
    keep = np.arange(10) != 7  # removed
    X3 = np.concatenate([X2[keep], X[:1]])
    y3 = np.concatenate([y2[keep], y[:1]])
    ids3 = np.concatenate([ids[keep], [99]])  # added
    ledger.transform("edit", {}, X3, y3, ids3, code_hash=CODE_HASH)
    diff = ledger.diff(1, 2)
    assert (diff.added, diff.removed, diff.relabelled, diff.modified) == ([99], [7], [2], [5])
    assert ledger.diff(2, 2).unchanged
    assert ledger.arrays(2)[3][-1] == "transform:edit"  # new ids get the transform as source


def test_quarantine_removes_samples_keeps_them_stored_and_refuses_unknown_ids(ledger: Ledger) -> None:
    ledger.add(*_batch(10, 0), source="a")
    with pytest.raises(DataError, match="id 42 is not in version 1"):
        ledger.quarantine([3, 42], reason={})
    assert ledger.head().number == 1 and ledger.quarantined() == []
    v2 = ledger.quarantine(["3", "4"], reason={"detector": "knn"})  # the CLI passes strings
    assert v2.n == 8 and sorted(ledger.arrays()[2].tolist()) == [0, 1, 2, 5, 6, 7, 8, 9]
    listed = ledger.quarantined()
    assert [(q.id, q.seq) for q in listed] == [(3, 2), (4, 2)]
    assert listed[0].sample_hash == ledger.membership(1).hashes[3].tobytes().hex()
    assert ledger.log()[-1].payload["reason"] == {"detector": "knn"}
    assert ledger.arrays(1)[0].shape == (10, 5)  # still stored
    with pytest.raises(DataError, match="no ids"):
        ledger.quarantine([], reason={})
    for odd in ("99999999999999999999", 2**70, "1.5"):  # never an OverflowError
        with pytest.raises(DataError, match="is not in the ledger"):
            ledger.quarantine([odd], reason={})
    assert ledger.head() == v2


def test_attestation_is_an_in_toto_statement(tmp_path: Path) -> None:
    with Ledger.open(_signed_ledger(tmp_path)) as ledger:
        statement = ledger.attestation(4)
        head = ledger.version(4)
        made_by = ledger.log()[3]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "poisonlab-dataset-v4", "digest": {"sha256": head.root}}]
    predicate = statement["predicate"]
    assert {s["name"]: s["samples"] for s in predicate["sources"]} == {"vendor-a": 39, "crowd": 29}
    assert all(len(s["signers"]) == 1 for s in predicate["sources"])
    assert [t["name"] for t in predicate["transforms"]] == ["normalise"]
    assert predicate["quarantines"][0]["ids"] == [3, 1004]
    assert predicate["chain"] == {"event": 4, "hash": made_by.hash}
    json.dumps(statement)


# -- signatures ---------------------------------------------------------------------
def test_keys_and_signatures(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "k.pem")
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    public = (tmp_path / "k.pem.pub").read_text().strip()
    assert len(public) == 64
    loaded = load_private_key(tmp_path / "k.pem")
    signature = sign(loaded, b"message")
    assert verify_signature(public, b"message", signature)
    assert not verify_signature(public, b"messagE", signature)
    assert not verify_signature(public, b"message", bytes([signature[0] ^ 1]) + signature[1:])
    assert not verify_signature("zz", b"message", signature)
    assert key is not None
    with pytest.raises(ConfigError, match="already exists"):
        generate_key(tmp_path / "k.pem")
    with pytest.raises(DataError, match="no such key file"):
        load_private_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(DataError, match="not a PEM PKCS#8 private key"):
        load_private_key(tmp_path / "junk.pem")


def test_a_new_key_never_overwrites_a_public_key(tmp_path: Path) -> None:
    (tmp_path / "k.pem.pub").write_text("a" * 64 + "\n")
    with pytest.raises(ConfigError, match="already exists"):
        generate_key(tmp_path / "k.pem")
    assert (tmp_path / "k.pem.pub").read_text() == "a" * 64 + "\n"
    assert not (tmp_path / "k.pem").exists()


def test_a_signed_batch_records_its_signer(tmp_path: Path) -> None:
    with Ledger.open(_signed_ledger(tmp_path)) as ledger:
        batch = ledger.batches()[0]
        public = (tmp_path / "key.pem.pub").read_text().strip()
        assert batch.public_key == public
        message = batch_message(batch.root, batch.shard, batch.source)
        assert verify_signature(public, message, bytes.fromhex(batch.signature))
        assert ledger.log()[0].payload["batch"]["signature"] == batch.signature
        assert ledger.log()[0].actor == "alice"


# -- tamper evidence ----------------------------------------------------------------
def test_an_untouched_ledger_verifies(tmp_path: Path) -> None:
    with Ledger.open(_signed_ledger(tmp_path)) as ledger:
        report = ledger.verify()
    assert report.ok and report.problems == [] and report.first_problem is None
    assert report.notes == []


def test_single_byte_flips_in_a_shard_are_caught_and_name_the_batch(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    with Ledger.open(path) as ledger:
        batch = ledger.batches()[1]
        shard = path / "objects" / batch.shard[:2] / f"{batch.shard}.npz"
        original = shard.read_bytes()
        rng = np.random.default_rng(7)
        named_sample = 0
        for position in rng.choice(len(original), size=50, replace=False).tolist():
            damaged = bytearray(original)
            damaged[position] ^= int(rng.integers(1, 256))
            shard.write_bytes(bytes(damaged))
            report = ledger.verify()
            assert not report.ok
            assert report.first_problem.startswith("batch 2 (source crowd): shard "), report.problems
            named_sample += "first differing sample id" in report.first_problem
        shard.write_bytes(original)
        assert ledger.verify().ok
    assert named_sample >= 10  # most flips land in the arrays; those name the sample


def test_damaged_or_missing_objects_are_problems_not_exceptions(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    with Ledger.open(path) as ledger:
        batch, version = ledger.batches()[0], ledger.version(3)
        shard = path / "objects" / batch.shard[:2] / f"{batch.shard}.npz"
        shard.write_bytes(shard.read_bytes()[:500])
        member = path / "objects" / version.membership[:2] / f"{version.membership}.npz"
        member.unlink()
        report = ledger.verify()
        assert not report.ok
        assert any(p.startswith("batch 1 (source vendor-a): shard ") for p in report.problems)
        assert any(p.startswith("version 3: membership object") for p in report.problems)
        shard.unlink()
        assert "file missing" in ledger.verify().first_problem
        with pytest.raises(IntegrityError, match="version 3: membership"):
            ledger.arrays(3)


def test_flipped_bytes_in_a_membership_object_name_the_version(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    with Ledger.open(path) as ledger:
        digest = ledger.version(3).membership
        member = path / "objects" / digest[:2] / f"{digest}.npz"
        original = member.read_bytes()
        for position in np.random.default_rng(1).choice(len(original), size=10, replace=False).tolist():
            damaged = bytearray(original)
            damaged[position] ^= 0xFF
            member.write_bytes(bytes(damaged))
            report = ledger.verify()
            assert f"version 3: membership object {digest}: file digest mismatch" in report.problems
        member.write_bytes(original)
        assert ledger.verify().ok


def test_leftovers_of_interrupted_writes_are_notes_not_problems(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    (path / "objects" / "ab").mkdir(exist_ok=True)
    (path / "objects" / "ab" / ".tmp-123.npz").write_bytes(b"half a file")
    with Ledger.open(path) as ledger:
        report = ledger.verify()
    assert report.ok
    assert report.notes == [".tmp-123.npz: leftover temporary file of an interrupted write"]


def test_a_payload_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    with sqlite3.connect(path / "ledger.sqlite") as db:
        db.execute("UPDATE events SET payload = '{not json' WHERE seq = 2")
    db.close()
    with Ledger.open(path) as ledger:
        assert "event 2: payload is not valid JSON" in ledger.verify().problems
        with pytest.raises(IntegrityError, match="event 2: payload is not valid JSON"):
            ledger.log()


def test_the_package_exports_resolve() -> None:
    import poisonlab.provenance as provenance

    assert all(getattr(provenance, name) is not None for name in provenance.__all__)


FIELD_EDITS = [
    ("events", "actor", "seq = 2", "'mallory'", "event 2: hash does not match its contents"),
    ("events", "time", "seq = 2", "'2020-01-01T00:00:00.000000Z'", "event 2: hash does not match"),
    (
        "events",
        "payload",
        "seq = 2",
        "replace(payload, 'round 2', 'round 3')",
        "event 2: hash does not match",
    ),
    ("events", "prev_hash", "seq = 3", "'" + "1" * 64 + "'", "event 3: prev_hash does not link"),
    ("events", "hash", "seq = 3", "'" + "2" * 64 + "'", "event 3: hash does not match"),
    ("events", "kind", "seq = 4", "'add'", "event 4: hash does not match"),
    ("batches", "signature", "id = 2", "'00' || substr(signature, 3)", "batch 2 (source crowd): signature"),
    ("batches", "public_key", "id = 1", "'00' || substr(public_key, 3)", "batch 1 (source vendor-a): "),
    ("batches", "source", "id = 2", "'vendor-b'", "batch 2 (source vendor-b): "),
    ("batches", "root", "id = 1", "'" + "3" * 64 + "'", "batch 1 (source vendor-a): "),
    ("versions", "root", "number = 5", "'" + "4" * 64 + "'", "version 5: root differs from event 5"),
    ("versions", "n", "number = 3", "n - 1", "version 3: n differs from event 3"),
    # odd values a hand edit can leave: problems, never exceptions
    ("batches", "n", "id = 1", "'many'", "batch 1 (source vendor-a): n differs from event 1"),
    ("versions", "membership", "number = 2", "'xyz'", "version 2: membership name 'xyz' is not"),
    ("versions", "schema", "number = 2", "'{'", "version 2: schema differs from event 2"),
    ("events", "payload", "seq = 1", "'[1]'", "event 1: payload is not a JSON object"),
    ("events", "payload", "seq = 5", "replace(payload, ',', ', ')", "event 5: payload is not in canonical"),
    ("events", "seq", "seq = 5", "9", "event 9: out of sequence (expected event 5)"),
]


@pytest.mark.parametrize(("table", "column", "where", "value", "expected"), FIELD_EDITS)
def test_editing_one_field_of_a_row_is_caught(
    tmp_path: Path, table: str, column: str, where: str, value: str, expected: str
) -> None:
    path = _signed_ledger(tmp_path)
    with sqlite3.connect(path / "ledger.sqlite") as db:
        changed = db.execute(f"UPDATE {table} SET {column} = {value} WHERE {where}").rowcount
    db.close()
    assert changed == 1
    with Ledger.open(path) as ledger:
        report = ledger.verify()
    assert not report.ok
    assert any(p.startswith(expected) for p in report.problems), report.problems


def test_a_deleted_event_breaks_the_chain(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    with sqlite3.connect(path / "ledger.sqlite") as db:
        db.execute("DELETE FROM events WHERE seq = 3")
    db.close()
    with Ledger.open(path) as ledger:
        problems = ledger.verify().problems
    assert "event 4: out of sequence (expected event 3)" in problems
    assert "event 4: prev_hash does not link to the previous event's hash" in problems
    assert "version 3: its event 3 is missing or unreadable" in problems


def test_a_rewritten_rollback_target_is_caught(tmp_path: Path) -> None:
    """Even with the event rehashed, "rollback to 1" over version 2's samples is a problem."""
    path = _signed_ledger(tmp_path)
    with sqlite3.connect(path / "ledger.sqlite") as db:
        seq, time_, actor, kind, text, prev, _ = db.execute("SELECT * FROM events WHERE seq = 5").fetchone()
        payload = json.loads(text) | {"target": 1}
        digest = event_hash(seq, prev, time_, actor, kind, payload)
        db.execute("UPDATE events SET payload = ?, hash = ? WHERE seq = 5", (canonical_json(payload), digest))
    db.close()
    with Ledger.open(path) as ledger:
        assert ledger.verify().problems == ["version 5: root differs from that of its rollback target 1"]


def test_object_names_from_records_never_leave_the_store(tmp_path: Path) -> None:
    path = _signed_ledger(tmp_path)
    outside = tmp_path / "outside.npz"
    with Ledger.open(path) as ledger:
        members = ledger.membership(5)
    np.savez(outside, **members.arrays())  # a valid membership object, outside the store
    with sqlite3.connect(path / "ledger.sqlite") as db:
        db.execute("UPDATE versions SET membership = '../../outside' WHERE number = 5")
    db.close()
    with Ledger.open(path) as ledger:  # the row no longer agrees with its event
        with pytest.raises(IntegrityError, match="version 5: membership differs from event 5"):
            ledger.arrays(5)
    with sqlite3.connect(path / "ledger.sqlite") as db:  # event 5 is the last: rewrite it to agree
        seq, time_, actor, kind, text, prev, _ = db.execute("SELECT * FROM events WHERE seq = 5").fetchone()
        payload = json.loads(text) | {"membership": "../../outside"}
        digest = event_hash(seq, prev, time_, actor, kind, payload)
        db.execute("UPDATE events SET payload = ?, hash = ? WHERE seq = 5", (canonical_json(payload), digest))
    db.close()
    with Ledger.open(path) as ledger:
        with pytest.raises(IntegrityError, match=r"'\.\./\.\./outside' is not a SHA-256 digest"):
            ledger.arrays(5)
        with pytest.raises(IntegrityError, match="is not a SHA-256 digest"):
            ledger.export(5, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_a_well_formed_replacement_shard_is_never_read_as_the_version(tmp_path: Path) -> None:
    """A swapped shard passes the zip CRC; reads check every sample hash instead."""
    path = _signed_ledger(tmp_path)
    with Ledger.open(path) as ledger:
        batch = ledger.batches()[1]
        shard = path / "objects" / batch.shard[:2] / f"{batch.shard}.npz"
        with np.load(shard, allow_pickle=False) as archive:
            X, y, ids = archive["X"].copy(), archive["y"], archive["ids"]
        X[4, 0] += 1.0
        np.savez(shard, X=X, y=y, ids=ids)
        with pytest.raises(IntegrityError, match=r"version 2: sample 1004 does not match its recorded hash"):
            ledger.export(2, tmp_path / "v2.npz")
        assert ledger.arrays(1)[0].shape == (40, 5)  # versions without that shard still read
        np.savez(shard, X=X[:3], y=y[:3], ids=ids[:3])
        with pytest.raises(IntegrityError, match=f"version 2: shard {batch.shard} does not fit the version"):
            ledger.arrays(2)
        assert not ledger.verify().ok
    assert not (tmp_path / "v2.npz").exists()


def test_odd_version_numbers_are_config_errors(ledger: Ledger) -> None:
    ledger.add(*_batch(3, 0), source="a")
    for odd in ("99999999999999999999", 2**70, -1):
        with pytest.raises(ConfigError, match=r"no version .*; the ledger has versions 1\.\.1"):
            ledger.version(odd)
    with pytest.raises(ConfigError, match="a version is a number or 'head'"):
        ledger.version("²")  # str.isdigit() accepts it, int() does not
    assert ledger.version(" 1 ").number == 1


def test_verify_reads_the_three_tables_in_one_snapshot(tmp_path: Path) -> None:
    """A writer committing between the SELECTs would make a whole, valid batch look orphaned."""
    statements: list[str] = []
    with Ledger.open(_signed_ledger(tmp_path)) as ledger:
        ledger._db.set_trace_callback(statements.append)
        assert ledger.verify().ok
    reads = [i for i, s in enumerate(statements) if s.startswith("SELECT")]
    assert len(reads) == 4  # meta, events, batches, versions
    assert statements[reads[0] - 1] == "BEGIN" and statements[reads[-1] + 1] == "COMMIT"


def test_a_write_blocked_by_another_writer_is_ledger_busy_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import poisonlab.provenance.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "BUSY_TIMEOUT", 0.05)
    with Ledger.init(tmp_path / "l") as ledger:
        ledger.add(*_batch(5, 0), source="a")
    holder = sqlite3.connect(tmp_path / "l" / "ledger.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
    try:
        with Ledger.open(tmp_path / "l") as ledger:
            writes = [
                lambda: ledger.add(*_batch(5, 100), source="b"),
                lambda: ledger.quarantine([1], reason={"why": "test"}),
                lambda: ledger.rollback(1),
            ]
            for write in writes:
                with pytest.raises(LedgerBusy) as caught:
                    write()
                assert (
                    str(caught.value) == f"the ledger {tmp_path / 'l'} is locked by another writer; try again"
                )
                assert isinstance(caught.value, LedgerError)
            assert ledger.head().number == 1  # reads go on: WAL readers never wait for the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Ledger.open(tmp_path / "l") as ledger:
        assert ledger.add(*_batch(5, 100), source="b").number == 2 and ledger.verify().ok


def test_a_read_only_ledger_is_a_ledger_error_not_busy(tmp_path: Path) -> None:
    import poisonlab.provenance.ledger as ledger_module

    with Ledger.init(tmp_path / "l") as ledger:
        ledger.add(*_batch(5, 0), source="a")
    error = sqlite3.OperationalError("attempt to write a readonly database")
    error.sqlite_errorcode = 8  # type: ignore[attr-defined]  # SQLITE_READONLY
    assert not ledger_module._is_busy(error)
    assert type(ledger_module._write_error(error, tmp_path)) is LedgerError
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5 | (3 << 8)  # type: ignore[attr-defined]  # SQLITE_BUSY_SNAPSHOT
    assert ledger_module._is_busy(busy)
    assert ledger_module._is_busy(sqlite3.OperationalError("database is locked"))  # no code: the text


def test_a_transform_racing_another_writer_is_a_ledger_error(ledger: Ledger) -> None:
    import contextlib

    ledger.add(*_batch(10, 0), source="a")
    X, y, ids, _ = ledger.arrays()
    real_write = ledger._write

    @contextlib.contextmanager
    def another_writer_first():
        with Ledger.open(ledger.path) as other:
            other.add(*_batch(3, 500), source="b")
        with real_write() as db:
            yield db

    ledger._write = another_writer_first  # type: ignore[method-assign]
    with pytest.raises(LedgerError, match="moved to version 2 during the transform; rerun it"):
        ledger.transform("t", {}, X, y, ids, code_hash=CODE_HASH)
    ledger._write = real_write  # type: ignore[method-assign]
    assert ledger.head().number == 2 and ledger.verify().ok


# -- transforms --------------------------------------------------------------------------
def test_transforms_resolve_through_their_registry_and_record_what_rebuilds_them(ledger: Ledger) -> None:
    from poisonlab.provenance.transforms import (
        TRANSFORMS,
        Deduplicate,
        Normalise,
        apply_transform,
        code_hash,
        deduplicate,
        normalise,
    )

    assert TRANSFORMS.names() == ["normalise", "deduplicate"]
    assert TRANSFORMS.get("normalise").tag("changes_features") and TRANSFORMS.get("deduplicate").tag(
        "drops_samples"
    )
    assert TRANSFORMS.where(drops_samples=False)[0].name == "normalise"
    X = np.array([[1.0, 10.0], [1.0, 10.0], [3.0, 30.0], [5.0, 50.0]], dtype=np.float32)
    y, ids = np.array([0, 0, 1, 1]), np.array([7, 8, 9, 10])
    ledger.add(X, y, ids, source="s")
    version = apply_transform(ledger, "deduplicate", actor="bob")
    event = ledger.log()[-1]
    assert version.n == 3 and event.actor == "bob"
    assert event.payload["name"] == "deduplicate" and event.payload["params"] == {"keep": "first"}
    assert event.payload["code_hash"] == code_hash("deduplicate") == code_hash(Deduplicate(keep="last"))
    apply_transform(ledger, "normalise", {"method": "minmax"})
    recorded = ledger.log()[-1].payload
    # the recorded parameters rebuild the transform: replaying them on the input version gives the head
    X1, y1, ids1, _ = ledger.arrays(version)
    replay = TRANSFORMS.create("normalise", **recorded["params"])(X1, y1, ids1)
    head = ledger.arrays("head")
    for a, b in zip(replay, head[:3], strict=True):
        assert a.tobytes() == b.tobytes()
    # the old function API gives the same arrays
    assert normalise(X1, y1, ids1, method="minmax")[0].tobytes() == head[0].tobytes()
    assert deduplicate(X, y, ids)[2].tolist() == [7, 9, 10]
    assert Normalise().params() == {"method": "standard"}
    with pytest.raises(ConfigError, match="normalise: method must be 'standard' or 'minmax'"):
        apply_transform(ledger, "normalise", {"method": "max"})
    with pytest.raises(ConfigError, match="'deduplicate' has no parameter 'order'; its parameters are: keep"):
        apply_transform(ledger, "deduplicate", {"order": 1})
    assert ledger.head().number == 3


# -- scan reports --------------------------------------------------------------------------
def test_a_scan_report_matches_only_the_version_it_scanned(tmp_path: Path, ledger: Ledger) -> None:
    from poisonlab.provenance.scans import ScanReport, scan_stamp

    v1 = ledger.add(*_batch(6, 0), source="a")
    data = ledger.dataset(v1)
    assert data.name == "ledger@v1" and len(data) == 6 and set(data.source.tolist()) == {"a"}
    stamped = {"ids": list(range(6)), "flagged_ids": [2], "detector": "knn", **scan_stamp(v1)}
    text = json.dumps(stamped).encode()
    report = ScanReport.from_bytes(text, name="scan.json")
    assert ledger.match_scan(report) == v1
    assert report.reason() == {
        "scan_report": "scan.json",
        "scan_report_sha256": hashlib.sha256(text).hexdigest(),
        "detector": "knn",
        "dataset": None,
        "n_flagged": 1,
    }
    v2 = ledger.quarantine(list(report.flagged_ids), reason=report.reason())
    # v2 holds other ids; a rollback to v1 holds v1's samples again, so v1's report fits it
    with pytest.raises(ConfigError, match=r"scan\.json is a scan of another dataset: its 6 ids do not match"):
        ledger.match_scan(report)
    v3 = ledger.rollback(1)
    assert ledger.match_scan(report) == v3 and v3.root == v1.root
    relabelled = {**stamped, "ledger_root": "0" * 64}
    with pytest.raises(
        ConfigError, match=r"is a scan of version 1 \(root 0000000000000000…\), not of version 3"
    ):
        ledger.match_scan(ScanReport.from_bytes(json.dumps(relabelled).encode(), name="old.json"))
    unstamped = ScanReport.from_bytes(
        json.dumps({"ids": [0, 1, 3, 4, 5], "flagged_ids": []}).encode(), name="r"
    )
    assert ledger.match_scan(unstamped, v2) == v2 and unstamped.ledger_root is None
    for bad, message in ((b"{", "r: not a JSON scan report"), (b"[]", "needs lists 'ids' and 'flagged_ids'")):
        with pytest.raises(ConfigError, match=message):
            ScanReport.from_bytes(bad, name="r")
    with pytest.raises(ConfigError, match="no such scan report"):
        ScanReport.read(tmp_path / "missing.json")
    (tmp_path / "r.json").write_text(json.dumps(stamped))
    assert ScanReport.read(tmp_path / "r.json").flagged_ids == (2,)


# -- concurrency and crashes ---------------------------------------------------------
def _add_worker(path: str, start: int, barrier) -> None:
    with Ledger.open(path) as ledger:
        barrier.wait(timeout=60)
        ledger.add(*_batch(50, start, seed=start), source=f"proc-{start}")


def test_two_processes_adding_at_once_both_land_on_a_valid_chain(tmp_path: Path) -> None:
    Ledger.init(tmp_path / "l").close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_add_worker, args=(str(tmp_path / "l"), s, barrier)) for s in (0, 500)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with Ledger.open(tmp_path / "l") as ledger:
        assert ledger.verify().ok
        assert [v.number for v in ledger.versions()] == [1, 2]
        assert ledger.head().n == 100
        assert sorted(b.source for b in ledger.batches()) == ["proc-0", "proc-500"]
        assert sorted(ledger.arrays()[2].tolist()) == [*range(50), *range(500, 550)]


CHILD = """
import pathlib, sys, time
import numpy as np
import poisonlab.provenance.ledger as ledger_module
path, marker, stage = sys.argv[1:4]

def hook(reached):
    if reached == stage:
        pathlib.Path(marker).write_text(reached)
        time.sleep(120)

ledger_module._crash_hook = hook
with ledger_module.Ledger.open(path) as ledger:
    pathlib.Path(marker + ".open").write_text("")
    start = 1000
    while True:  # with stage "none": add until killed
        X = np.full((20, 5), start, dtype=np.float32)
        ledger.add(X, np.arange(20) % 2, np.arange(start, start + 20), source="child")
        start += 20
"""


def _spawn_child(path: Path, marker: Path, stage: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker), stage])


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


@pytest.mark.parametrize("stage", ["shard-written", "before-commit"])
def test_a_writer_killed_mid_add_leaves_the_batch_out_and_the_ledger_valid(
    tmp_path: Path, stage: str
) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        ledger.add(*_batch(10, 0), source="first")
    child = _spawn_child(tmp_path / "l", tmp_path / "marker", stage)
    try:
        _wait_for(tmp_path / "marker")
    finally:
        child.kill()  # SIGKILL
        child.wait()
    with Ledger.open(tmp_path / "l") as ledger:
        report = ledger.verify()
        assert report.ok, report.problems
        assert [v.number for v in ledger.versions()] == [1]
        assert any("no record refers to it" in note for note in report.notes)  # the orphan shard
        ledger.add(*_batch(5, 1000), source="after")  # the ledger stays writable
        assert ledger.verify().ok


def test_writers_killed_at_random_moments_leave_whole_batches(tmp_path: Path) -> None:
    Ledger.init(tmp_path / "l").close()
    rng = np.random.default_rng(3)
    for attempt in range(3):
        marker = tmp_path / f"m{attempt}"
        child = _spawn_child(tmp_path / "l", marker, "none")
        try:
            _wait_for(Path(f"{marker}.open"))
            time.sleep(float(rng.uniform(0.05, 0.6)))
        finally:
            child.kill()
            child.wait()
        with Ledger.open(tmp_path / "l") as ledger:
            assert ledger.verify().ok
            for batch in ledger.batches():
                assert batch.n == 20
        shutil.rmtree(tmp_path / "l")
        Ledger.init(tmp_path / "l").close()


# -- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("X", "y", "ids", "message"),
    [
        (np.zeros((3, 2)), np.zeros(2), np.arange(3), "X has 3 rows, y has 2 and ids has 3"),
        (np.zeros((3, 2), dtype=object), np.zeros(3), np.arange(3), "X must hold numbers"),
        (np.zeros((3, 2)), np.array(["a", "b", "c"]), np.arange(3), "y must hold numbers"),
        (np.zeros((3, 2)), np.zeros(3), np.array([1, 2, 1]), "id 1 occurs more than once"),
        (np.zeros((0, 2)), np.zeros(0), np.zeros(0, dtype=int), "the batch is empty"),
        (np.zeros((3, 2)), np.zeros(3), np.array([1.0, 2.0, 3.0]), "ids must be integers or unicode"),
    ],
)
def test_bad_batches_raise_one_line_data_errors(ledger: Ledger, X, y, ids, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        ledger.add(X, y, ids, source="a")
    assert "\n" not in str(caught.value)
    assert ledger.versions() == []


def test_schema_and_id_clashes_change_nothing(ledger: Ledger) -> None:
    ledger.add(*_batch(10, 0), source="a")
    files = sorted((ledger.path / "objects").rglob("*"))
    with pytest.raises(DataError, match=r"does not match the ledger's schema \(X <f4 5"):
        ledger.add(*_batch(10, 100, dtype="<f8"), source="b")
    with pytest.raises(DataError, match="id 9 is already in version 1"):
        ledger.add(*_batch(10, 9), source="b")
    assert [v.number for v in ledger.versions()] == [1] and len(ledger.log()) == 1
    assert sorted((ledger.path / "objects").rglob("*")) == files


def test_bad_options_raise_config_errors(tmp_path: Path, ledger: Ledger) -> None:
    with pytest.raises(ConfigError, match="no versions yet"):
        ledger.head()
    ledger.add(*_batch(10, 0), source="a")
    with pytest.raises(ConfigError, match=r"no version 7; the ledger has versions 1\.\.1"):
        ledger.version(7)
    with pytest.raises(ConfigError, match="code_hash must be a lowercase SHA-256"):
        ledger.transform("t", {}, *_batch(10, 0), code_hash="abc")
    with pytest.raises(ConfigError, match="transform params must hold JSON values"):
        ledger.transform("t", {"f": object()}, *_batch(10, 0), code_hash=CODE_HASH)
    with pytest.raises(ConfigError, match="source must be a non-empty string"):
        ledger.add(*_batch(3, 50), source="")
    with pytest.raises(ConfigError, match="is already a poisonlab ledger"):
        Ledger.init(ledger.path)
    (tmp_path / "plain").mkdir()
    expected = (
        f"{tmp_path / 'plain'} is not a poisonlab ledger (run `poisonlab ledger init {tmp_path / 'plain'}`)"
    )
    with pytest.raises(ConfigError) as caught:
        Ledger.open(tmp_path / "plain")
    assert str(caught.value) == expected
    (tmp_path / "plain" / "ledger.sqlite").write_bytes(b"garbage" * 100)
    # a file that is not a database at all is damage, not an invitation to run init
    with pytest.raises(IntegrityError, match="exists but is damaged"):
        Ledger.open(tmp_path / "plain")
    with pytest.raises(IntegrityError, match="exists but is damaged"):
        Ledger.init(tmp_path / "plain")
    (tmp_path / "plain" / "ledger.sqlite").unlink()
    with sqlite3.connect(tmp_path / "plain" / "ledger.sqlite") as db:  # another program's database
        db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(ConfigError, match="is not a poisonlab ledger"):
        Ledger.open(tmp_path / "plain")
    with pytest.raises(ConfigError, match="exists and is not a poisonlab ledger"):
        Ledger.init(tmp_path / "plain")


# -- hashes and Merkle roots -----------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    d=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    where=st.sampled_from(["X", "y", "ids"]),
    string_ids=st.booleans(),
    data=st.data(),
)
def test_a_sample_hash_changes_with_any_single_byte(n, d, seed, where, string_ids, data) -> None:
    rng = np.random.default_rng(seed)
    arrays = {
        "X": rng.standard_normal((n, d)).astype(np.float32),
        "y": rng.integers(0, 5, n),
        "ids": np.array([f"id-{i}-é" for i in range(n)]) if string_ids else np.arange(n) * 7,
    }
    before = sample_hashes(arrays["X"], arrays["y"], arrays["ids"])
    row = data.draw(st.integers(0, n - 1))
    target = arrays[where].copy()
    if where == "ids" and string_ids:
        text = target[row]
        k = data.draw(st.integers(0, len(text) - 1))
        target[row] = text[:k] + chr(ord(text[k]) + 1) + text[k + 1 :]
    else:
        raw = target.reshape(n, -1).view(np.uint8)
        k = data.draw(st.integers(0, raw.shape[1] - 1))
        raw[row, k] ^= data.draw(st.integers(1, 255))
    arrays[where] = target
    after = sample_hashes(arrays["X"], arrays["y"], arrays["ids"])
    changed = np.any(before != after, axis=1)
    assert changed.tolist() == [i == row for i in range(n)]


def test_a_dtype_reinterpretation_changes_the_hash() -> None:
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    y, ids = np.arange(3), np.arange(3)
    base = sample_hashes(X, y, ids)
    assert np.all(np.any(base != sample_hashes(X.view(np.int32), y, ids), axis=1))
    assert np.all(np.any(base != sample_hashes(X, y.view(np.uint64), ids), axis=1))
    assert np.all(np.any(base != sample_hashes(X.reshape(3, 2, 2), y, ids), axis=1))
    assert np.all(np.any(base != sample_hashes(X, y, ids.astype(np.int32)), axis=1))
    assert np.array_equal(base, sample_hashes(X.astype(">f4"), y, ids))  # byte order is normalised
    wide = sample_hashes(X, y, np.array(["a", "bb", "ccc"]))
    narrow = sample_hashes(X[:1], y[:1], np.array(["a"]))
    assert np.array_equal(wide[:1], narrow)  # string width does not matter


def test_merkle_root_domain_separation_odd_carry_and_proofs() -> None:
    sha = lambda data: hashlib.sha256(data).digest()  # noqa: E731
    assert merkle_root(np.zeros((0, 32), dtype=np.uint8)) == sha(b"")
    leaves = np.random.default_rng(0).integers(0, 256, (7, 32), dtype=np.uint8)
    leaf = [sha(b"\x00" + row.tobytes()) for row in leaves[:3]]
    assert merkle_root(leaves[:1]) == leaf[0]
    assert merkle_root(leaves[:3]) == sha(b"\x01" + sha(b"\x01" + leaf[0] + leaf[1]) + leaf[2])
    for n in range(1, 8):
        root = merkle_root(leaves[:n])
        for i in range(n):
            proof = merkle_proof(leaves[:n], i)
            assert verify_proof(leaves[i].tobytes(), proof, root)
            assert not verify_proof(leaves[(i + 1) % 7].tobytes(), proof, root) or (n == 1 and i == 0)
    with pytest.raises(DataError, match=r"\(n, 32\) uint8"):
        merkle_root(np.zeros((2, 31), dtype=np.uint8))


def test_the_meta_table_is_bound_into_the_chain_and_older_ledgers_still_verify(tmp_path: Path) -> None:
    path = tmp_path / "l"
    with Ledger.init(path) as ledger:
        ledger.add(*_batch(4, 0), source="a")
    with sqlite3.connect(path / "ledger.sqlite") as db:
        db.execute("UPDATE meta SET value = '2000-01-01T00:00:00.000000Z' WHERE key = 'created'")
    db.close()
    with Ledger.open(path) as ledger:
        assert ledger.verify().problems == [
            "event 1: prev_hash does not link to the ledger's genesis (its meta table)"
        ]
        with pytest.raises(IntegrityError, match="run `poisonlab ledger verify`"):
            ledger.add(*_batch(4, 10), source="a")
    # A ledger written before the genesis was bound starts from 64 zeros: intact, with a note.
    with sqlite3.connect(path / "ledger.sqlite") as db:
        seq, time_, actor, kind, text, _, _ = db.execute("SELECT * FROM events WHERE seq = 1").fetchone()
        digest = event_hash(seq, "0" * 64, time_, actor, kind, json.loads(text))
        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = 1", ("0" * 64, digest))
    db.close()
    with Ledger.open(path) as ledger:
        report = ledger.verify()
        assert report.ok and any("meta: not bound" in note for note in report.notes)
        ledger.add(*_batch(4, 10), source="a")  # such a ledger can still grow
        assert ledger.verify().ok and ledger.head().n == 8
