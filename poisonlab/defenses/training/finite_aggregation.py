"""Finite Aggregation: DPA with every hashed bucket shared by several base models, and a tighter certificate.

Wang, Levine & Feizi, "Improved Certified Defenses against Data Poisoning with
(Deterministic) Finite Aggregation", ICML 2022.

The training set is hashed into ``k·d`` buckets (the same content hash as
:mod:`~poisonlab.defenses.training.partition`). There are ``k·d`` base models; model
``i`` trains on the ``d`` buckets ``i, i+1, …, i+d−1`` (mod ``k·d``), so each model
sees about ``n/k`` samples, as a DPA model does, and each bucket feeds ``d`` models.
The prediction is the plurality vote, ties to the smaller class index.

Certificate. A changed training sample changes one bucket, hence at most the ``d``
models that use it. For the prediction ``c`` and a rival class ``c'``, poisoning
bucket ``b`` can lower the gap ``n_c − n_c' − [c' < c]`` by at most

    δ_b(c') = Σ_{models i using b} (2·[i votes c] + [i votes neither c nor c'])

(a vote moved from ``c`` to ``c'`` costs two, one moved from a third class or an
abstention costs one). The prediction survives ``r`` changes if, for every rival,
the ``r`` largest ``δ_b(c')`` add up to no more than the gap; the certified radius is
the largest such ``r`` (the paper's Theorem 2 and its greedy computation). Adding the
``r`` largest reductions counts a model shared by two chosen buckets twice, which can
only under-state the radius. With ``d = 1`` this is exactly DPA's certificate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.training.base import Certificate, MakeModel, TrainedModel
from poisonlab.defenses.training.ensembles import ballots, base_model_builder, fit_base, tally, top_two
from poisonlab.defenses.training.partition import UNIT, content_hash
from poisonlab.errors import ConfigError, NotFittedError

__all__ = ["FiniteAggregation", "FiniteAggregationDefense"]


class FiniteAggregation:
    """Finite Aggregation: ``k·d`` base models on ``d`` hashed buckets each, and certified radii.

    Parameters
    ----------
    estimator : scikit-learn classifier or callable
        The base learner (cloned), or ``seed -> unfitted model``.
    n_partitions : int
        k: each base model sees about ``1/k`` of the training set.
    spread : int
        d: the buckets per base model and the base models per bucket (``d = 1`` is DPA).
    random_state : int
        Seeds the base models (model ``i`` gets ``random_state + i``).

    References
    ----------
    Wang, W., Levine, A., & Feizi, S. (2022). Improved Certified Defenses against Data
    Poisoning with (Deterministic) Finite Aggregation. ICML 2022.
    """

    def __init__(
        self, estimator: Any = None, *, n_partitions: int = 50, spread: int = 4, random_state: int = 0
    ) -> None:
        self.estimator = estimator
        self.n_partitions = n_partitions
        self.spread = spread
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> FiniteAggregation:
        X, y = np.asarray(X), np.asarray(y)
        k, d = self.n_partitions, self.spread
        for name, value in (("number of partitions", k), ("spread", d)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"the {name} must be a positive integer, got {value!r}")
        if k < 2 or k > y.shape[0]:
            raise ConfigError(
                f"{k} partitions for {y.shape[0]} training samples: k must lie in 2..{y.shape[0]}"
            )
        make = base_model_builder(self.estimator)
        hashes = content_hash(X)
        self.n_buckets_ = k * d
        bucket = (hashes % np.uint64(self.n_buckets_)).astype(np.int64)
        self.classes_ = np.unique(y)
        self.models_ = []
        for i in range(self.n_buckets_):
            used = np.arange(i, i + d) % self.n_buckets_
            rows = np.flatnonzero(np.isin(bucket, used))
            rows = rows[
                np.lexsort((y[rows], hashes[rows]))
            ]  # the model depends on its buckets' contents alone
            self.models_.append(fit_base(make, self.random_state + i, X[rows], y[rows]))
        return self

    def _ballots(self, X: np.ndarray) -> np.ndarray:
        """``(n_models, n_inputs)`` class index each model votes for, ``-1`` where it abstains."""
        if not hasattr(self, "models_"):
            raise NotFittedError("FiniteAggregation is not fitted: call fit first")
        return ballots(self.models_, X, self.classes_)

    def votes(self, X: np.ndarray) -> np.ndarray:
        return tally(self._ballots(np.asarray(X)), self.classes_.size)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[top_two(self.votes(X))[0]]

    def certify(self, X: np.ndarray) -> Certificate:
        cast = self._ballots(np.asarray(X))
        votes = tally(cast, self.classes_.size)
        winner = top_two(votes)[0]
        d, n_buckets = self.spread, self.n_buckets_
        # users[b]: the models that train on bucket b (model i uses buckets i .. i+d-1)
        users = (np.arange(n_buckets)[:, None] - np.arange(d)[None, :]) % n_buckets
        radius = np.empty(cast.shape[1], dtype=np.int64)
        for x in range(cast.shape[1]):
            c = winner[x]
            on_c = (cast[users, x] == c).sum(axis=1)  # per bucket: its models voting c
            best = np.iinfo(np.int64).max
            for rival in range(self.classes_.size):
                if rival == c:
                    continue
                gap = votes[x, c] - votes[x, rival] - int(rival < c)
                on_rival = (cast[users, x] == rival).sum(axis=1)
                harm = np.sort(d + on_c - on_rival)[::-1]  # δ_b(rival), largest first
                best = min(best, int(np.searchsorted(np.cumsum(harm), gap, side="right")))
            radius[x] = best if self.classes_.size > 1 else n_buckets
        return Certificate(self.classes_[winner], radius, unit=UNIT, feature_change_cost=2)


class FiniteAggregationDefense:
    """Finite Aggregation of the run's model as a defense (see :class:`FiniteAggregation`)."""

    certifies = True

    def __init__(self, *, partitions: int = 50, spread: int = 4) -> None:
        for name, value in (("partitions", partitions), ("spread", spread)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if partitions < 2:
            raise ValueError(f"partitions must be an integer ≥ 2, got {partitions!r}")
        self.partitions = partitions
        self.spread = spread

    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel:
        seed = int(rng.integers(2**31 - 1))
        model = FiniteAggregation(
            make_model, n_partitions=self.partitions, spread=self.spread, random_state=seed
        )
        return TrainedModel(model.fit(train.X, train.y))
