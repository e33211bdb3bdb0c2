"""Bagging with a certificate: models on random subsamples, a vote, and the changes it survives.

Jia, Cao & Gong, "Intrinsic Certified Robustness of Bagging against Data Poisoning
Attacks", AAAI 2021.

``n_models`` base models are each trained on ``subsample`` training samples drawn
uniformly *with replacement*. For a test input let ``p_A`` be the probability that a
base model trained on a random subsample predicts the top class ``A`` and ``p_B`` the
largest such probability of another class. If ``r`` of the ``n`` training samples
are modified (features and/or label, the training set keeping its size), a
subsample avoids all of them with probability ``((n − r)/n)^s``, and on such a
subsample the base model is unchanged; so the poisoned ensemble still prefers ``A``
while

    p̲_A − p̄_B > 2 · (1 − ((n − r)/n)^s)

(the paper's Theorem 1, in the case of modified samples, without the rounding of the
probabilities to multiples of ``n^-s``, which can only make the radius larger). The
largest such ``r`` is the certified radius.

The probabilities are estimated from the ``n_models`` votes: ``p̲_A`` and ``p̄_B`` are
Clopper–Pearson bounds, Bonferroni-corrected over the classes, so the certificate
of one input holds with probability at least ``confidence`` over the draw of the
subsamples. Where ``p̲_A ≤ p̄_B`` nothing is certified (radius ``-1``), and the
prediction is still the plurality vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.training.base import Certificate, MakeModel, TrainedModel
from poisonlab.defenses.training.ensembles import base_model_builder, count_votes, fit_base, top_two
from poisonlab.errors import ConfigError, NotFittedError

__all__ = ["BaggingCertifier", "BaggingDefense", "bagging_radius"]

UNIT = "training samples modified (features or label), the training set keeping its size"


def bagging_radius(p_a_low: np.ndarray, p_b_up: np.ndarray, n_train: int, subsample: int) -> np.ndarray:
    """Largest ``r`` with ``p̲_A − p̄_B > 2(1 − ((n − r)/n)^s)``; ``-1`` where even ``r = 0`` fails."""
    gap = np.asarray(p_a_low, dtype=float) - np.asarray(p_b_up, dtype=float)
    radius = np.full(gap.shape, -1, dtype=np.int64)
    ok = gap > 0
    # (1 − r/n)^s > 1 − gap/2  ⇔  r < n · (1 − (1 − gap/2)^(1/s))
    bound = n_train * (1.0 - (1.0 - gap[ok] / 2.0) ** (1.0 / subsample))
    r = np.ceil(bound).astype(np.int64) - 1
    # guard the floating-point edge: step down while the strict inequality fails
    holds = lambda r_: gap[ok] > 2 * (1 - ((n_train - r_) / n_train) ** subsample)  # noqa: E731
    r = np.where(holds(r), r, r - 1)
    radius[ok] = np.clip(r, 0, n_train)
    return radius


class BaggingCertifier:
    """Bagging (subsamples with replacement), a plurality vote, and Jia et al.'s certified radius.

    Parameters
    ----------
    estimator : scikit-learn classifier or callable
        The base learner: an estimator (cloned) or ``seed -> unfitted model``.
    n_models : int
        Base models (the paper used 1,000; the bound tightens with more).
    subsample : int
        Samples per base model, drawn with replacement (``s`` above).
    confidence : float
        Probability that an input's certificate holds, over the subsamples' draw.
    random_state : int
        Seeds the subsamples and the base models.

    References
    ----------
    Jia, J., Cao, X., & Gong, N. Z. (2021). Intrinsic Certified Robustness of Bagging
    against Data Poisoning Attacks. AAAI 2021.
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        n_models: int = 100,
        subsample: int = 50,
        confidence: float = 0.999,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.n_models = n_models
        self.subsample = subsample
        self.confidence = confidence
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> BaggingCertifier:
        X, y = np.asarray(X), np.asarray(y)
        _check(self.n_models, self.subsample, self.confidence)
        make = base_model_builder(self.estimator)
        rng = np.random.default_rng(self.random_state)
        self.classes_ = np.unique(y)
        self.n_train_ = y.shape[0]
        self.models_ = []
        for i in range(self.n_models):
            rows = rng.integers(0, self.n_train_, size=self.subsample)
            self.models_.append(fit_base(make, self.random_state + i, X[rows], y[rows]))
        return self

    def votes(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "models_"):
            raise NotFittedError("BaggingCertifier is not fitted: call fit first")
        return count_votes(self.models_, np.asarray(X), self.classes_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[top_two(self.votes(X))[0]]

    def certify(self, X: np.ndarray) -> Certificate:
        votes = self.votes(X)
        winner = np.argmax(votes, axis=1)
        rows = np.arange(votes.shape[0])
        n_a = votes[rows, winner]
        others = votes.copy()
        others[rows, winner] = -1
        n_b = others.max(axis=1) if votes.shape[1] > 1 else np.zeros_like(n_a)
        n = self.n_models
        alpha = (1.0 - self.confidence) / max(self.classes_.size, 2)
        p_a_low = np.where(n_a > 0, beta.ppf(alpha, np.maximum(n_a, 1), n - n_a + 1), 0.0)
        p_b_up = np.where(n_b < n, beta.ppf(1 - alpha, n_b + 1, np.maximum(n - n_b, 1)), 1.0)
        p_b_up = np.minimum(p_b_up, 1.0 - p_a_low)
        radius = bagging_radius(p_a_low, p_b_up, self.n_train_, self.subsample)
        return Certificate(self.classes_[winner], radius, unit=UNIT, confidence=self.confidence)


def _check(n_models: Any, subsample: Any, confidence: Any) -> None:
    for name, value in (("n_models", n_models), ("subsample", subsample)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"{name} must be an integer ≥ 1, got {value!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, float | int) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence!r}")


class BaggingDefense:
    """Certified bagging of the run's model as a defense (see :class:`BaggingCertifier`)."""

    certifies = True

    def __init__(self, *, n_models: int = 100, subsample: int = 50, confidence: float = 0.999) -> None:
        _check(n_models, subsample, confidence)
        self.n_models = n_models
        self.subsample = subsample
        self.confidence = confidence

    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel:
        seed = int(rng.integers(2**31 - 1))
        model = BaggingCertifier(
            make_model,
            n_models=self.n_models,
            subsample=self.subsample,
            confidence=self.confidence,
            random_state=seed,
        )
        return TrainedModel(model.fit(train.X, train.y))
