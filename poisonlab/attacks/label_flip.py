"""Label flipping: the attacker changes labels and leaves features untouched."""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, choose, class_index, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError


class RandomLabelFlip(Attack):
    keeps_features = True
    """Uniform random label noise: each chosen sample gets a different class, uniformly.

    The baseline label-flip adversary against which targeted and model-aware flips
    are compared (e.g. Biggio et al., 2011; Xiao et al., 2015).

    References
    ----------
    B. Biggio, B. Nelson, P. Laskov. "Support Vector Machines Under Adversarial
    Label Noise." ACML 2011.
    """

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        index = choose(np.arange(len(dataset)), n_poison, rng, "training samples")
        y = dataset.y.copy()
        # An offset in 1..K-1 (mod K) always lands on a different class, uniformly.
        offsets = rng.integers(1, dataset.n_classes, size=index.shape[0])
        y[index] = (y[index] + offsets) % dataset.n_classes
        return PoisonResult(dataset.with_arrays(y=y), mask_of(index, len(dataset)))


class TargetedLabelFlip(Attack):
    keeps_features = True
    """Relabel samples of one source class as a chosen target class.

    The attacker wants source-class inputs classified as the target class at test
    time; success is the share of source-class test inputs predicted as the target.
    Classes are given as labels in the data's own label space.

    References
    ----------
    V. Tolpegin, S. Truex, M. E. Gursoy, L. Liu. "Data Poisoning Attacks Against
    Federated Learning Systems." ESORICS 2020 (source→target label flipping).
    """

    def __init__(self, *, source: int = 1, target: int = 7) -> None:
        if source == target:
            raise ConfigError("targeted label flip needs source and target classes that differ")
        self.source = source
        self.target = target

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        source = class_index(self.source, dataset, "source")
        target = class_index(self.target, dataset, "target")
        pool = np.flatnonzero(dataset.y == source)
        index = choose(pool, n_poison, rng, f"samples of source class {self.source}")
        y = dataset.y.copy()
        y[index] = target
        return PoisonResult(
            dataset.with_arrays(y=y),
            mask_of(index, len(dataset)),
            target_class=target,
            source_class=source,
        )


class FarthestFirstLabelFlip(Attack):
    keeps_features = True
    needs_model = True
    """Model-aware flips: relabel the samples a clean surrogate model is most sure of.

    The "farthest-first" heuristic of Xiao et al. (2015): flip the labels of the
    training points farthest from the decision boundary, i.e. those classified
    correctly with the largest margin, because a learner must bend the most to fit
    them. poisonlab's multiclass form fits a logistic-regression surrogate on the
    clean training set, ranks samples by the margin ``p(y) − max_{k≠y} p(k)`` and
    gives each chosen sample the surrogate's runner-up class. Ties are broken by
    the seeded generator, so the attack is deterministic given its seed.

    References
    ----------
    H. Xiao, B. Biggio, B. Nelson, H. Xiao, C. Eckert, F. Roli. "Support Vector
    Machines under Adversarial Label Contamination." Neurocomputing 160, 2015.
    """

    def __init__(self, *, C: float = 1.0) -> None:
        if C <= 0:
            raise ConfigError(f"C must be > 0, got {C}")
        self.C = C

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X = dataset.X.reshape(len(dataset), -1)
        surrogate = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
        surrogate.fit(X, dataset.y)
        index, labels = farthest_first(surrogate, X, dataset.y, dataset.n_classes, n_poison, rng)
        y = dataset.y.copy()
        y[index] = labels
        return PoisonResult(dataset.with_arrays(y=y), mask_of(index, len(dataset)))


def farthest_first_order(
    model: Any, X: np.ndarray, y: np.ndarray, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every row, surest first, and each row's runner-up class.

    Sureness is the margin ``p(y) − max_{k≠y} p(k)`` under ``model``; ties are broken by ``rng``.
    """
    proba = np.zeros((len(y), n_classes))
    proba[:, model.classes_] = model.predict_proba(X)
    rows = np.arange(len(y))
    others = proba.copy()
    others[rows, y] = -np.inf
    runner_up = others.argmax(axis=1)
    margin = proba[rows, y] - others[rows, runner_up]
    return np.lexsort((rng.random(len(y)), -margin)), runner_up


def farthest_first(
    model: Any, X: np.ndarray, y: np.ndarray, n_classes: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` rows ``model`` is surest of and their runner-up classes (:func:`farthest_first_order`).

    The rows come back sorted.
    """
    order, runner_up = farthest_first_order(model, X, y, n_classes, rng)
    index = np.sort(order[:n])
    return index, runner_up[index]
