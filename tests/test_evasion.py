"""Inference-time attacks: agreement with IBM ART's implementations, budgets, refusals, and the grid."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS, PGD, CarliniWagnerL2
from poisonlab.data import load_dataset
from poisonlab.data.dataset import train_test_split
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.experiments import parse_config, run_grid
from poisonlab.models import MODELS


@pytest.fixture(scope="module")
def victim():
    train, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=0)
    model = MODELS.create("cnn", random_state=0).fit(train.X, train.y)
    return model, test.subset(np.arange(200))


def _art(model):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from art.estimators.classification import PyTorchClassifier

        return PyTorchClassifier(
            model=model.net_,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=(1, 8, 8),
            nb_classes=10,
            clip_values=(0.0, 1.0),
        )


def _accuracy(model, X, y) -> float:
    return float(np.mean(model.predict(X) == y))


@pytest.mark.parametrize(
    ("name", "params", "art_name", "art_params"),
    [
        ("fgsm", {"eps": 0.1}, "FastGradientMethod", {"eps": 0.1}),
        ("fgsm", {"eps": 1.0, "norm": "2"}, "FastGradientMethod", {"eps": 1.0, "norm": 2}),
        (
            "pgd",
            {"eps": 0.1, "steps": 40},
            "ProjectedGradientDescent",
            {"eps": 0.1, "eps_step": 0.00625, "max_iter": 40, "num_random_init": 1},
        ),
        (
            "pgd",
            {"eps": 0.7, "norm": "2", "steps": 40},
            "ProjectedGradientDescent",
            {"norm": 2, "eps": 0.7, "eps_step": 0.04375, "max_iter": 40, "num_random_init": 1},
        ),
    ],
)
def test_gradient_attacks_agree_with_art(victim, name, params, art_name, art_params) -> None:
    import art.attacks.evasion as art_evasion

    model, test = victim
    ours = _accuracy(model, ATTACKS.create(name, **params).perturb(model, test.X, test.y, 0), test.y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extra = {"verbose": False} if art_name != "FastGradientMethod" else {}
        reference = getattr(art_evasion, art_name)(_art(model), **extra, **art_params)
        theirs = _accuracy(model, reference.generate(test.X.astype(np.float32)), test.y)
    assert ours < _accuracy(model, test.X, test.y) - 0.2
    assert abs(ours - theirs) <= 0.05, f"poisonlab {ours:.3f}, ART {theirs:.3f}"


def test_carlini_wagner_finds_small_perturbations_like_art(victim) -> None:
    from art.attacks.evasion import CarliniL2Method

    model, test = victim
    X, y = test.X[:12], test.y[:12]  # ART's C&W takes seconds per input: the benchmark compares more
    ours = CarliniWagnerL2(max_iter=100, binary_search_steps=5).perturb(model, X, y, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CarliniL2Method(
            _art(model),
            max_iter=100,
            binary_search_steps=5,
            learning_rate=0.01,
            initial_const=1.0,
            verbose=False,
        ).generate(X.astype(np.float32))

    def fooled_l2(X_adv):
        fooled = model.predict(X_adv) != y
        return fooled.mean(), np.median(np.linalg.norm((X_adv - X).reshape(len(X), -1), axis=1)[fooled])

    (ours_rate, ours_l2), (theirs_rate, theirs_l2) = fooled_l2(ours), fooled_l2(theirs)
    assert ours_rate >= 0.9 and ours_rate >= theirs_rate - 0.05
    assert ours_l2 <= 1.25 * theirs_l2, f"median L2 {ours_l2:.3f} vs ART's {theirs_l2:.3f}"


def test_pgd_stays_in_its_ball(victim) -> None:
    model, test = victim
    for norm, size in (("inf", lambda d: np.abs(d).max(axis=1)), ("2", lambda d: np.linalg.norm(d, axis=1))):
        X_adv = PGD(eps=0.3, norm=norm, steps=10).perturb(model, test.X, test.y, 0)
        assert size((X_adv - test.X).reshape(len(test), -1)).max() <= 0.3 + 1e-5
        assert X_adv.min() >= 0 and X_adv.max() <= 1


@pytest.mark.parametrize(
    ("name", "params", "says"),
    [
        ("pgd", {"eps": 0}, "eps must be a number > 0"),
        ("pgd", {"eps": 2.0}, "covers the whole"),
        ("pgd", {"steps": 0}, "steps must be an integer"),
        ("fgsm", {"norm": "1"}, "norm must be 'inf' or '2'"),
        ("carlini_wagner", {"max_iter": 0}, "max_iter must be an integer"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(name, params, says) -> None:
    with pytest.raises(ConfigError, match=says):
        ATTACKS.create(name, **params)


def test_a_model_without_gradients_is_refused_naming_those_that_work(victim) -> None:
    _, test = victim
    logreg = MODELS.create("logreg").fit(test.X, test.y)
    with pytest.raises(IncompatibleError, match="models that work: cnn, mlp, linear"):
        PGD().perturb(logreg, test.X, test.y, 0)
    with pytest.raises(IncompatibleError, match="model 'logreg' has torch False"):
        parse_config({"datasets": ["digits"], "models": ["logreg"], "attacks": ["pgd"]})


def test_a_grid_puts_both_threat_models_side_by_side(tmp_path) -> None:
    config = {
        "datasets": ["digits"],
        "models": [{"name": "cnn", "epochs": 10}],
        "attacks": ["label_flip", {"name": "pgd", "eps": 0.2, "steps": 10}],
        "poison_rates": [0.05, 0.1],
        "seeds": [0],
    }
    run_grid(parse_config(config), tmp_path)
    stored = json.loads((tmp_path / "summary.json").read_text())["runs"]
    rows = {(r["attack"], r["poison_rate"]): r for r in stored}
    assert len(rows) == 4  # the inference-time attack runs once per seed, not once per rate
    pgd = rows["pgd[eps=0.2,steps=10]", None]
    assert pgd["phase"] == "inference" and pgd["n_modified"] == 450 and pgd["perturbation"] == "L∞ ≤ 0.2"
    assert pgd["persistence"] == 0.0 and pgd["asr"] > 0.8 and pgd["ra"] < 0.2
    assert pgd["clean_acc"] == rows["none", None]["clean_acc"]  # the same clean model
    flip = rows["label_flip", 0.1]
    assert flip["phase"] == "training" and flip["n_modified"] == 134 and flip["perturbation"] is None
    assert flip["persistence"] == max(0.0, flip["acc_drop"])


def test_the_attack_command_refuses_an_inference_time_attack(tmp_path, capsys) -> None:
    from poisonlab.cli import main

    assert main(["attack", "pgd", "digits", "--rate", "0.1", "--out", str(tmp_path / "x.npz")]) == 2
    assert "acts at inference time" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
