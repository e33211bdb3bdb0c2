"""Faults a user meets: damaged results stores, non-finite parameters (issue 17). One line, exit 2."""

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
        one_line(poisonlab(*args, cwd=tmp_path), "exists but is damaged")
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
    ("edit", "commands", "says"),
    [
        ("UPDATE events SET payload = '[1, 2]'", ("log", "show"), "payload is a JSON list, not an object"),
        ("UPDATE events SET payload = '3'", ("log", "show"), "payload is a JSON int, not an object"),
        ("UPDATE versions SET schema = '[]'", ("show", "add"), "its schema is damaged"),
        ("UPDATE versions SET schema = '{bad'", ("show", "add"), "its schema is damaged"),
    ],
)
def test_an_edited_ledger_gets_one_line_pointing_to_verify(tmp_path: Path, edit: str, commands, says) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(6, 2)), y=np.array([0, 1] * 3))
    np.savez(tmp_path / "e.npz", X=rng.normal(size=(6, 2)), y=np.array([0, 1] * 3), ids=np.arange(100, 106))
    assert poisonlab("ledger", "init", "L", cwd=tmp_path).returncode == 0
    assert poisonlab("ledger", "add", "d.npz", "--source", "s", "--ledger", "L", cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "L" / "ledger.sqlite") as db:
        db.execute(edit)
    db.close()
    argv = {"log": ["log"], "show": ["show", "1"], "add": ["add", "e.npz", "--source", "s"]}
    for command in commands:
        result = poisonlab("ledger", *argv[command], "--ledger", "L", cwd=tmp_path)
        one_line(result, says)
        assert "poisonlab ledger verify" in result.stderr


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
