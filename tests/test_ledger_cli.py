"""``poisonlab ledger …`` and ``poisonlab scan --ledger``: the ledger as a user drives it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from poisonlab.cli import main
from poisonlab.data import load_dataset
from poisonlab.provenance import Ledger


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _split_by_source(tmp: Path) -> tuple[dict[str, Path], np.ndarray]:
    """breast_cancer in batches from four sources; the crowd pool's labels are flipped."""
    base = load_dataset("breast_cancer")
    rng = np.random.default_rng(0)
    names = np.array(["vendor-a", "vendor-b", "vendor-c", "crowd"])[rng.permutation(len(base)) % 4]
    y = base.original_labels().copy()
    crowd = names == "crowd"
    y[crowd] = 1 - y[crowd]
    paths = {}
    for name in ("vendor-a", "vendor-b", "vendor-c", "crowd"):
        rows = names == name
        paths[name] = tmp / f"{name}.npz"
        np.savez(paths[name], X=base.X[rows], y=y[rows], ids=base.ids[rows])
    return paths, base.ids[crowd]


def _event_count(ledger: Path) -> int:
    with sqlite3.connect(ledger / "ledger.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def test_a_backdoored_batch_is_scanned_quarantined_rolled_back_and_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, ledger = tmp_path / "bd.npz", tmp_path / "L"
    assert main(["attack", "badnets", "digits", "--rate", "0.05", "--out", str(data)]) == 0
    assert main(["ledger", "init", str(ledger)]) == 0
    assert main(["ledger", "keygen", str(tmp_path / "key")]) == 0
    L = ["--ledger", str(ledger)]
    assert (
        main(["ledger", "add", str(data), "--source", "vendor-a", "--sign", str(tmp_path / "key"), *L]) == 0
    )
    report = tmp_path / "scan.json"
    main(["scan", "--ledger", str(ledger), "--out", str(report)])  # exit 1: it flags samples
    flagged = json.loads(report.read_text())["flagged_ids"]
    with np.load(data) as archive:
        poisoned_ids = set(archive["ids"][archive["poison_mask"]].tolist())
    assert len(set(flagged) & poisoned_ids) >= 0.9 * len(poisoned_ids)

    assert main(["ledger", "quarantine", "--scan", str(report), *L]) == 0
    capsys.readouterr()
    assert main(["ledger", "diff", "1", "2", "--json", *L]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert sorted(diff["removed"]) == sorted(flagged) and not diff["added"] and not diff["modified"]

    assert main(["ledger", "rollback", "1", *L]) == 0
    with Ledger.open(ledger) as opened:
        v1, v2, v3 = opened.versions()
        assert v3.root == v1.root and v2.root != v1.root
        assert {q.id for q in opened.quarantined()} == set(flagged)
        event = opened.log()[1]
        assert event.kind == "quarantine" and event.payload["reason"]["detector"] == "auto"

    out = tmp_path / "v3.npz"
    assert main(["ledger", "export", "3", "--out", str(out), *L]) == 0
    with np.load(data) as original, np.load(out) as exported:
        for key in ("X", "y", "ids"):
            assert exported[key].dtype == original[key].dtype
            assert exported[key].tobytes() == original[key].tobytes()
        assert set(exported["source"].tolist()) == {"vendor-a"}

    capsys.readouterr()
    assert main(["ledger", "attest", "2", *L]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["subject"][0]["digest"]["sha256"] == v2.root
    assert main(["ledger", "verify", *L]) == 0
    assert "intact: 3 events, 3 versions" in capsys.readouterr().out


def test_verify_exits_1_naming_the_tampered_batch(tmp_path: Path) -> None:
    paths, _ = _split_by_source(tmp_path)
    assert poisonlab("ledger", "init", "L", cwd=tmp_path).returncode == 0
    for source in ("vendor-a", "crowd"):
        argv = ("ledger", "add", str(paths[source]), "--source", source, "--ledger", "L")
        assert poisonlab(*argv, cwd=tmp_path).returncode == 0
    with Ledger.open(tmp_path / "L") as ledger:
        shard = next(b.shard for b in ledger.batches() if b.source == "crowd")
    blob = tmp_path / "L" / "objects" / shard[:2] / f"{shard}.npz"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    result = poisonlab("ledger", "verify", "--ledger", "L", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "failed verification" in line and "batch 2 (source crowd)" in line
    # nor does it vouch for the tampered ledger
    attest = poisonlab("ledger", "attest", "--ledger", "L", cwd=tmp_path)
    assert attest.returncode == 1 and not attest.stdout
    assert "not attesting" in attest.stderr and "batch 2 (source crowd)" in attest.stderr


def test_the_provenance_detector_reads_sources_from_the_ledger(tmp_path: Path) -> None:
    paths, crowd_ids = _split_by_source(tmp_path)
    ledger = tmp_path / "L"
    Ledger.init(ledger).close()
    for source, path in paths.items():
        assert main(["ledger", "add", str(path), "--source", source, "--ledger", str(ledger)]) == 0
    report = tmp_path / "scan.json"
    argv = ["scan", "--ledger", str(ledger), "--detector", "provenance", "--out", str(report)]
    assert main(argv) == 1  # samples flagged
    flagged = json.loads(report.read_text())["flagged_ids"]
    assert sorted(flagged) == sorted(crowd_ids.tolist())


def test_transforms_are_recorded_with_their_parameters_and_code_hash(tmp_path: Path) -> None:
    X = np.array([[1.0, 10.0], [1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=np.array([0, 0, 1, 1]), ids=np.array([7, 8, 9, 10]))
    ledger = tmp_path / "L"
    Ledger.init(ledger).close()
    L = ["--ledger", str(ledger)]
    assert main(["ledger", "add", str(path), "--source", "s", *L]) == 0
    assert main(["ledger", "transform", "deduplicate", *L]) == 0
    assert main(["ledger", "transform", "normalise", "--param", "method=minmax", *L]) == 0
    with Ledger.open(ledger) as opened:
        X2, _, ids2, source = opened.arrays("head")
        events = opened.log()
    assert ids2.tolist() == [7, 9, 10] and source.tolist() == ["s", "s", "s"]
    assert np.allclose(X2, [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]) and X2.dtype == np.float32
    dedupe, norm = events[1].payload, events[2].payload
    assert dedupe["name"] == "deduplicate" and norm["params"] == {"method": "minmax"}
    assert len(norm["code_hash"]) == 64 and norm["code_hash"] != dedupe["code_hash"]


def test_two_inits_racing_make_one_ledger_and_a_killed_init_leaves_none(tmp_path: Path) -> None:
    (tmp_path / "L").mkdir()
    (tmp_path / "L" / ".ledger.sqlite.abc.init").write_bytes(b"half a database")  # a killed init
    argv = [sys.executable, "-m", "poisonlab", "ledger", "init", "L"]
    procs = [
        subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.returncode, err) for p in procs for _, err in [p.communicate(timeout=120)]]
    assert sorted(code for code, _ in results) == [0, 2]
    assert any("is already a poisonlab ledger" in err for code, err in results if code == 2)
    with Ledger.open(tmp_path / "L") as ledger:
        assert ledger.verify().ok and ledger.versions() == []


BAD = [
    (["ledger", "add", "missing.npz", "--source", "s", "--ledger", "L"], "missing.npz: no such file"),
    (["ledger", "add", "{garbage}", "--source", "s", "--ledger", "L"], "malformed npz"),
    (["ledger", "add", "{nokey}", "--source", "s", "--ledger", "L"], "npz lacks array(s) ['y']"),
    (["ledger", "add", "{good}", "--source", "s", "--ledger", "L", "--sign", "nokey"], "nokey"),
    (["ledger", "add", "{good}", "--source", "s", "--ledger", "."], "is not a poisonlab ledger"),
    (["ledger", "add", "{good}", "--source", "s", "--ledger", "L"], "is already in version 1"),
    (["ledger", "show", "7", "--ledger", "L"], "no version 7; the ledger has versions 1..1"),
    (["ledger", "rollback", "two", "--ledger", "L"], "a version is a number or 'head'"),
    (["ledger", "export", "9", "--out", "x.npz", "--ledger", "L"], "no version 9"),
    (["ledger", "quarantine", "--scan", "{other_report}", "--ledger", "L"], "is a scan of another dataset"),
    (["ledger", "quarantine", "--scan", "{good}", "--ledger", "L"], "not a JSON scan report"),
    (["ledger", "transform", "shuffle", "--ledger", "L"], "unknown transform 'shuffle'"),
    (["ledger", "init", "L"], "is already a poisonlab ledger"),
    (["ledger", "show", "99999999999999999999", "--ledger", "L"], "no version 99999999999999999999"),
    (["ledger", "show", "²", "--ledger", "L"], "a version is a number or 'head'"),
    (["ledger", "attest", "1", "--out", "nodir/a.json", "--ledger", "L"], "nodir does not exist"),
    (["ledger", "export", "1", "--out", "{good}/x.npz", "--ledger", "L"], "is a file, not a folder"),
    (["ledger", "keygen", "nodir/key"], "nodir/key: cannot write the key"),
    (
        ["ledger", "quarantine", "--scan", "{null_report}", "--ledger", "L"],
        "needs lists 'ids' and 'flagged_ids'",
    ),
    (["ledger", "diff", "1", "1", "--limit", "-1", "--ledger", "L"], "--limit must be >= 0"),
    (
        ["ledger", "quarantine", "--scan", "{stale_report}", "--ledger", "L"],
        "is a scan of version 1 (root 0000",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_gets_one_line_and_leaves_the_ledger_unchanged(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, X=np.arange(12.0).reshape(6, 2), y=np.array([0, 1] * 3), ids=np.arange(6))
    np.savez(tmp_path / "nokey.npz", X=np.ones((2, 2)))
    (tmp_path / "garbage.npz").write_bytes(b"\x00not a zip")
    other = {"ids": [100, 101], "flagged_ids": [100], "detector": "auto"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    (tmp_path / "null.json").write_text(json.dumps({"ids": None, "flagged_ids": 3}))
    stale = {"ids": list(range(6)), "flagged_ids": [1], "ledger_version": 1, "ledger_root": "0" * 64}
    (tmp_path / "stale.json").write_text(json.dumps(stale))  # same ids, other samples
    Ledger.init(tmp_path / "L").close()
    assert main(["ledger", "add", str(good), "--source", "s", "--ledger", str(tmp_path / "L")]) == 0
    before = _event_count(tmp_path / "L")
    files = {"good": str(good), "nokey": "nokey.npz", "garbage": "garbage.npz", "other_report": "other.json"}
    files |= {"null_report": "null.json", "stale_report": "stale.json"}
    result = poisonlab(*(a.format(**files) for a in argv), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert _event_count(tmp_path / "L") == before
    with Ledger.open(tmp_path / "L") as ledger:
        assert ledger.verify().ok


def test_a_busy_ledger_exits_75_with_one_line_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import poisonlab.provenance.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "BUSY_TIMEOUT", 0.05)  # not two minutes of waiting
    ledger = tmp_path / "L"
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)), y=np.array([0, 1]), ids=np.arange(2))
    np.savez(tmp_path / "e.npz", X=np.ones((2, 2)), y=np.array([0, 1]), ids=np.arange(2, 4))
    Ledger.init(ledger).close()
    L = ["--ledger", str(ledger)]
    assert main(["ledger", "add", str(tmp_path / "d.npz"), "--source", "s", *L]) == 0
    capsys.readouterr()
    holder = sqlite3.connect(ledger / "ledger.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        for argv in (
            ["add", str(tmp_path / "e.npz"), "--source", "s"],
            ["rollback", "1"],
            ["transform", "normalise"],
        ):
            assert main(["ledger", *argv, *L]) == 75, argv
            lines = capsys.readouterr().err.strip().splitlines()
            assert lines == [f"poisonlab: error: the ledger {ledger} is locked by another writer; try again"]
        assert main(["ledger", "verify", *L]) == 0  # readers are not held up
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _event_count(ledger) == 1


def test_a_damaged_ledger_fails_with_one_line(tmp_path: Path) -> None:
    ledger = tmp_path / "L"
    np.savez(tmp_path / "d.npz", X=np.arange(4.0).reshape(2, 2), y=np.array([0, 1]), ids=np.arange(2))
    Ledger.init(ledger).close()
    assert main(["ledger", "add", str(tmp_path / "d.npz"), "--source", "s", "--ledger", str(ledger)]) == 0
    with Ledger.open(ledger) as opened:
        shard = opened.batches()[0].shard
    # a well-formed replacement: the zip is fine, the sample is not the one recorded
    np.savez(
        ledger / "objects" / shard[:2] / f"{shard}.npz",
        X=np.zeros((2, 2)),
        y=np.array([0, 1]),
        ids=np.arange(2),
    )
    result = poisonlab("ledger", "export", "1", "--out", "x.npz", "--ledger", "L", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "poisonlab: error: version 1: sample 0 does not match its recorded hash "
        "(run `poisonlab ledger verify`)"
    ]
    assert not (tmp_path / "x.npz").exists()
    (ledger / "ledger.sqlite").write_bytes(b"garbage" * 100)
    result = poisonlab("ledger", "log", "--ledger", "L", cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "ledger.sqlite exists but is damaged" in result.stderr  # not "not a ledger: run init"


def test_show_names_a_missing_event_instead_of_crashing(tmp_path: Path) -> None:
    ledger = tmp_path / "L"
    Ledger.init(ledger).close()
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)), y=np.array([0, 1]), ids=np.arange(2))
    assert main(["ledger", "add", str(tmp_path / "d.npz"), "--source", "s", "--ledger", str(ledger)]) == 0
    with sqlite3.connect(ledger / "ledger.sqlite") as db:
        db.execute("DELETE FROM events")
    db.close()
    assert main(["ledger", "show", "--ledger", str(ledger)]) == 1  # damaged, as verify would exit


def test_ledger_text_is_printed_literally_never_as_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source or id holding rich markup ("[/bold]") must neither crash nor restyle the output."""
    data, ledger = tmp_path / "d.npz", tmp_path / "L"
    np.savez(
        data, X=np.arange(8.0).reshape(4, 2), y=np.array([0, 1, 0, 1]), ids=np.array(["a[/b]", "b", "c", "d"])
    )
    Ledger.init(ledger).close()
    L = ["--ledger", str(ledger)]
    assert main(["ledger", "add", str(data), "--source", "evil[/bold]", "--note", "[red]x[/red]", *L]) == 0
    assert "from evil[/bold];" in capsys.readouterr().out
    for argv in (["show"], ["log"]):
        assert main(["ledger", *argv, *L]) == 0
        assert "evil[/bold]" in capsys.readouterr().out, argv
    assert main(["ledger", "quarantine", "--scan", str(_report(tmp_path, ["a[/b]", "b", "c", "d"])), *L]) == 0
    capsys.readouterr()
    assert main(["ledger", "diff", "1", "2", *L]) == 0
    assert "a[/b]" in capsys.readouterr().out
    assert main(["ledger", "verify", *L]) == 0


def _report(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "scan.json"
    path.write_text(json.dumps({"ids": ids, "flagged_ids": ids[:1], "detector": "[/x]"}))
    return path
