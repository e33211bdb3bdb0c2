"""The experiment runner: grid expansion, store, resume, failures, summary files."""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from poisonlab.data import load_dataset, train_test_split
from poisonlab.errors import ConfigError, PoisonlabError
from poisonlab.experiments import COLUMNS, load_config, parse_config, run_grid
from poisonlab.experiments.runner import STORE_NAME

FAST = {
    "datasets": ["wine"],
    "models": ["logreg"],
    "attacks": ["label_flip", {"name": "feature_trigger", "target": 1}],
    "poison_rates": [0.1, 0.2],
    "seeds": [0, 1],
}


def stored_rows(out: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(out / STORE_NAME) as db:
        return db.execute("SELECT run_id, status FROM runs").fetchall()


def test_grid_expands_with_one_baseline_run_per_seed() -> None:
    exp = parse_config(FAST)
    # baseline: 1 rate-less run per seed; attacks: 2 attacks × 2 rates × 2 seeds
    assert len(exp.runs) == 2 + 2 * 2 * 2
    assert [r.attack.name for r in exp.runs[:2]] == ["none", "none"]
    assert all(r.poison_rate is None for r in exp.runs[:2])
    assert len({r.run_id for r in exp.runs}) == len(exp.runs)


def test_run_id_depends_on_every_setting() -> None:
    a = parse_config(FAST).runs
    b = parse_config({**FAST, "seeds": [0, 2]}).runs
    assert a[0].run_id == b[0].run_id  # same cell, same seed
    assert a[1].run_id != b[1].run_id  # seed 1 vs seed 2
    c = parse_config({**FAST, "attacks": [{"name": "feature_trigger", "target": 2}]}).runs
    assert {r.run_id for r in c if r.attack.name != "none"}.isdisjoint({r.run_id for r in a})


def test_run_grid_stores_every_run_and_writes_summaries(tmp_path: Path) -> None:
    exp = parse_config(FAST)
    outcome = run_grid(exp, tmp_path, jobs=1)
    assert outcome.n_failed == 0
    assert len(stored_rows(tmp_path)) == len(exp.runs)

    summary = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert len(summary) == len(exp.runs)
    assert all(list(r) == list(COLUMNS) for r in summary)
    with open(tmp_path / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in summary]
    assert list(rows[0]) == list(COLUMNS)

    for r in summary:
        assert 0.0 <= r["clean_acc"] <= 1.0
        if r["attack"].startswith("feature_trigger"):
            assert r["asr"] is not None and r["ra"] is not None
            assert r["n_poison"] == int(r["poison_rate"] * 133)  # wine's training split holds 133 rows
        else:
            assert r["asr"] is None and r["ra"] is None
    # acc_drop is measured against the clean baseline of the same seed.
    base = {r["seed"]: r["clean_acc"] for r in summary if r["attack"] == "none"}
    for r in summary:
        assert r["acc_drop"] == pytest.approx(base[r["seed"]] - r["clean_acc"], abs=1e-6)


def test_resume_skips_finished_runs_and_never_duplicates(tmp_path: Path) -> None:
    exp = parse_config(FAST)
    first = run_grid(exp, tmp_path)
    seen: list[str] = []
    again = run_grid(exp, tmp_path, resume=True, on_result=lambda r: seen.append(r["run_id"]))
    assert seen == []
    assert again.n_skipped == len(exp.runs)
    assert len(stored_rows(tmp_path)) == len(exp.runs)
    assert [r["clean_acc"] for r in again.records] == [r["clean_acc"] for r in first.records]


def test_existing_results_need_resume(tmp_path: Path) -> None:
    exp = parse_config(FAST)
    run_grid(exp, tmp_path)
    with pytest.raises(ConfigError, match="--resume"):
        run_grid(exp, tmp_path)


def test_interrupted_grid_keeps_finished_runs_and_resumes(tmp_path: Path) -> None:
    exp = parse_config(FAST)
    done: list[str] = []

    def crash_after_three(record: dict) -> None:
        done.append(record["run_id"])
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(exp, tmp_path, on_result=crash_after_three)
    assert {rid for rid, _ in stored_rows(tmp_path)} == set(done)

    rest: list[str] = []
    outcome = run_grid(exp, tmp_path, resume=True, on_result=lambda r: rest.append(r["run_id"]))
    assert outcome.n_skipped == 3
    assert set(rest).isdisjoint(done)
    assert len(rest) == len(exp.runs) - 3
    assert len(stored_rows(tmp_path)) == len(exp.runs)


def test_a_failing_run_is_recorded_and_the_grid_goes_on(tmp_path: Path) -> None:
    # Class 0 of wine holds 44 training rows: a 50% budget (66 rows) cannot be met.
    exp = parse_config(
        {**FAST, "attacks": [{"name": "targeted_flip", "source": 0, "target": 1}], "poison_rates": [0.1, 0.5]}
    )
    outcome = run_grid(exp, tmp_path)
    failed = [r for r in outcome.records if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["poison_rate"] == 0.5 for r in failed)
    assert all("exceeds" in r["error"] for r in failed)
    ok = [r for r in outcome.records if r["status"] == "ok"]
    assert len(ok) == len(exp.runs) - 2
    # the targeted flip reports the share of source-class inputs sent to the target
    assert all(0.0 <= r["asr"] <= 1.0 for r in ok if r["attack"] != "none")
    # resume retries failed runs (they are not finished) without duplicating rows
    run_grid(exp, tmp_path, resume=True)
    assert len(stored_rows(tmp_path)) == len(exp.runs)


def test_parallel_runs_match_serial_runs(tmp_path: Path) -> None:
    exp = parse_config({**FAST, "poison_rates": [0.1]})
    serial = run_grid(exp, tmp_path / "serial", jobs=1)
    parallel = run_grid(exp, tmp_path / "parallel", jobs=2)
    key = ("run_id", "clean_acc", "asr", "ra", "n_poison")
    assert [[r[k] for k in key] for r in serial.records] == [[r[k] for k in key] for r in parallel.records]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**FAST, "atacks": ["badnets"]}, "unknown config key 'atacks'"),
        ({**FAST, "attacks": ["nope"]}, "unknown attack 'nope'"),
        ({**FAST, "models": ["nope"]}, "unknown model 'nope'"),
        ({**FAST, "datasets": ["nope"]}, "unknown dataset 'nope'"),
        ({**FAST, "poison_rates": [1.5]}, "poison rate must lie in"),
        ({**FAST, "poison_rates": [0]}, "poison rate must lie in"),
        ({**FAST, "attacks": ["badnets"]}, "attack .badnets. is for image data"),
        ({**FAST, "attacks": [{"name": "badnets", "patch": 3}]}, "has no parameter 'patch'"),
        ({**FAST, "seeds": []}, "non-empty list"),
        ({**FAST, "test_size": 1.5}, "test_size"),
    ],
)
def test_bad_configs_are_rejected_with_one_clear_message(raw: dict, message: str) -> None:
    with pytest.raises(PoisonlabError, match=message):
        parse_config(raw)


