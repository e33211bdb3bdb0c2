"""Grids on Ray: the same records as the process pool, resumable after the driver is killed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poisonlab.cli import main
from poisonlab.errors import ConfigError
from poisonlab.experiments import parse_config, run_grid

ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'poisonlab[ray]'")

GRID = {
    "datasets": ["wine"],
    "models": ["logreg"],
    "attacks": ["label_flip"],
    "defenses": ["none", "knn_label"],
    "poison_rates": [0.1, 0.2],
    "seeds": [0, 1],
}


def figures(outcome) -> dict[str, tuple[object, ...]]:
    return {r.run_id: (r.status, r.clean_acc, r.acc_drop, r.det_f1, r.n_removed) for r in outcome.records}


def test_ray_gives_the_records_the_process_pool_gives(tmp_path: Path) -> None:
    experiment = parse_config(GRID)
    on_ray = run_grid(experiment, tmp_path / "ray", executor="ray")
    in_pool = run_grid(experiment, tmp_path / "pool", jobs=2)
    assert len(on_ray.records) == 12 and all(r.status == "ok" for r in on_ray.records)
    assert figures(on_ray) == figures(in_pool)
    assert not ray.is_initialized()  # the local instance it started is stopped again


def stored(out: Path) -> list[tuple[str, str]]:
    if not (out / "results.sqlite").exists():
        return []
    with sqlite3.connect(out / "results.sqlite") as db:
        try:
            return db.execute("SELECT run_id, status FROM runs").fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return []


def test_a_killed_driver_loses_nothing_and_resume_completes_the_grid(tmp_path: Path) -> None:
    config = tmp_path / "grid.toml"
    config.write_text(
        'datasets = ["wine"]\nmodels = ["mlp"]\nattacks = ["label_flip"]\n'
        'defenses = ["none", "knn_label"]\npoison_rates = [0.1, 0.2, 0.3]\nseeds = [0, 1, 2]\n'
    )
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "poisonlab", "run", str(config), "--out", str(out), "--executor", "ray"]
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(stored(out)) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert driver.poll() is None, "the grid finished before it could be killed; make it longer"
    driver.send_signal(signal.SIGTERM)  # what a scheduler or Ctrl-C does to the driver
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130 and "finished work is kept" in err
    kept = stored(out)
    assert 2 <= len(kept) < 24
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(kept)} finished runs kept" in resumed.stdout
    final = stored(out)
    assert len(final) == len({run_id for run_id, _ in final}) == 24  # each run once, none lost
    assert all(status == "ok" for _, status in final)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 24


def test_an_address_where_no_cluster_answers_is_refused_in_seconds(tmp_path: Path, capsys) -> None:
    start = time.monotonic()
    argv = ["run", "--executor", "ray", "--address", "127.0.0.1:9", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert "--address 127.0.0.1:9: no Ray cluster answers there" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_address_without_ray_and_ray_missing_are_one_line_each(tmp_path: Path, monkeypatch, capsys) -> None:
    assert main(["run", "--address", "127.0.0.1:9", "--out", str(tmp_path / "o")]) == 2
    assert "it goes with --executor ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'poisonlab\[ray\]'"):
        run_grid(parse_config(GRID), tmp_path / "o", executor="ray")
    assert not (tmp_path / "o").exists()
