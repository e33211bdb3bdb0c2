"""Availability and subpopulation poisoning: real effects on real data, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS, ClusterMatch, FeatureMatch, InfluenceAvailability, UnlearnableExamples
from poisonlab.data import load_dataset
from poisonlab.data.dataset import train_test_split
from poisonlab.errors import ConfigError
from poisonlab.models import MODELS


def _accuracy(model: str, train, test, seed: int = 0) -> float:
    fitted = MODELS.create(model, random_state=seed).fit(train.X, train.y)
    return float(np.mean(fitted.predict(test.X) == test.y))


@pytest.fixture(scope="module")
def cancer():
    return train_test_split(load_dataset("breast_cancer"), test_size=0.25, random_state=100)


def test_influence_availability_hurts_logistic_regression_more_than_any_flips(cancer) -> None:
    train, test = cancer
    clean = _accuracy("logreg", train, test)
    attacked = InfluenceAvailability(steps=60).poison(train, 0.03, 0)
    assert attacked.n_poison == 12
    lo, hi = train.X.min(axis=0), train.X.max(axis=0)
    moved = attacked.dataset.X[attacked.poison_mask]
    assert np.all(moved >= lo - 1e-3) and np.all(moved <= hi + 1e-3)  # inside the clean data's box
    # coordinated (Koh et al.): the twelve poisons are copies of one point with one label
    assert len(np.unique(moved, axis=0)) == 1
    assert len(np.unique(attacked.dataset.y[attacked.poison_mask])) == 1
    hurt = _accuracy("logreg", attacked.dataset, test)
    flips = [ATTACKS.create(name).poison(train, 0.03, 0) for name in ("label_flip", "farthest_flip")]
    # development split (seed 100): 9.8 points at the default 200 steps
    assert hurt <= clean - 0.05 and hurt < min(_accuracy("logreg", f.dataset, test) for f in flips)
    spread = InfluenceAvailability(steps=5, locations=12).poison(train, 0.03, 0)
    assert len(np.unique(spread.dataset.X[spread.poison_mask], axis=0)) == 12


def test_cluster_match_hurts_its_group_far_more_than_the_rest(cancer) -> None:
    train, test = cancer
    result = ClusterMatch().poison(train, 0.05, 0)
    inside = result.subpopulation.contains(test.X)
    assert 0 < inside.sum() < len(test)
    clean = MODELS.create("logreg").fit(train.X, train.y).predict(test.X) == test.y
    hit = MODELS.create("logreg").fit(result.dataset.X, result.dataset.y).predict(test.X) == test.y
    drop_in = clean[inside].mean() - hit[inside].mean()
    drop_out = clean[~inside].mean() - hit[~inside].mean()
    assert drop_in >= 0.1 and drop_in >= 5 * max(drop_out, 0.005)


def test_a_target_that_is_the_group_s_own_majority_is_refused(cancer) -> None:
    train, _ = cancer
    group = FeatureMatch(feature=3, low=700.0)  # large tumours: nearly all malignant (class 0)
    with pytest.raises(ConfigError, match="own majority class"):
        FeatureMatch(feature=3, low=700.0, target=0).poison(train, 0.03, 0)
    assert group.poison(train, 0.03, 0).target_class == 1


def test_feature_match_relabels_only_its_group(cancer) -> None:
    train, _ = cancer
    result = FeatureMatch(feature=3, low=700.0).poison(train, 0.03, 0)  # mean area ≥ 700
    rows = np.flatnonzero(result.poison_mask)
    assert rows.size > 0 and np.all(train.X[rows, 3] >= 700.0)
    assert np.all(result.dataset.y[rows] == result.target_class) and np.array_equal(result.dataset.X, train.X)


@pytest.mark.parametrize(
    ("attack", "says"),
    [
        (FeatureMatch(feature=99), "feature 99 does not exist: .* has features 0..29"),
        (FeatureMatch(feature=0, low=1e9), "the subpopulation is empty"),
        (FeatureMatch(feature=0, low=-1e9, high=1e9), "covers all of"),
    ],
)
def test_bad_subpopulations_are_refused_in_one_line(cancer, attack, says) -> None:
    train, _ = cancer
    with pytest.raises(ConfigError, match=says):
        attack.poison(train, 0.03, 0)


def test_unlearnable_noise_hurts_more_than_random_noise_in_the_same_ball() -> None:
    train, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=100)
    made = UnlearnableExamples(eps=0.125, scope="class", stop_accuracy=1.0).poison(train, 1.0, 0)
    control = UnlearnableExamples(eps=0.125, scope="class", noise="random").poison(train, 1.0, 0)
    for result in (made, control):
        assert np.abs(result.dataset.X - train.X).max() <= 0.125 + 1e-6
        assert np.array_equal(result.dataset.y, train.y)
    assert _accuracy("cnn", made.dataset, test) <= _accuracy("cnn", control.dataset, test) - 0.03


@pytest.mark.parametrize(
    ("name", "params", "says"),
    [
        ("unlearnable", {"eps": 0}, "eps must lie in"),
        ("unlearnable", {"scope": "pixel"}, "scope must be"),
        ("influence_availability", {"steps": 0}, "steps must be an integer"),
        ("influence_availability", {"locations": 0}, "locations must be an integer >= 1"),
        ("cluster_match", {"n_clusters": 1}, "n_clusters must be an integer ≥ 2"),
        ("feature_match", {"feature": -1}, "feature must be a column index"),
    ],
)
def test_bad_settings_are_refused(name, params, says) -> None:
    with pytest.raises(ConfigError, match=says):
        ATTACKS.create(name, **params)
