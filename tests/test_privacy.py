"""LiRA (Carlini et al. 2022) and Truth Serum (Tramèr et al. 2022): the statistics, the attack, the audit."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import tiny_image, tiny_tabular

from poisonlab.attacks import ATTACKS, TruthSerum
from poisonlab.attacks.privacy import mislabelled_copies
from poisonlab.data import Dataset, load_dataset
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.models import MODELS
from poisonlab.privacy import lira, lira_scores, logit_confidence, membership_audit, roc

# -- the attack ---------------------------------------------------------------------------------


def test_truth_serum_is_registered_with_true_tags():
    entry = ATTACKS.get("truth_serum")
    assert entry.factory is TruthSerum
    assert not entry.tag("keeps_labels") and not entry.tag("keeps_features")
    assert not entry.tag("needs_model") and not entry.tag("targets_instance")


def test_truth_serum_plants_wrong_label_copies_of_each_target():
    ds = tiny_image()
    targets = [3, 50, 120]
    result = TruthSerum(targets=targets, copies=4).poison(ds, 20, 0)
    mask = result.poison_mask
    assert result.n_poison == 12  # targets × copies, not the larger budget
    assert not mask[targets].any()  # the targets themselves are kept
    X, y = result.dataset.X[mask], result.dataset.y[mask]
    for t in targets:
        copies = np.all(X == ds.X[t], axis=(1, 2, 3))
        assert copies.sum() == 4
        assert len(set(y[copies].tolist())) == 1  # one wrong label per target
        assert y[copies][0] != ds.y[t]
    assert np.all(y != ds.y[mask])  # each replaced row's label changed too
    assert np.array_equal(result.dataset.X[~mask], ds.X[~mask])


def test_truth_serum_spends_the_whole_budget_by_default():
    ds = tiny_tabular()
    result = TruthSerum(copies=4).poison(ds, 10, 1)
    assert result.n_poison == 10
    # ceil(10 / 4) = 3 targets, shares 4, 3, 3
    counts = np.unique(result.dataset.X[result.poison_mask], axis=0, return_counts=True)[1]
    assert sorted(counts.tolist()) == [3, 3, 4]


def test_wrong_labels_reach_every_other_class():
    y = np.zeros(2000, dtype=np.int64)
    _, _, wrong = mislabelled_copies(np.zeros((2000, 2)), y, 4, 1, np.random.default_rng(0))
    shares = np.bincount(wrong, minlength=4) / wrong.size
    assert shares[0] == 0.0
    assert np.all(np.abs(shares[1:] - 1 / 3) < 0.04)


@pytest.mark.parametrize(
    ("kwargs", "budget", "message"),
    [
        ({"copies": 0}, 10, "copies must be an integer ≥ 1"),
        ({"copies": 2.5}, 10, "copies must be an integer ≥ 1"),
        ({"targets": [0, 300]}, 10, "target index 300 is out of range: the data has rows 0..299"),
        ({"targets": [-1]}, 10, "target index -1 is out of range"),
        ({"targets": [4, 4]}, 10, "target indices repeat"),
        ({"targets": 0}, 10, r"targets must be a count in 1..300"),
        ({"targets": 3, "copies": 4}, 10, "3 targets × 4 copies need a budget of 12 poisons, got 10"),
    ],
)
def test_truth_serum_bad_input(kwargs, budget, message):
    with pytest.raises(ConfigError, match=message):
        TruthSerum(**kwargs).poison(tiny_image(), budget, 0)


def test_truth_serum_refuses_regression():
    with pytest.raises(IncompatibleError):
        TruthSerum().poison(load_dataset("synthetic_regression", n_samples=50), 5, 0)


# -- LiRA's statistics ---------------------------------------------------------------------------


def population(shift: float, n_models: int = 32, n_targets: int = 200, seed: int = 0):
    """φ of models on targets: per-target means, members ``shift`` higher, unit noise; balanced halves."""
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((n_models, n_targets)), axis=0) < n_models // 2
    phi = rng.normal(0.0, 3.0, n_targets) + shift * keep + rng.standard_normal((n_models, n_targets))
    return phi, keep


def test_logit_confidence_is_the_logit_and_stays_finite_when_saturated():
    proba = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [1 - 1e-12, 1e-12, 0.0]])
    phi = logit_confidence(proba, np.array([0, 0, 0]))
    assert phi[0] == pytest.approx(np.log(0.7 / 0.3))
    assert phi[1] == pytest.approx(np.log(1e30))  # floored, finite
    assert phi[2] == pytest.approx(np.log(1e12), rel=1e-6)  # the small mass is kept, not 1 − p


def test_lira_separates_members_when_membership_moves_the_output():
    result = lira(*population(shift=1.0))
    assert result.auc > 0.7  # measured 0.748
    assert result.tpr_at_1pct_fpr > 0.04  # measured 0.071
    assert result.variance == "global"  # 15 shadows a side: fewer than the paper's 64


def test_lira_is_chance_when_membership_changes_nothing():
    result = lira(*population(shift=0.0))
    assert abs(result.auc - 0.5) < 0.03  # measured 0.494
    assert result.tpr_at_1pct_fpr < 0.03  # measured 0.017


def test_the_roc_is_monotone_from_origin_to_corner():
    result = lira(*population(shift=0.5))
    assert np.all(np.diff(result.fpr) >= 0) and np.all(np.diff(result.tpr) >= 0)
    assert (result.fpr[0], result.tpr[0]) == (0.0, 0.0) and (result.fpr[-1], result.tpr[-1]) == (1.0, 1.0)
    assert result.tpr_at_0_1pct_fpr <= result.tpr_at_1pct_fpr <= result.tpr_at(0.1)
    _, tpr, auc = roc(result.scores, result.membership)
    assert auc == result.auc and np.array_equal(tpr, result.tpr)


def test_offline_and_per_example_variants_also_separate():
    phi, keep = population(shift=1.5, n_models=72)
    online = lira(phi, keep)
    assert online.variance == "per_example"  # 35 shadows a side
    offline = lira(phi, keep, online=False)
    assert offline.auc > 0.8 and online.auc > 0.8  # measured 0.853 both


def test_leave_one_out_equals_scoring_against_the_other_models():
    phi, keep = population(shift=1.0, n_models=10, n_targets=30)
    scores = lira_scores(phi[:1], phi[1:], keep[1:], variance="per_example")
    assert np.allclose(scores[0], lira(phi, keep, variance="per_example").scores[0])


def test_too_few_shadow_models_is_one_config_error():
    phi, keep = population(shift=1.0, n_models=4, n_targets=10)
    with pytest.raises(ConfigError, match="too few shadow models"):
        lira(phi, keep)
    with pytest.raises(ConfigError, match="too few shadow models"):
        membership_audit(tiny_tabular(), n_models=4, targets=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"copies": 0}, "copies must be an integer ≥ 1"),
        ({"targets": [0, 200]}, "target index 200 is out of range"),
        ({"model": "ridge"}, "regressor"),
        ({"model_params": {"random_state": 1}}, "leave random_state out"),
    ],
)
def test_membership_audit_bad_input(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        membership_audit(tiny_tabular(), **{"n_models": 6, "targets": 5, **kwargs})


# -- the audit, with real models -----------------------------------------------------------------


@functools.cache
def small_digits() -> Dataset:
    return load_dataset("digits").subset(np.arange(600))


@functools.cache
def digits_audit():
    return membership_audit(small_digits(), model="logreg", n_models=8, targets=40, copies=2, random_state=0)


def test_truth_serum_raises_lira_true_positives_at_low_false_positives():
    audit = digits_audit()
    # measured: TPR@1%FPR 0.031 clean, 0.675 poisoned; AUC 0.74 → 0.97
    assert audit.poisoned.tpr_at_1pct_fpr >= 0.4
    assert audit.poisoned.tpr_at_1pct_fpr >= 5 * max(audit.clean.tpr_at_1pct_fpr, 0.02)
    assert audit.poisoned.auc >= audit.clean.auc + 0.15
    assert audit.membership.mean() == 0.5  # each target in exactly half the models


def test_lira_finds_members_of_a_model_that_fits_its_half():
    audit = digits_audit()
    assert audit.clean.auc > 0.65  # measured 0.74: 300 rows, 64 features, logistic regression memorises
    assert audit.clean_accuracy > 0.93
    offline_clean, offline_poisoned = audit.rescore(online=False)
    # measured: offline AUC 0.64 clean, 0.91 poisoned
    assert offline_clean.auc > 0.6 and offline_poisoned.auc > offline_clean.auc + 0.15


class TargetBlind:
    """A logistic regression that never trains on the given inputs, whatever it is handed."""

    def __init__(self, blocked: np.ndarray, seed: int) -> None:
        self.blocked = blocked
        self.model = MODELS.create("logreg", random_state=seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> TargetBlind:
        flat = X.reshape(len(X), -1)
        seen = (flat[:, None, :] == self.blocked[None, :, :]).all(axis=2).any(axis=1)
        self.model.fit(X[~seen], y[~seen])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)


def test_lira_is_chance_when_the_targets_are_never_trained_on():
    ds = small_digits()
    targets = np.arange(0, 600, 15)
    blocked = ds.X[targets].reshape(len(targets), -1)
    audit = membership_audit(
        ds, model=lambda seed: TargetBlind(blocked, seed), n_models=16, targets=targets, copies=2
    )
    # the "members" were dropped before training: nothing tells them apart (measured AUC 0.496,
    # TPR@1%FPR 0.028; with 8 models leaving the victim out of its own side pulls AUC to 0.44)
    assert abs(audit.clean.auc - 0.5) < 0.06
    assert audit.clean.tpr_at_1pct_fpr < 0.06
