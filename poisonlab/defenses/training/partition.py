"""Deep Partition Aggregation: a plurality vote of models trained on disjoint, hashed partitions.

Levine & Feizi, "Deep Partition Aggregation: Provable Defenses against General
Poisoning Attacks", ICLR 2021.

Each training sample goes to partition ``h(x) mod k``, where ``h`` is a hash of the
sample's features (SHA-256 of its float32 bytes), so where a sample lands does not
depend on any other sample: inserting or deleting one sample changes one partition
only, and relabelling it leaves it where it was. One base model is trained on each
partition (in a canonical order, sorted by hash, so the model is a function of the
partition's contents alone); the ensemble predicts the class with the most votes,
ties going to the smaller class index.

The certificate (the paper's Theorem 1): with ``n_c`` votes for class ``c`` and
winner ``c*``, the prediction cannot change under any ``r`` insertions, deletions or
relabellings of training samples while

    r ≤ ⌊(n_c* − max_{c ≠ c*} (n_c + [c < c*])) / 2⌋,

since each change flips at most one base model, which moves the gap by at most two.
Changing a sample's features moves it to another partition, so it counts as two
changes (a deletion and an insertion). An empty partition abstains; a one-class
partition votes for its class.

Unlike a plain ensemble (IBM ART's ``DeepPartitionEnsemble`` computes no
certificate), :meth:`DeepPartitionAggregation.certify` returns the radius of every input.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.training.base import Certificate, MakeModel, TrainedModel
from poisonlab.defenses.training.ensembles import base_model_builder, count_votes, fit_base, top_two
from poisonlab.errors import ConfigError, NotFittedError

__all__ = ["DPADefense", "DeepPartitionAggregation", "content_hash", "partition_of"]

UNIT = "training samples inserted, deleted or relabelled (a changed feature vector counts twice)"


def content_hash(X: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each sample's features (float32 bytes), independent of every other sample."""
    flat = np.ascontiguousarray(np.asarray(X, dtype=np.float32).reshape(np.shape(X)[0], -1))
    return np.array(
        [int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "little") for row in flat],
        dtype=np.uint64,
    )


def partition_of(X: np.ndarray, n_partitions: int) -> np.ndarray:
    """The partition of each sample: its content hash modulo ``n_partitions``."""
    return (content_hash(X) % np.uint64(n_partitions)).astype(np.int64)


class DeepPartitionAggregation:
    """DPA: ``n_partitions`` base models on hashed partitions, a plurality vote, certified radii.

    Parameters
    ----------
    estimator : scikit-learn classifier or callable
        The base learner: an estimator (cloned for each partition) or a function
        ``seed -> unfitted model`` (poisonlab's model factories).
    n_partitions : int
        k, the number of partitions and base models (≥ 2, at most the training size).
    random_state : int
        Seeds the base models (partition ``i`` gets ``random_state + i``).

    References
    ----------
    Levine, A., & Feizi, S. (2021). Deep Partition Aggregation: Provable Defenses
    against General Poisoning Attacks. ICLR 2021.
    """

    def __init__(self, estimator: Any = None, *, n_partitions: int = 50, random_state: int = 0) -> None:
        self.estimator = estimator
        self.n_partitions = n_partitions
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> DeepPartitionAggregation:
        X, y = np.asarray(X), np.asarray(y)
        k = self.n_partitions
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
            raise ConfigError(f"the number of partitions must be an integer ≥ 2, got {k!r}")
        if k > y.shape[0]:
            raise ConfigError(f"{k} partitions for {y.shape[0]} training samples: k must be at most that")
        make = base_model_builder(self.estimator)
        hashes = content_hash(X)
        part = (hashes % np.uint64(k)).astype(np.int64)
        self.classes_ = np.unique(y)
        self.partition_sizes_ = np.bincount(part, minlength=k)
        self.models_ = []
        for i in range(k):
            rows = np.flatnonzero(part == i)
            # canonical order, so the base model depends on the partition's contents alone
            rows = rows[np.lexsort((y[rows], hashes[rows]))]
            self.models_.append(fit_base(make, self.random_state + i, X[rows], y[rows]))
        return self

    def votes(self, X: np.ndarray) -> np.ndarray:
        """``(n_inputs, n_classes)`` vote counts, columns in the order of ``classes_``."""
        if not hasattr(self, "models_"):
            raise NotFittedError("DeepPartitionAggregation is not fitted: call fit first")
        return count_votes(self.models_, np.asarray(X), self.classes_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        winner, _, _ = top_two(self.votes(X))
        return self.classes_[winner]

    def certify(self, X: np.ndarray) -> Certificate:
        """Predictions and certified radii (Theorem 1; ``-1`` where the tie-break already loses)."""
        winner, n_top, rival = top_two(self.votes(X))
        radius = np.floor_divide(n_top - rival, 2)
        return Certificate(self.classes_[winner], np.maximum(radius, -1), unit=UNIT, feature_change_cost=2)


class DPADefense:
    """Deep Partition Aggregation of the run's model as a defense (see :class:`DeepPartitionAggregation`)."""

    certifies = True

    def __init__(self, *, partitions: int = 50) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 2:
            raise ValueError(f"partitions must be an integer ≥ 2, got {partitions!r}")
        self.partitions = partitions

    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel:
        seed = int(rng.integers(2**31 - 1))
        model = DeepPartitionAggregation(make_model, n_partitions=self.partitions, random_state=seed)
        model.fit(train.X, train.y)
        return TrainedModel(model)
