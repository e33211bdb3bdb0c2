"""The federated scenario of the run config and the ``poisonlab fl`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from poisonlab.cli import main
from poisonlab.errors import ConfigError, IncompatibleError, UnknownNameError
from poisonlab.experiments import COLUMNS, parse_config, run_grid
from poisonlab.experiments.federated import FederatedSpec
from poisonlab.experiments.store import ResultStore

FAST = {"clients": 10, "rounds": 4}


def config(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "scenario": "federated",
        "datasets": ["digits"],
        "attacks": ["sign_flip"],
        "aggregators": ["fedavg", "median"],
        "malicious": [0.2],
        "seeds": [0],
        "federated": dict(FAST),
    }
    raw.update(overrides)
    return raw


def test_a_federated_config_expands_to_one_run_per_cell_with_baselines() -> None:
    exp = parse_config(config(seeds=[0, 1], malicious=[0.1, 0.2]))
    assert all(isinstance(s, FederatedSpec) for s in exp.runs)
    # (baseline: 1 share) + (sign_flip: 2 shares), × 2 aggregators × 2 seeds
    assert len(exp.runs) == (1 + 2) * 2 * 2
    assert len({s.run_id for s in exp.runs}) == len(exp.runs)
    baselines = [s for s in exp.runs if s.attack.name == "none"]
    assert len(baselines) == 4 and all(s.malicious is None for s in baselines)


def test_federated_runs_go_to_the_same_store_and_summary(tmp_path: Path) -> None:
    exp = parse_config(config())
    rounds: list[dict[str, object]] = []
    outcome = run_grid(exp, tmp_path, on_progress=rounds.append)
    assert len(rounds) == 4 * len(exp.runs)
    summary = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert all(list(r) == list(COLUMNS) for r in summary)
    by = {(r["attack"], r["aggregator"]): r for r in summary}
    assert set(by) == {
        ("none", "fedavg"),
        ("none", "median"),
        ("sign_flip", "fedavg"),
        ("sign_flip", "median"),
    }
    assert all(r["scenario"] == "federated" and r["status"] == "ok" for r in summary)
    flipped = by[("sign_flip", "fedavg")]
    assert flipped["malicious_share"] == 0.2 and flipped["n_malicious"] == 2
    # federated runs have their own columns; the centralised ones stay empty
    assert flipped["defense"] is None and flipped["poison_rate"] is None and flipped["n_poison"] is None
    # sign flipping breaks FedAvg, not the median, even in 4 rounds
    assert by[("sign_flip", "fedavg")]["clean_acc"] < 0.3
    assert by[("sign_flip", "median")]["clean_acc"] > 0.6
    drop = by[("sign_flip", "fedavg")]["acc_drop"]
    assert drop == pytest.approx(
        by[("none", "fedavg")]["clean_acc"] - by[("sign_flip", "fedavg")]["clean_acc"]
    )
    # the stored record keeps the per-round history
    with ResultStore(tmp_path / "results.sqlite") as store:
        stored = store.records()
    history = next(r for r in stored if r["attack"] == "sign_flip" and r["aggregator"] == "median")["rounds"]
    assert [h["round"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["accuracy"] == by[("sign_flip", "median")]["clean_acc"]
    assert outcome.n_failed == 0


def test_a_setting_written_at_its_default_names_the_same_run() -> None:
    spelled = parse_config(config(federated={**FAST, "fraction": 1.0, "lr": 0.2}))
    assert [s.run_id for s in spelled.runs] == [s.run_id for s in parse_config(config()).runs]


def test_a_count_of_malicious_clients_is_stored_as_a_share() -> None:
    exp = parse_config(config(malicious=[2], aggregators=["fedavg"], baseline=False))
    [spec] = exp.runs
    assert isinstance(spec, FederatedSpec) and spec.malicious == 2 and spec.malicious_share == 0.2


def test_selection_rules_report_the_share_of_malicious_updates_kept(tmp_path: Path) -> None:
    exp = parse_config(config(aggregators=["krum"], baseline=False, federated={"clients": 10, "rounds": 2}))
    [record] = run_grid(exp, tmp_path).records
    assert record["malicious_selected"] == 0.0  # Krum never picks a sign-flipped update


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"malicious": [0.4], "aggregators": ["krum"]}, ConfigError, "krum needs n >= 2f + 3"),
        ({"malicious": [11]}, ConfigError, "malicious count must lie in 0..10"),
        ({"federated": {"clients": 10, "alpha": 0.0}}, ConfigError, "alpha must be a finite number > 0"),
        ({"federated": {"clients": 5000}}, ConfigError, "fewer samples than clients"),
        ({"federated": {"client": 10}}, ConfigError, "unknown [federated] setting 'client'"),
        ({"aggregators": ["krumm"]}, UnknownNameError, "unknown aggregator 'krumm'"),
        ({"attacks": ["badnets"]}, UnknownNameError, "unknown client attack 'badnets'"),
        ({"poison_rates": [0.1]}, ConfigError, "unknown config key 'poison_rates' in a federated config"),
        ({"datasets": ["diabetes"]}, ConfigError, "needs classification data"),
        ({"scenario": "centralized"}, ConfigError, "scenario must be one of"),
        # values only the attack's crafting or the rule itself checks, and data-shape mismatches
        ({"attacks": [{"name": "sign_flip", "scale": -1}]}, ConfigError, "scale must be > 0"),
        ({"aggregators": [{"name": "multi_krum", "m": 100}]}, ConfigError, "m must be in [1, n]"),
        ({"attacks": [{"name": "backdoor", "target": "x"}]}, ConfigError, "target must be an integer"),
        (
            {"attacks": [{"name": "backdoor"}], "datasets": ["wine"]},
            IncompatibleError,
            "client attack 'backdoor' is for image data",
        ),
        ({"models": ["cnn"], "datasets": ["wine"]}, IncompatibleError, "model 'cnn' is for image data"),
        ({"models": ["logreg"]}, IncompatibleError, "model 'logreg' has federated False"),
    ],
)
def test_bad_federated_configs_fail_before_any_run(
    overrides: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        parse_config(config(**overrides))
    assert message in str(info.value)


def test_fl_command_runs_round_by_round_and_stores_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fl", "--clients", "10", "--rounds", "3", "--attack", "sign_flip", "--aggregator", "krum"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "krum vs sign_flip: 2 of 10 clients malicious, final accuracy" in out
    [row] = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert row["scenario"] == "federated" and row["aggregator"] == "krum" and row["malicious_selected"] == 0.0


def test_fl_into_a_folder_with_results_is_refused_in_one_line(tmp_path: Path) -> None:
    def fl() -> subprocess.CompletedProcess[str]:
        argv = ["fl", "--clients", "5", "--rounds", "1", "--out", "out"]
        command = [sys.executable, "-m", "poisonlab", *argv]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)

    assert fl().returncode == 0
    stored = (tmp_path / "out" / "results.sqlite").read_bytes()
    again = fl()
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "already holds results.sqlite" in again.stderr
    assert (tmp_path / "out" / "results.sqlite").read_bytes() == stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "10", "--malicious", "11"], "malicious count must lie in 0..10"),
        (["--clients", "10", "--malicious", "0.4", "--aggregator", "bulyan"], "bulyan needs n >= 4f + 3"),
        (["--alpha", "-1"], "alpha must be a finite number > 0"),
        (["--malicious", "lots"], "--malicious must be a share in [0, 1] or a count of clients"),
        (["--agg-param", "f"], "--agg-param wants KEY=VALUE"),
        (["--data", "missing.npz"], "missing.npz: no such file or folder"),
        (["--attack", "backdoor", "--param", "target=x"], "attack_params target must be an integer"),
        (["--attack", "backdoor", "--param", "patch_size=9"], "needs images (N×C×H×W) at least that large"),
        (["--model", "cnn", "--data", "wine"], "model 'cnn' is for image data"),
        (["--model", "logreg"], "model 'logreg' has federated False, so it cannot work with the federated"),
        (["--attack", "backdoor", "--data", "wine"], "client attack 'backdoor' is for image data"),
        (["--aggregator", "norm_clipping", "--agg-param", "max_norm=-1"], "max_norm must be a finite"),
        (["--param", "scale=x"], "attack_params for 'sign_flip': '<=' not supported"),
        (["--aggregator", "krum", "--agg-param", "f=x"], "krum: f must be an integer, got 'x'"),
    ],
)
def test_fl_bad_input_gets_one_line_and_stores_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "poisonlab", "fl", *args, "--out", "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_fl_malicious_reads_an_integer_as_a_count_as_the_config_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fl", "--clients", "10", "--rounds", "1", "--malicious", "1", "--out", str(tmp_path / "a")]
    assert main(argv) == 0
    assert "1 of 10 clients malicious" in capsys.readouterr().out
    argv = ["fl", "--clients", "10", "--rounds", "1", "--malicious", "0.5", "--out", str(tmp_path / "b")]
    assert main(argv) == 0
    assert "5 of 10 clients malicious" in capsys.readouterr().out


def test_fl_backdoor_runs_on_data_whose_labels_are_not_0_to_k(tmp_path: Path) -> None:
    from poisonlab.data import Dataset, load_dataset
    from poisonlab.data.readers import write_npz

    digits = load_dataset("digits")
    write_npz(tmp_path / "shifted.npz", Dataset.from_arrays(digits.X, digits.original_labels() + 10))
    argv = ["fl", "--data", str(tmp_path / "shifted.npz"), "--clients", "10", "--rounds", "1"]
    assert main([*argv, "--attack", "backdoor", "--out", str(tmp_path / "out")]) == 0
    [row] = json.loads((tmp_path / "out" / "summary.json").read_text())["runs"]
    assert row["status"] == "ok" and 0.0 <= row["asr"] <= 1.0


def test_resume_reads_a_folder_written_before_federated_runs_had_their_own_columns(tmp_path: Path) -> None:
    import sqlite3

    exp = parse_config(config(aggregators=["median"], baseline=False))
    [spec] = exp.runs
    # a record as poisonlab stored it before: the rule under defense, the share under
    # poison_rate, the malicious count under n_poison, no typed fields
    old = {
        "run_id": spec.run_id,
        "scenario": "federated",
        "dataset": "digits",
        "model": "mlp",
        "attack": "sign_flip",
        "poison_rate": 0.2,
        "defense": "median",
        "seed": 0,
        "n_poison": 2,
        "clean_acc": 0.75,
        "asr": None,
        "ra": None,
        "acc_drop": None,
        "malicious_selected": None,
        "det_tpr": None,
        "n_train": 1347,
        "n_test": 450,
        "rounds": [{"round": 1, "accuracy": 0.75}],
        "seconds": 1.0,
        "status": "ok",
        "error": None,
    }
    with ResultStore(tmp_path / "results.sqlite"):
        pass  # creates the schema
    db = sqlite3.connect(tmp_path / "results.sqlite")
    with db:
        db.execute(
            "INSERT INTO runs VALUES (?, 'ok', ?, ?, NULL, NULL, '2026-11-30T00:00:00+00:00')",
            (spec.run_id, spec.to_json(), json.dumps(old)),
        )
    db.close()
    outcome = run_grid(exp, tmp_path, resume=True)
    assert outcome.n_skipped == 1  # the old run id still names the run: nothing is rerun
    [row] = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert row["aggregator"] == "median" and row["malicious_share"] == 0.2 and row["n_malicious"] == 2
    assert row["defense"] is None and row["poison_rate"] is None and row["clean_acc"] == 0.75
