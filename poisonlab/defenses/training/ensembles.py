"""Shared machinery of the certified ensembles: building base models and counting their votes."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from poisonlab.errors import ConfigError

__all__ = ["ConstantModel", "ballots", "base_model_builder", "count_votes", "tally", "top_two"]


class ConstantModel:
    """The base model of a training subset that holds one class only: it predicts that class."""

    def __init__(self, label: Any) -> None:
        self.label = label

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(np.shape(X)[0], self.label)


def base_model_builder(estimator: Any) -> Any:
    """A function ``seed -> fresh unfitted model`` from a factory or a scikit-learn estimator.

    A callable that is not an estimator is taken as poisonlab's ``make_model(seed)``;
    an estimator is cloned (with ``random_state`` set where it has one). One that
    cannot be cloned is refused with one line before any training.
    """
    if estimator is None:
        raise ConfigError("a base learner is needed: a scikit-learn classifier or a make_model(seed)")
    if callable(estimator) and not hasattr(estimator, "fit"):
        return estimator
    if not hasattr(estimator, "fit") or not hasattr(estimator, "predict"):
        raise ConfigError(f"base learner {type(estimator).__name__} has no fit/predict")
    try:
        clone(estimator)
    except Exception as exc:  # scikit-learn raises TypeError or RuntimeError, depending on the fault
        raise ConfigError(f"base learner {type(estimator).__name__} cannot be cloned: {exc}") from None

    def make(seed: int) -> Any:
        model = clone(estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=seed)
        return model

    return make


def fit_base(make: Any, seed: int, X: np.ndarray, y: np.ndarray) -> Any:
    """A base model fitted on ``(X, y)``: a constant for a one-class subset, ``None`` for an empty one."""
    if y.shape[0] == 0:
        return None
    labels = np.unique(y)
    if labels.size == 1:
        return ConstantModel(labels[0])
    return make(seed).fit(X, y)


def ballots(models: list[Any], X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(n_models, n_inputs)`` index into ``classes`` each model votes for; ``-1`` where it abstains.

    A model abstains when it is ``None`` (an empty training subset) or predicts a label
    outside ``classes``.
    """
    votes = np.full((len(models), np.shape(X)[0]), -1, dtype=np.int64)
    for i, model in enumerate(models):
        if model is None:
            continue
        predicted = np.asarray(model.predict(X))
        index = np.searchsorted(classes, predicted)
        known = (index < classes.size) & (classes[np.minimum(index, classes.size - 1)] == predicted)
        votes[i] = np.where(known, index, -1)
    return votes


def tally(ballots: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_inputs, n_classes)`` vote counts from :func:`ballots` (abstentions not counted)."""
    return np.stack([(ballots == c).sum(axis=0) for c in range(n_classes)], axis=1)


def count_votes(models: list[Any], X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(n_inputs, n_classes)`` counts of base models predicting each class (``None`` abstains)."""
    return tally(ballots(models, X, classes), classes.size)


def top_two(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Winner index (ties to the smaller class index), its count, and the best rival count with tie-break.

    The rival count is ``max over c' ≠ winner of n_c' + [c' < winner]``: a rival with a
    smaller index wins a tie, so it needs one vote less to take the prediction.
    """
    winner = np.argmax(votes, axis=1)  # argmax returns the first maximum: the smaller index
    rows = np.arange(votes.shape[0])
    n_top = votes[rows, winner]
    favoured = (np.arange(votes.shape[1])[None, :] < winner[:, None]).astype(np.int64)
    rival = votes + favoured
    rival[rows, winner] = np.iinfo(np.int64).min
    return winner, n_top, rival.max(axis=1) if votes.shape[1] > 1 else np.zeros_like(n_top)
