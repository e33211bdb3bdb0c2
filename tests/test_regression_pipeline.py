"""Regression end to end: attacks and robust-regression defenses in the runner, scan and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS
from poisonlab.data import load_dataset, train_test_split
from poisonlab.defenses import DEFENSES
from poisonlab.defenses.scan import scan
from poisonlab.errors import IncompatibleError
from poisonlab.experiments import parse_config, run_grid

pytestmark = pytest.mark.usefixtures("single_threaded")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    experiment = parse_config(
        {
            "datasets": ["diabetes"],
            "models": ["ridge"],
            "attacks": ["optp"],
            "poison_rates": [0.2],
            "defenses": ["none", "trim", "huber"],
            "seeds": [0],
        }
    )
    outcome = run_grid(experiment, tmp_path_factory.mktemp("grid"), jobs=1)
    assert outcome.n_failed == 0, [r["error"] for r in outcome.records]
    return {(r["attack"], r["defense"]): r for r in outcome.records}


def test_optp_hurts_ridge_and_trim_undoes_it(grid) -> None:
    # measured (seed 0): OptP 20% ratio 2.20, TRIM 0.99 (all 66 poisons removed), Huber 3.39
    clean, attacked = grid["none", "none"], grid["optp", "none"]
    assert clean["mse_ratio"] == 1.0 and clean["clean_acc"] is None and clean["test_mse"] > 0
    assert attacked["mse_ratio"] >= 2.0
    trimmed = grid["optp", "trim"]
    assert trimmed["mse_ratio"] <= 1.1
    assert trimmed["det_tpr"] >= 0.95 and trimmed["det_precision"] >= 0.9
    assert grid["none", "trim"]["mse_ratio"] <= 1.05  # TRIM's cost on clean data
    assert grid["optp", "huber"]["mse_ratio"] > trimmed["mse_ratio"]


def test_statp_moves_points_to_the_box_corners() -> None:
    train, _ = train_test_split(load_dataset("diabetes"), random_state=0)
    result = ATTACKS.create("statp").poison(train, 0.1, 0)
    X = result.dataset.X[result.poison_mask]
    lo, hi = train.X.min(axis=0), train.X.max(axis=0)
    assert np.all(np.isclose(X, lo, atol=1e-5) | np.isclose(X, hi, atol=1e-5))
    y = result.dataset.y[result.poison_mask]
    assert np.all(np.isclose(y, train.y.min()) | np.isclose(y, train.y.max()))


def test_scan_finds_optp_poisons_without_a_rate() -> None:
    # measured: 88 flagged, 84 of the 88 poisons
    result = ATTACKS.create("optp").poison(load_dataset("diabetes"), 0.2, 0)
    report = scan(result.dataset)
    assert set(report.per_detector) == {"trim", "residual"}
    found = report.flags[result.poison_mask].mean()
    precision = result.poison_mask[report.flags].mean()
    assert found >= 0.9 and precision >= 0.9, (found, precision)


def test_clean_regression_scan_raises_few_flags() -> None:
    report = scan(load_dataset("diabetes"))
    assert report.n_flagged <= 0.05 * 442  # measured 0


def test_regression_defenses_refuse_classification_data_and_the_reverse() -> None:
    digits = load_dataset("digits").subset(np.arange(200))
    with pytest.raises(IncompatibleError, match=r"detector 'trim' is for regression data.*'digits'"):
        DEFENSES.create("trim").apply(digits, np.random.default_rng(0))
    with pytest.raises(
        IncompatibleError, match=r"detector 'spectral' is for classification data.*'diabetes'"
    ):
        DEFENSES.create("spectral").apply(load_dataset("diabetes"), np.random.default_rng(0))


def test_auto_on_regression_data_is_trim() -> None:
    diabetes = load_dataset("diabetes")
    auto = DEFENSES.create("auto").apply(diabetes, np.random.default_rng(0))
    trim = DEFENSES.create("trim").apply(diabetes, np.random.default_rng(0))
    np.testing.assert_array_equal(auto.removed_mask, trim.removed_mask)
    assert 0 < auto.removed_mask.sum() < 0.5 * len(diabetes)


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_attack_then_scan_a_regression_file(tmp_path: Path) -> None:
    done = poisonlab("attack", "optp", "diabetes", "--rate", "0.2", "--out", "p.npz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        assert str(f["task"]) == "regression" and f["poison_mask"].sum() == 88
    done = poisonlab("scan", "p.npz", "--out", "r.json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # poisons found: the gate fails
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_samples"] == 442 and report["n_flagged"] >= 80


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("attack", "optp", "digits", "--rate", "0.1"),
            "OptP poisons regression data; digits is a classification",
        ),
        (("attack", "label_flip", "diabetes", "--rate", "0.1"), "poisons classification data; diabetes is a"),
        (("attack", "optp", "diabetes", "--rate", "0.99"), "leaves 5 clean samples of diabetes, fewer than"),
        (("scan", "diabetes", "--detector", "knn_label"), "detector 'knn_label' is for classification data"),
        (
            ("scan", "digits", "--detector", "trim"),
            "detector 'trim' is for regression data, so it cannot work with dataset 'digits'",
        ),
        (
            ("scan", "t.csv", "--label-col", "target", "--task", "regression"),
            "must hold numbers, found 'high'",
        ),
    ],
)
def test_cli_regression_bad_input_gets_one_line_and_exit_2(args, message, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,target\n1,2,high\n3,4,low\n")
    if args[0] == "attack":
        args = (*args, "--out", "x.npz")
    done = poisonlab(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"datasets": ["digits"], "models": ["ridge"], "attacks": ["none"]},
            "model 'ridge' is for regression data, so it cannot work with dataset 'digits'",
        ),
        (
            {"datasets": ["diabetes"], "models": ["cnn"], "attacks": ["none"]},
            "model 'cnn' is for classification data, so it cannot work with dataset 'diabetes'",
        ),
        (
            {"datasets": ["diabetes"], "models": ["ridge"], "attacks": ["label_flip"]},
            "attack 'label_flip' is for classification data, so it cannot work with dataset 'diabetes'",
        ),
        (
            {"datasets": ["diabetes"], "models": ["ridge"], "attacks": ["none"], "defenses": ["spectral"]},
            "defense 'spectral' is for classification data",
        ),
        (
            {"datasets": ["wine"], "models": ["logreg"], "attacks": ["none"], "defenses": ["trim"]},
            "defense 'trim' is for regression data, so it cannot work with dataset 'wine'",
        ),
    ],
)
def test_configs_mixing_tasks_are_refused_before_any_run(raw, message) -> None:
    from poisonlab.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_a_regression_table_in_a_config(tmp_path: Path) -> None:
    from poisonlab.experiments.run import run_experiment

    data = load_dataset("diabetes")
    lines = ["f" + ",f".join(str(i) for i in range(10)) + ",target"]
    lines += [",".join(f"{v:.6g}" for v in row) + f",{t}" for row, t in zip(data.X, data.y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    dataset = {"path": str(tmp_path / "d.csv"), "label_col": "target", "task": "regression"}
    experiment = parse_config(
        {"datasets": [dataset], "models": ["ridge"], "attacks": ["statp"], "poison_rates": [0.1]}
    )
    records = [run_experiment(spec) for spec in experiment.runs]
    assert [r["status"] for r in records] == ["ok", "ok"], [r["error"] for r in records]
    clean, attacked = records
    assert clean["attack"] == "none" and clean["test_mse"] > 0 and clean["clean_acc"] is None
    assert attacked["test_mse"] > clean["test_mse"]  # measured 1.3x on seed 0
