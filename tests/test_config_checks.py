"""A grid is checked against its data when the config is read: wrong values fail before any run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poisonlab.cli import main
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.experiments import parse_config


def grid(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {"datasets": ["digits"], "models": ["logreg"], "attacks": ["badnets"]}
    return raw | overrides


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attacks": [{"name": "badnets", "target": 12}]}, "target class 12 does not exist in digits"),
        ({"attacks": [{"name": "targeted_flip", "source": 11}]}, "source class 11 does not exist"),
        ({"attacks": [{"name": "badnets", "patch_size": 20}]}, "patch_size 20 does not fit 8×8 images"),
        ({"attacks": [{"name": "badnets", "position": [7, 7]}]}, "patch at [7, 7] does not fit 8×8"),
        ({"models": [{"name": "logreg", "C": -1}]}, "model 'logreg[C=-1]': The 'C' parameter"),
        ({"models": [{"name": "knn", "n_neighbors": 0}]}, "'n_neighbors' parameter of KNeighborsClassifier"),
        (
            {"defenses": [{"name": "knn_label", "k": 0}]},
            "defense 'knn_label[k=0]': k must be an integer >= 1",
        ),
        ({"defenses": [{"name": "lof", "n_neighbors": 0}]}, "n_neighbors must be an integer >= 1"),
        ({"seeds": [-1]}, "seeds must lie in 0..4294967295, got -1"),
        ({"seeds": [2**40]}, f"seeds must lie in 0..4294967295, got {2**40}"),
        ({"incompatible": "ignore"}, "incompatible must be one of error, skip"),
    ],
)
def test_a_value_that_cannot_work_fails_the_config(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(grid(**overrides))
    assert message in str(caught.value)


def test_a_feature_the_table_lacks_fails_the_config() -> None:
    with pytest.raises(IncompatibleError, match=r"feature 40 does not exist: wine has features 0\.\.12"):
        parse_config(grid(datasets=["wine"], attacks=[{"name": "feature_match", "feature": 40}]))


def test_the_cli_refuses_a_bad_grid_in_one_line_before_any_run(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'datasets = ["digits"]\nmodels = ["logreg"]\nattacks = [{ name = "badnets", target = 12 }]\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "target class 12 does not exist" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


MIXED = {
    "datasets": ["digits", "wine"],
    "models": ["logreg", "cnn"],
    "attacks": ["label_flip", "badnets", {"name": "targeted_flip", "source": 1, "target": 7}],
    "poison_rates": [0.1],
    "seeds": [0, 1],
}


def test_a_mixed_grid_is_refused_by_default_at_its_first_incompatible_cell() -> None:
    with pytest.raises(IncompatibleError, match="is for image data, so it cannot work with dataset 'wine'"):
        parse_config(MIXED)


def test_skip_leaves_out_only_the_cells_that_cannot_work_and_says_why_once_each() -> None:
    experiment = parse_config(MIXED | {"incompatible": "skip"})
    on_wine = [s for s in experiment.runs if s.dataset.name == "wine"]
    on_digits = [s for s in experiment.runs if s.dataset.name == "digits"]
    # digits: every cell (2 models × (baseline + 3 attacks) × 2 seeds); wine: logreg × (none, label_flip)
    assert len(on_digits) == 2 * 4 * 2
    assert {(s.model.name, s.attack.name) for s in on_wine} == {("logreg", "none"), ("logreg", "label_flip")}
    assert len(on_wine) == 2 * 2
    assert len(experiment.skipped) == 3  # cnn, badnets, targeted_flip's class 7 on wine
    assert any(
        line.startswith("skipped 8 runs: model 'cnn' is for image data") for line in experiment.skipped
    )
    assert any("target class 7 does not exist in wine" in line for line in experiment.skipped)


def test_skip_still_fails_a_value_that_is_wrong_for_every_dataset() -> None:
    with pytest.raises(ConfigError, match="The 'C' parameter"):
        parse_config(MIXED | {"incompatible": "skip", "models": [{"name": "logreg", "C": -1}]})
    with pytest.raises(IncompatibleError, match="no run of this grid can work"):
        parse_config(
            {"datasets": ["wine"], "models": ["cnn"], "attacks": ["label_flip"], "incompatible": "skip"}
        )


def test_the_cli_prints_each_skip_reason_on_stderr(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'datasets = ["digits", "wine"]\nmodels = ["logreg"]\nattacks = ["badnets"]\n'
        'poison_rates = [0.1]\nincompatible = "skip"\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: skipped 1 run: attack 'badnets' is for image data" in err


def test_attack_writes_a_csv_that_reads_back_and_scan_scores_against_its_mask(tmp_path: Path, capsys) -> None:
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    table = pd.DataFrame(X, columns=[f"m{i}" for i in range(X.shape[1])]).assign(kind=y)
    table.to_csv(tmp_path / "wine.csv", index=False)
    out = tmp_path / "poisoned.csv"
    argv = ["attack", "label_flip", str(tmp_path / "wine.csv"), "--label-col", "kind", "--rate", "0.1"]
    assert main([*argv, "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert list(written.columns) == [*(f"m{i}" for i in range(13)), "label", "id", "poison_mask"]
    assert written["poison_mask"].sum() == 17
    changed = written["label"].to_numpy() != y
    assert np.array_equal(changed, written["poison_mask"].to_numpy())  # flips exactly the masked rows
    np.testing.assert_allclose(written.iloc[:, :13].to_numpy(), X, rtol=1e-6)
    capsys.readouterr()
    main(["scan", str(out), "--label-col", "label", "--id-col", "id"])
    assert "against the file's poison_mask (17 poisons)" in capsys.readouterr().out


def test_attack_refuses_a_csv_for_images(tmp_path: Path, capsys) -> None:
    assert main(["attack", "badnets", "digits", "--rate", "0.1", "--out", str(tmp_path / "p.csv")]) == 2
    assert "a CSV cannot hold images: write --out p.npz" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