def test_load_config_reads_toml_and_user_files(tmp_path: Path) -> None:
    data = tmp_path / "tiny.csv"
    rows = ["a,b,label"] + [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40)]
    data.write_text("\n".join(rows) + "\n")
    config = tmp_path / "exp.toml"
    config.write_text(
        'datasets = [{ path = "tiny.csv", label_col = "label" }]\n'
        'models = ["logreg"]\n'
        'attacks = ["label_flip"]\n'
        "poison_rates = [0.1]\n"
    )
    exp = load_config(config)
    assert len(exp.runs) == 2  # baseline + one attack run, seed 0
    assert exp.runs[0].dataset.label == "tiny"
    before = exp.runs[1].run_id
    data.write_text("\n".join([*rows, "1,1,0"]) + "\n")
    assert load_config(config).runs[1].run_id != before  # edited data is a new run

    (tmp_path / "bad.toml").write_text("datasets = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_a_missed_detection_counts_in_the_mean_over_seeds() -> None:
    from poisonlab import metrics
    from poisonlab.experiments import CentralisedRecord, aggregate

    poison = np.array([1, 1, 0, 0, 0], dtype=bool)
    missed = metrics.detection_scores(poison, np.zeros(5, dtype=bool))["f1"]
    records = [
        CentralisedRecord(
            run_id=f"r{seed}",
            dataset="d",
            model="m",
            attack="badnets",
            seed=seed,
            poison_rate=0.1,
            defense="auto",
            clean_acc=0.9,
            det_f1=f1,
        )
        for seed, f1 in enumerate([missed, 0.9, 0.9])
    ]
    [row] = aggregate(records)
    assert missed == 0.0
    assert row["det_f1"][0] == pytest.approx(0.6) and row["n_seeds"] == 3


def test_a_grid_measures_clean_label_attacks_on_their_own_terms(tmp_path: Path) -> None:
    """An attack on one input scores 1 or 0 per run; a source-specific backdoor is scored on its source."""
    fast = {"surrogate_epochs": 2, "steps": 10}
    exp = parse_config(
        {
            "datasets": ["digits"],
            "models": [{"name": "cnn", "epochs": 2}],
            "attacks": [
                {"name": "feature_collision", "target": 3, **fast},
                {"name": "sleeper_agent", "target": 0, "source": 1, "retrain": 0, **fast},
            ],
            "poison_rates": [0.01],
            "seeds": [0, 1],
            "baseline": False,
        }
    )
    outcome = run_grid(exp, tmp_path, jobs=1)
    assert outcome.n_failed == 0
    rows = json.loads((tmp_path / "summary.json").read_text())["runs"]
    collision = [r for r in rows if r["attack"].startswith("feature_collision")]
    sleeper = [r for r in rows if r["attack"].startswith("sleeper_agent")]
    assert len(collision) == len(sleeper) == 2
    assert all(r["asr"] in (0.0, 1.0) and r["ra"] is None and r["n_poison"] <= 13 for r in collision)
    for row in sleeper:  # on source-class test inputs only: both rates are multiples of 1/n_source
        _, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=row["seed"])
        n_source = int(np.sum(test.y == 1))
        assert row["ra"] > 0
        for rate in (row["asr"], row["ra"]):
            assert rate * n_source == pytest.approx(round(rate * n_source), abs=1e-6)


