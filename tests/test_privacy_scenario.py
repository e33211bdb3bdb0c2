"""The privacy scenario of the run config: Truth Serum measured by LiRA, clean against poisoned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from poisonlab.cli import main
from poisonlab.data import load_dataset
from poisonlab.defenses import DEFENSES
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.experiments import COLUMNS, SCENARIOS, PrivacyRecord, PrivacySpec, parse_config, run_grid
from poisonlab.experiments.run import run_experiment
from poisonlab.privacy import membership_audit


def config(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "scenario": "privacy",
        "datasets": ["digits"],
        "models": ["logreg"],
        "attacks": [{"name": "truth_serum", "copies": 4}],
        "targets": 20,
        "shadow_models": 8,
        "seeds": [0],
    }
    raw.update(overrides)
    return raw


def test_the_privacy_scenario_is_registered_with_its_record_type() -> None:
    assert SCENARIOS.get("privacy").tag("records") == PrivacyRecord.__name__


def test_a_privacy_config_expands_to_one_run_per_cell_without_a_separate_baseline() -> None:
    exp = parse_config(
        config(
            models=["logreg", "mlp"],
            attacks=[{"name": "truth_serum", "copies": 2}, {"name": "truth_serum", "copies": 8}],
            defenses=["none", "dp_sgd"],
            seeds=[0, 1],
            incompatible="skip",  # dp_sgd trains torch models only: logreg × dp_sgd is left out
        )
    )
    assert all(isinstance(s, PrivacySpec) for s in exp.runs)
    assert len(exp.runs) == (2 + 1) * 2 * 2  # (logreg: none; mlp: none, dp_sgd) × 2 attacks × 2 seeds
    assert len({s.run_id for s in exp.runs}) == len(exp.runs)
    assert exp.skipped and "dp_sgd" in exp.skipped[0]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"attacks": ["badnets"]}, ConfigError, "truth_serum"),
        ({"attacks": [{"name": "truth_serum", "copies": 0}]}, ConfigError, "copies"),
        ({"attacks": [{"name": "truth_serum", "targets": 3}]}, ConfigError, "targets"),
        ({"targets": 0}, ConfigError, "targets"),
        ({"targets": 5000}, ConfigError, "targets"),
        ({"shadow_models": 4}, ConfigError, "shadow_models"),
        ({"defenses": ["dp_sgd"]}, IncompatibleError, "logreg"),
        ({"defenses": ["dpa"]}, IncompatibleError, "dpa"),
        ({"defenses": ["spectral"]}, IncompatibleError, "spectral"),
        ({"datasets": ["diabetes"]}, IncompatibleError, "diabetes"),
        ({"models": [{"name": "logreg", "random_state": 1}]}, ConfigError, "random_state"),
        ({"baseline": False}, ConfigError, "baseline"),
        ({"test_size": 0.3}, ConfigError, "test_size"),
    ],
)
def test_bad_privacy_configs_fail_in_one_line_before_any_run(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        parse_config(config(**overrides))
    assert "\n" not in str(caught.value)


def test_a_record_is_the_membership_audit_and_the_poisons_raise_lira(tmp_path: Path) -> None:
    outcome = run_grid(parse_config(config()), tmp_path)
    assert outcome.n_failed == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    (row,) = summary["runs"]
    assert list(row) == list(COLUMNS)
    audit = membership_audit(
        load_dataset("digits"), model="logreg", n_models=8, targets=20, copies=4, random_state=0
    )
    assert row["lira_tpr_1"] == pytest.approx(audit.poisoned.tpr_at_1pct_fpr)
    assert row["lira_tpr_1_clean"] == pytest.approx(audit.clean.tpr_at_1pct_fpr)
    assert row["lira_auc"] == pytest.approx(audit.poisoned.auc)
    assert row["clean_acc"] == pytest.approx(audit.poisoned_accuracy)
    assert row["n_targets"] == 20 and row["n_modified"] == 80 and row["shadow_models"] == 8
    # Measured (digits, logreg, 8 models, 20 targets × 4 copies, seed 0): TPR at 1% FPR
    # 6.2% clean -> 43.8% poisoned, AUC 0.634 -> 0.955.
    assert row["lira_tpr_1"] >= 3 * row["lira_tpr_1_clean"] and row["lira_tpr_1"] > 0.2
    assert row["lira_auc"] > row["lira_auc_clean"] + 0.2
    # acc_drop is the run's own clean models against its poisoned ones: no baseline run needed
    assert row["acc_drop"] == pytest.approx(audit.clean_accuracy - audit.poisoned_accuracy, abs=1e-6)
    (cell,) = summary["aggregate"]
    assert cell["condition"] == "n_targets" and cell["lira_tpr_1"][0] == pytest.approx(row["lira_tpr_1"])


def test_dp_sgd_trains_every_model_and_records_its_epsilon() -> None:
    exp = parse_config(
        config(
            datasets=["wine"],
            models=[{"name": "mlp", "epochs": 5}],
            targets=5,
            shadow_models=6,
            defenses=[{"name": "dp_sgd", "noise_multiplier": 1.0}],
        )
    )
    (spec,) = exp.runs
    record = run_experiment(spec, exp.dataset_of(spec))
    assert record.status == "ok", record.error
    assert record.defense.startswith("dp_sgd")
    audit = membership_audit(
        load_dataset("wine"),
        model="mlp",
        model_params={"epochs": 5},
        n_models=6,
        targets=5,
        copies=4,
        defense=DEFENSES.create("dp_sgd", noise_multiplier=1.0),
        random_state=0,
    )
    assert audit.epsilon is not None and audit.epsilon > 0
    assert record.dp_epsilon == pytest.approx(audit.epsilon)
    assert record.lira_auc == pytest.approx(audit.poisoned.auc)


def test_poisonlab_run_prints_lira_clean_beside_poisoned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "privacy.toml"
    path.write_text(
        'scenario = "privacy"\ndatasets = ["wine"]\nmodels = ["logreg"]\n'
        'attacks = [{ name = "truth_serum", copies = 2 }]\ntargets = 5\nshadow_models = 6\n'
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "TPR@1%" in out and "clean" in out
    page = (tmp_path / "out" / "report.html").read_text()
    assert "LiRA TPR@1% FPR, poisoned %" in page and "n_targets 5" in page
