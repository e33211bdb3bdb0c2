"""Faults a user meets: damaged stores and ledgers, non-finite parameters (issue 17). One line each."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = 'datasets = ["wine"]\nmodels = ["logreg"]\nattacks = ["label_flip"]\nseeds = [0]\n'


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def one_line(result: subprocess.CompletedProcess[str], says: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr, result.stderr


def _damage(store: Path, how: str) -> None:
    if how == "garbage":
        data = bytearray(store.read_bytes())
        data[100:4000] = b"\xde\xad" * 1950
        store.write_bytes(bytes(data))
    elif how == "foreign":
        store.unlink()
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE runs (id INTEGER, something TEXT)")
            db.execute("INSERT INTO runs VALUES (1, 'x')")
    else:
        with sqlite3.connect(store) as db:
            db.execute("UPDATE runs SET record = ?", ("{" if how == "bad_json" else "{}",))


@pytest.mark.parametrize("how", ["garbage", "foreign", "bad_json", "empty_record"])
def test_resume_on_a_damaged_store_says_so_in_one_line(tmp_path: Path, how: str) -> None:
    (tmp_path / "cfg.toml").write_text(CONFIG)
    assert poisonlab("run", "cfg.toml", "--out", "out", cwd=tmp_path).returncode == 0
    _damage(tmp_path / "out" / "results.sqlite", how)
    one_line(poisonlab("run", "cfg.toml", "--out", "out", "--resume", cwd=tmp_path), "results.sqlite")


def test_non_finite_parameters_are_refused(tmp_path: Path) -> None:
    one_line(
        poisonlab("fl", "--clients", "4", "--rounds", "1", "--param", "scale=nan", cwd=tmp_path), "finite"
    )
    (tmp_path / "cfg.toml").write_text(CONFIG.replace('["label_flip"]', '[{ name = "pgd", eps = inf }]'))
    one_line(poisonlab("run", "cfg.toml", "--out", "out", cwd=tmp_path), "not a finite number")


def test_a_forged_or_repetitive_scan_report_is_handled_in_one_line(tmp_path: Path) -> None:
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(20, 3)).astype(np.float32), y=np.repeat([0, 1], 10))
    assert poisonlab("ledger", "init", "L", cwd=tmp_path).returncode == 0
    assert poisonlab("ledger", "add", "d.npz", "--source", "s", "--ledger", "L", cwd=tmp_path).returncode == 0
    ids = list(range(20))
    (tmp_path / "forged.json").write_text(json.dumps({"ids": ids, "flagged_ids": [[1, 2], 3]}))
    one_line(
        poisonlab("ledger", "quarantine", "--scan", "forged.json", "--ledger", "L", cwd=tmp_path),
        "must hold sample ids",
    )
    (tmp_path / "repeats.json").write_text(json.dumps({"ids": ids, "flagged_ids": [5, 5, 5, 5, 5]}))
    result = poisonlab("ledger", "quarantine", "--scan", "repeats.json", "--ledger", "L", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "quarantined 1 samples" in result.stdout and "19 remain" in result.stdout


def test_a_huge_grid_needs_yes(tmp_path: Path) -> None:
    seeds = list(range(300))
    rates = [round(0.01 * k, 2) for k in range(1, 11)]
    (tmp_path / "big.toml").write_text(
        CONFIG.replace("seeds = [0]", f"seeds = {seeds}\npoison_rates = {rates}")
    )
    one_line(poisonlab("run", "big.toml", "--out", "out", "--jobs", "2", cwd=tmp_path), "3,300 runs to do")
    assert not (tmp_path / "out").exists()


def test_a_damaged_ledger_database_is_called_damaged_not_missing(tmp_path: Path) -> None:
    (tmp_path / "L").mkdir()
    (tmp_path / "L" / "ledger.sqlite").write_bytes(b"\x00garbage" * 4096)
    before = (tmp_path / "L" / "ledger.sqlite").read_bytes()
    for args in (
        ["ledger", "log", "--ledger", "L"],
        ["ledger", "verify", "--ledger", "L"],
        ["ledger", "init", "L"],
    ):
        one_line(poisonlab(*args, cwd=tmp_path), "exists but is damaged", code=1)  # as verify exits
    assert (tmp_path / "L" / "ledger.sqlite").read_bytes() == before


def test_add_removes_a_killed_writer_s_stale_temporary_file(tmp_path: Path) -> None:
    import os
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.savez(
            tmp_path / f"{name}.npz",
            X=rng.normal(size=(4, 2)),
            y=np.array([0, 1, 0, 1]),
            ids=[f"{name}{i}" for i in range(4)],
        )
    assert poisonlab("ledger", "init", "L", cwd=tmp_path).returncode == 0
    assert poisonlab("ledger", "add", "a.npz", "--source", "s", "--ledger", "L", cwd=tmp_path).returncode == 0
    fanout = next(p for p in (tmp_path / "L" / "objects").iterdir() if p.is_dir())
    stale, fresh = fanout / ".tmp-killed.npz", fanout / ".tmp-live.npz"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y" * 1000)
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    assert "leftover temporary file" in poisonlab("ledger", "verify", "--ledger", "L", cwd=tmp_path).stdout
    assert poisonlab("ledger", "add", "b.npz", "--source", "s", "--ledger", "L", cwd=tmp_path).returncode == 0
    assert not stale.exists() and fresh.exists()  # a live writer's file is left alone


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            "UPDATE events SET payload = '[1, 2]' WHERE seq = 1",
            "event 1: payload is not in canonical JSON form",
        ),
        ("UPDATE events SET payload = '3' WHERE seq = 1", "event 1: hash does not match its contents"),
        ("UPDATE events SET actor = 'mallory' WHERE seq = 1", "event 1: hash does not match its contents"),
        ("UPDATE events SET prev_hash = '0' WHERE seq = 2", "event 2: prev_hash does not link"),
        ("UPDATE versions SET schema = '[]' WHERE number = 1", "version 1: schema differs from event 1"),
        ("UPDATE versions SET schema = '{bad' WHERE number = 1", "version 1: schema differs from event 1"),
        ("UPDATE versions SET n = 5 WHERE number = 1", "version 1: n differs from event 1"),
        ("UPDATE batches SET source = 't' WHERE id = 1", "batch 1 (source t): source differs from event 1"),
        ("UPDATE meta SET value = '2020-01-01' WHERE key = 'created'", "event 1: prev_hash does not link"),
        (
            "INSERT INTO meta VALUES ('owner', 'x')",
            "event 1: prev_hash does not link to the ledger's genesis",
        ),
    ],
)
def test_an_edited_ledger_is_refused_by_every_command_in_one_line(
    tmp_path: Path, edit: str, says: str
) -> None:
    """Any one-field edit of any table, older events included: refused before reading or writing."""
    import numpy as np

    from poisonlab.provenance.ledger import Ledger

    rng = np.random.default_rng(0)
    batches = [
        (rng.normal(size=(6, 2)), np.array([0, 1] * 3), np.arange(first, first + 6)) for first in (0, 100)
    ]
    with Ledger.init(
        tmp_path / "L"
    ) as ledger:  # built in-process; only the commands under test are subprocesses
        for X, y, ids in batches:
            ledger.add(X, y, ids, source="s")
    np.savez(tmp_path / "f.npz", X=rng.normal(size=(6, 2)), y=np.array([0, 1] * 3), ids=np.arange(200, 206))
    with sqlite3.connect(tmp_path / "L" / "ledger.sqlite") as db:
        db.execute(edit)
    db.close()
    before = (tmp_path / "L" / "ledger.sqlite").read_bytes()
    argv = (
        ["log"], ["show", "1"], ["show", "2"], ["diff", "1", "2"], ["export", "1", "--out", "x.npz"],
        ["add", "f.npz", "--source", "s"], ["rollback", "1"], ["transform", "deduplicate"],
    )  # fmt: skip
    for command in argv:
        result = poisonlab("ledger", *command, "--ledger", "L", cwd=tmp_path)
        one_line(result, says, code=1)
        assert "poisonlab ledger verify" in result.stderr
    verify = poisonlab("ledger", "verify", "--ledger", "L", cwd=tmp_path)
    assert verify.returncode == 1 and says in verify.stdout
    assert (tmp_path / "L" / "ledger.sqlite").read_bytes() == before
    assert not (tmp_path / "x.npz").exists()


def test_extreme_but_valid_values_leave_stderr_clean(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(80, 4)) * 1e37).astype(np.float32)  # finite, near float32's limit
    np.savez(tmp_path / "big.npz", X=X, y=np.repeat([0, 1], 40))
    scan = poisonlab("scan", "big.npz", "--detector", "knn_label", cwd=tmp_path)
    assert scan.returncode in (0, 1) and "Warning" not in scan.stderr, scan.stderr
    fl = poisonlab(
        "fl", "--clients", "4", "--rounds", "1", "--attack", "scaling", "--param", "gamma=1e308", cwd=tmp_path
    )
    assert fl.returncode == 0 and "Warning" not in fl.stderr, fl.stderr


@pytest.mark.parametrize("transform", ["normalise", "deduplicate"])
def test_a_transform_of_an_empty_version_is_one_line_without_warnings(tmp_path: Path, transform: str) -> None:
    import numpy as np

    from poisonlab.provenance.ledger import Ledger

    np.savez(
        tmp_path / "d.npz", X=np.ones((4, 3), dtype=np.float32), y=np.array([0, 1] * 2), ids=np.arange(4)
    )
    assert poisonlab("ledger", "init", "L", cwd=tmp_path).returncode == 0
    assert poisonlab("ledger", "add", "d.npz", "--source", "s", "--ledger", "L", cwd=tmp_path).returncode == 0
    with Ledger.open(tmp_path / "L") as ledger:
        ledger.quarantine(np.arange(4), reason={"detector": "manual"})  # every sample: version 2 is empty
    result = poisonlab("ledger", "transform", transform, "--ledger", "L", cwd=tmp_path)
    one_line(result, f"version 2 holds no samples, so there is nothing to {transform}")
    assert "Warning" not in result.stderr


def test_a_results_folder_that_cannot_be_made_is_one_line_before_any_progress_bar(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(CONFIG)
    (tmp_path / "afile").write_text("mine")
    for out, says in (("afile/x", "is a file, not a folder"), ("afile/x/y", "is a file, not a folder")):
        result = poisonlab("run", "cfg.toml", "--out", out, cwd=tmp_path)
        one_line(result, says)  # one line: no empty "runs 0/1" bar drawn before it
    fl = poisonlab("fl", "--data", "wine", "--rounds", "2", "--out", "afile/x", cwd=tmp_path)
    one_line(fl, "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "mine"
    assert not list(tmp_path.glob(".poisonlab-probe-*"))
