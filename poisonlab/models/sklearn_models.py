"""Any scikit-learn classifier, by name, behind the same fit/predict surface.

Inputs are flattened (so images work too) and, for scale-sensitive learners,
standardised inside a pipeline fitted on the training data only.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any

import numpy as np

from poisonlab.errors import ConfigError


class FlatClassifier:
    """Wraps a scikit-learn estimator; flattens ``N×…`` inputs to ``N×d``."""

    def __init__(self, estimator: Any, *, scale: bool) -> None:
        # scikit-learn (>= 1.2) declares each parameter's valid range: C = -1 fails here,
        # when the config is read, not in every run's fit
        validate = getattr(estimator, "_validate_params", None)
        if validate is not None:
            try:
                validate()
            except (ValueError, TypeError) as exc:
                raise ConfigError(str(exc)) from None
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


class FlatRegressor(FlatClassifier):
    """A scikit-learn regressor on flattened, standardised inputs and a standardised target.

    The target is standardised for fitting and mapped back for prediction, so one
    set of hyperparameters (regularisation strength, learning rate) works whatever
    the response's units; predictions and errors are in the data's own units.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> FlatRegressor:
        from sklearn.base import clone
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        inner = (
            make_pipeline(StandardScaler(), clone(self.estimator)) if self.scale else clone(self.estimator)
        )
        self.model_ = TransformedTargetRegressor(regressor=inner, transformer=StandardScaler())
        self.model_.fit(_flat(X), np.asarray(y, dtype=np.float64))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raise TypeError("a regressor has no class probabilities")


def sklearn_classifier(
    module: str, class_name: str, *, scale: bool, regressor: bool = False, **defaults: Any
) -> Any:
    """A registry factory building ``module.class_name`` with user parameters over ``defaults``.

    The class is imported when a model is built, so listing models stays fast.
    """

    def factory(*, random_state: int = 0, **params: Any) -> FlatClassifier:
        estimator_cls = getattr(import_module(module), class_name)
        kwargs = {**defaults, **params}
        if "random_state" in estimator_cls().get_params():
            kwargs["random_state"] = random_state
        wrapper = FlatRegressor if regressor else FlatClassifier
        return wrapper(estimator_cls(**kwargs), scale=scale)

    # `poisonlab list` shows the defaults poisonlab sets; any other parameter of the
    # estimator is accepted too (scikit-learn checks it), without importing it to list
    P = inspect.Parameter
    shown = [P("random_state", P.KEYWORD_ONLY, default=0)]
    shown += [P(k, P.KEYWORD_ONLY, default=v) for k, v in defaults.items() if k != "random_state"]
    factory.__signature__ = inspect.Signature([*shown, P("params", P.VAR_KEYWORD)])  # type: ignore[attr-defined]
    factory.__name__ = class_name
    return factory
