"""Any scikit-learn classifier, by name, behind the same fit/predict surface.

Inputs are flattened (so images work too) and, for scale-sensitive learners,
standardised inside a pipeline fitted on the training data only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import numpy as np


class FlatClassifier:
    """Wraps a scikit-learn estimator; flattens ``N×…`` inputs to ``N×d``."""

    def __init__(self, estimator: Any, *, scale: bool) -> None:
        self.estimator = estimator
        self.scale = scale

    def fit(self, X: np.ndarray, y: np.ndarray) -> FlatClassifier:
        from sklearn.base import clone
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = clone(self.estimator)
        self.model_ = make_pipeline(StandardScaler(), model) if self.scale else model
        self.model_.fit(_flat(X), np.asarray(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(_flat(X)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(_flat(X)))


def _flat(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X.reshape(X.shape[0], -1)


def sklearn_classifier(module: str, class_name: str, *, scale: bool, **defaults: Any) -> Any:
    """A registry factory building ``module.class_name`` with user parameters over ``defaults``.

    The class is imported when a model is built, so listing models stays fast.
    """

    def factory(*, random_state: int = 0, **params: Any) -> FlatClassifier:
        estimator_cls = getattr(import_module(module), class_name)
        kwargs = {**defaults, **params}
        if "random_state" in estimator_cls().get_params():
            kwargs["random_state"] = random_state
        return FlatClassifier(estimator_cls(**kwargs), scale=scale)

    factory.__name__ = class_name
    return factory
