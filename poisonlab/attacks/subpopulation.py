"""Subpopulation poisoning: hurt the model on one group of inputs, and as little as possible elsewhere.

Jagielski, Severi, Pousette Harger & Oprea, "Subpopulation Data Poisoning Attacks",
ACM CCS 2021. The attacker picks a subpopulation and poisons with label flips drawn
*from it*, so the model learns the wrong label for that region of input space only:
the "every applicant from one postal code" case, which overall accuracy hardly shows.

- :class:`FeatureMatch`: the subpopulation is the inputs whose feature ``feature`` lies
  in ``[low, high]`` (the paper matches categorical feature values; an interval is the
  numeric form).
- :class:`ClusterMatch`: the subpopulation is one cluster of k-means (``n_clusters``)
  on a representation of the data: the first 20 principal components of the
  standardised, flattened inputs (the paper clusters a pretrained model's features).

Poisons: chosen members of the subpopulation in the training set are relabelled to one
class, the subpopulation's majority class flipped: ``target`` if given, else the class
whose mean input lies nearest the subpopulation's mean. At most the subpopulation's own
size can be relabelled. ``PoisonResult.subpopulation.contains(X)`` tells which test
inputs belong to the group, so the runner reports accuracy on it and on the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, choose, class_index, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError

__all__ = ["ClusterMatch", "FeatureMatch"]


@dataclass(frozen=True, eq=False)
class FeatureRange:
    """Inputs whose flattened feature ``feature`` lies in ``[low, high]``."""

    feature: int
    low: float
    high: float

    def contains(self, X: np.ndarray) -> np.ndarray:
        values = np.asarray(X).reshape(np.shape(X)[0], -1)[:, self.feature]
        return (values >= self.low) & (values <= self.high)


@dataclass(frozen=True, eq=False)
class Cluster:
    """Inputs that a fitted scaler → PCA → k-means pipeline assigns to cluster ``cluster``."""

    pipeline: Any
    cluster: int

    def contains(self, X: np.ndarray) -> np.ndarray:
        flat = np.asarray(X, dtype=np.float64).reshape(np.shape(X)[0], -1)
        return np.asarray(self.pipeline.predict(flat)) == self.cluster


class _Subpopulation(Attack):
    """Label flips drawn from a subpopulation that :meth:`_group` defines on the training set."""

    keeps_features = True
    target: int | None

    def _group(self, dataset: Dataset, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        group = self._group(dataset, rng)
        members = np.flatnonzero(group.contains(dataset.X))
        if members.size == 0:
            raise ConfigError(f"the subpopulation is empty in {dataset.name}: choose another")
        if members.size == len(dataset):
            raise ConfigError(f"the subpopulation covers all of {dataset.name}: it is no subpopulation")
        majority = int(np.bincount(dataset.y[members], minlength=dataset.n_classes).argmax())
        target = self._target(dataset, members, majority)
        pool = members[dataset.y[members] != target]
        index = choose(pool, min(n_poison, pool.size), rng, "subpopulation samples")
        y = dataset.y.copy()
        y[index] = target
        return PoisonResult(
            dataset.with_arrays(y=y), mask_of(index, len(dataset)), target_class=target, subpopulation=group
        )

    def _target(self, dataset: Dataset, members: np.ndarray, majority: int) -> int:
        if self.target is not None:
            target = class_index(self.target, dataset, "target")
            if target == majority:
                raise ConfigError(f"target class {self.target} is the subpopulation's own majority class")
            return target
        flat = dataset.X.reshape(len(dataset), -1)
        centre = flat[members].mean(axis=0)
        distance = [
            np.inf
            if c == majority or not np.any(dataset.y == c)
            else np.linalg.norm(flat[dataset.y == c].mean(axis=0) - centre)
            for c in range(dataset.n_classes)
        ]
        return int(np.argmin(np.asarray(distance, dtype=float)))


class FeatureMatch(_Subpopulation):
    """Subpopulation by feature values: ``low ≤ x[feature] ≤ high`` (Jagielski et al. 2021).

    ``feature`` indexes the flattened features (a CSV's feature columns in file order).
    An open end is unbounded; with neither given, the group is the top tenth of the
    feature's training values.

    References
    ----------
    Jagielski, M., Severi, G., Pousette Harger, N., & Oprea, A. (2021). Subpopulation
    Data Poisoning Attacks. ACM CCS 2021.
    """

    modalities = ("tabular",)

    def __init__(
        self,
        *,
        feature: int = 0,
        low: float | None = None,
        high: float | None = None,
        target: int | None = None,
    ) -> None:
        if isinstance(feature, bool) or not isinstance(feature, int) or feature < 0:
            raise ConfigError(f"feature must be a column index ≥ 0, got {feature!r}")
        if low is not None and high is not None and not low <= high:
            raise ConfigError(f"low must be ≤ high, got {low} > {high}")
        self.feature = feature
        self.low = low
        self.high = high
        self.target = target

    def check(self, dataset: Dataset) -> None:
        super().check(dataset)
        n_features = int(np.prod(dataset.X.shape[1:]))
        if self.feature >= n_features:
            raise ConfigError(
                f"feature {self.feature} does not exist: {dataset.name} has features 0..{n_features - 1}"
            )

    def _group(self, dataset: Dataset, rng: np.random.Generator) -> FeatureRange:
        self.check(dataset)
        if self.low is None and self.high is None:  # default: the top tenth of the feature's values
            values = dataset.X.reshape(len(dataset), -1)[:, self.feature]
            return FeatureRange(self.feature, float(np.quantile(values, 0.9)), np.inf)
        low = -np.inf if self.low is None else float(self.low)
        return FeatureRange(self.feature, low, np.inf if self.high is None else float(self.high))


class ClusterMatch(_Subpopulation):
    """Subpopulation by clustering: one of ``n_clusters`` k-means clusters (Jagielski et al. 2021).

    ``cluster`` picks it (default: drawn with the attack's seed among clusters that
    hold 1–20% of the data).

    References
    ----------
    Jagielski, M., Severi, G., Pousette Harger, N., & Oprea, A. (2021). Subpopulation
    Data Poisoning Attacks. ACM CCS 2021.
    """

    def __init__(
        self, *, n_clusters: int = 20, cluster: int | None = None, target: int | None = None
    ) -> None:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 2:
            raise ConfigError(f"n_clusters must be an integer ≥ 2, got {n_clusters!r}")
        if cluster is not None and not 0 <= cluster < n_clusters:
            raise ConfigError(f"cluster must lie in 0..{n_clusters - 1}, got {cluster!r}")
        self.n_clusters = n_clusters
        self.cluster = cluster
        self.target = target

    def _group(self, dataset: Dataset, rng: np.random.Generator) -> Cluster:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        flat = dataset.X.reshape(len(dataset), -1).astype(np.float64)
        if self.n_clusters >= len(dataset):
            raise ConfigError(f"n_clusters {self.n_clusters} for {len(dataset)} samples")
        pca = PCA(n_components=min(20, flat.shape[1], len(dataset)), random_state=0)
        seed = int(rng.integers(2**31 - 1))
        pipeline = make_pipeline(StandardScaler(), pca, KMeans(self.n_clusters, n_init=4, random_state=seed))
        labels = pipeline.fit_predict(flat)
        if self.cluster is not None:
            return Cluster(pipeline, self.cluster)
        share = np.bincount(labels, minlength=self.n_clusters) / len(dataset)
        eligible = np.flatnonzero((share >= 0.01) & (share <= 0.2))
        if eligible.size == 0:
            eligible = np.arange(self.n_clusters)
        return Cluster(pipeline, int(rng.choice(eligible)))