def test_a_defended_grid_fits_the_scan_proxy_once_per_cell(tmp_path: Path, monkeypatch) -> None:
    """Three detector defenses of one cell scan the same poisoned split: one proxy fit serves them."""
    from poisonlab.defenses import evidence

    computed = []
    real = evidence.compute_evidence

    def counting(dataset, **kwargs):
        computed.append(len(dataset))
        return real(dataset, **kwargs)

    monkeypatch.setattr(evidence, "compute_evidence", counting)
    raw = {
        "datasets": ["wine"],
        "models": ["logreg"],
        "attacks": ["label_flip"],
        "defenses": ["none", "knn_label", "confident_learning", "lof"],
        "poison_rates": [0.1, 0.2],
        "seeds": [0, 1],
    }
    outcome = run_grid(parse_config(raw), tmp_path / "out")
    cells = 2 * (1 + 2)  # seeds × (the clean baseline + two rates)
    assert len(outcome.records) == cells * 4 and all(r.status == "ok" for r in outcome.records)
    assert len(computed) == cells
    assert not list((tmp_path / "out").glob(".evidence-*"))  # the cache goes with the grid

    # the same figures as when every defense fits its own proxy
    monkeypatch.setattr("poisonlab.experiments.runner.evidence_cache", _no_cache)
    alone = run_grid(parse_config(raw), tmp_path / "alone")
    assert len(computed) == cells + 3 * cells
    shared = {r.run_id: (r.det_f1, r.clean_acc, r.n_removed) for r in outcome.records}
    assert shared == {r.run_id: (r.det_f1, r.clean_acc, r.n_removed) for r in alone.records}


@contextlib.contextmanager
def _no_cache(parent: Path) -> Iterator[None]:
    yield None


def test_a_grid_removes_the_evidence_folder_a_killed_grid_left(tmp_path: Path) -> None:
    """A driver killed outright leaves its cache; the next grid there removes it, not a live one's."""
    import os

    from poisonlab.defenses.evidence_cache import evidence_cache

    dead = subprocess_pid_that_exited()
    orphan = tmp_path / f".evidence-{dead}-abc"
    live = tmp_path / f".evidence-{os.getpid()}-def"
    for folder in (orphan, live):
        folder.mkdir()
        (folder / "x.npz").write_bytes(b"")
    with evidence_cache(tmp_path) as mine:
        assert mine.is_dir() and mine.name.startswith(f".evidence-{os.getpid()}-")
        assert not orphan.exists() and live.exists()
    assert not mine.exists() and live.exists()


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid
