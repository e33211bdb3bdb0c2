"""The curated public surface: every exported name resolves, and nothing else is promised."""

from __future__ import annotations

import subprocess
import sys

import pytest

import poisonlab


@pytest.mark.parametrize("name", poisonlab.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(poisonlab, name) is not None


def test_exports_table_matches_all() -> None:
    assert set(poisonlab._EXPORTS) | {"__version__"} == set(poisonlab.__all__)
    with pytest.raises(AttributeError):
        _ = poisonlab.not_a_name


def test_the_command_line_starts_without_loading_pytorch() -> None:
    code = "import sys, poisonlab.cli, poisonlab.models, poisonlab.attacks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_federated_package_exports_the_simulation_without_loading_pytorch_up_front() -> None:
    code = (
        "import sys, poisonlab.federated as f; before = 'torch' in sys.modules; "
        "from poisonlab.federated import simulate, split_clients, plan_simulation; "
        "print(before, 'torch' in sys.modules, callable(simulate) and callable(split_clients))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


def test_federated_all_resolves() -> None:
    import poisonlab.federated as federated

    for name in federated.__all__:
        assert getattr(federated, name) is not None
    with pytest.raises(AttributeError):
        _ = federated.not_a_name


def test_dir_lists_the_public_names() -> None:
    assert {"scan", "poison", "run", "load_results", "load_dataset"} <= set(dir(poisonlab))
    assert "import_module" not in dir(poisonlab)


def test_scan_takes_numpy_arrays_and_returns_the_flagged_rows() -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    flipped = np.random.default_rng(0).choice(len(y), 40, replace=False)
    y[flipped] = 1 - y[flipped]
    report = poisonlab.scan(X, y)
    found = set(report.flagged.tolist()) & set(flipped.tolist())
    assert len(found) >= 30 and report.n_flagged <= 50  # measured 38 of 40 in 42 flags
    frame = report.to_frame()
    assert len(frame) == len(y) and frame["flagged"].sum() == report.n_flagged
    assert {"given_label", "predicted_label", "score", "flagged_by_knn_label"} <= set(frame.columns)
    with pytest.raises(poisonlab.ConfigError, match="needs its labels"):
        poisonlab.scan(X)


def test_poison_refuses_an_attack_that_cannot_work_on_the_data() -> None:
    result = poisonlab.poison("digits", "badnets", 0.05, target=0)
    assert 85 <= result.poison_mask.sum() <= 90  # 5% of 1,797 digits
    assert set(result.dataset.y[result.poison_mask].tolist()) == {0}
    with pytest.raises(poisonlab.PoisonlabError, match="is for image data"):
        poisonlab.poison("wine", "badnets", 0.05)


def test_the_readme_python_example_runs(tmp_path, monkeypatch) -> None:
    from conftest import run_readme_example

    monkeypatch.chdir(tmp_path)
    namespace = run_readme_example("poisonlab.scan(X, y)")
    results, same = namespace["results"], namespace["same"]
    assert len(results) == 4 and results.equals(same)  # type: ignore[attr-defined]
    assert (results["clean_acc"] > 0.8).all()  # type: ignore[index]
    with pytest.raises(poisonlab.ConfigError, match="is not a poisonlab results folder"):
        poisonlab.load_results(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_every_run_records_what_computed_it(tmp_path) -> None:
    import torch

    results = poisonlab.run(
        {"datasets": ["wine"], "models": ["logreg"], "attacks": ["label_flip"], "seeds": [0]},
        tmp_path / "out",
    )
    assert (results["versions"].str.startswith(f"poisonlab {poisonlab.__version__}, numpy ")).all()
    assert (results["versions"].str.contains("scikit-learn ")).all()
    assert (results["torch_threads"] == torch.get_num_threads()).all()  # jobs=1: this process
    assert (results["n_train"] + results["n_test"] == 178).all()
