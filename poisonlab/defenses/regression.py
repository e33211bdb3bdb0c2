"""Defenses for regression: fit a robust linear model, drop the training rows it rejects.

Each defense scales the training set to ``[0, 1]`` (features and response, as the
regression attacks do), fits a robust linear regression, and returns the rows
that fit kept; the experiment's own model is then trained on those rows. With a
ridge model this is TRIM's own final fit.

- ``trim``: :class:`~poisonlab.defenses.robust_regression.TRIMRegressor`
  (Jagielski et al. 2018), poison rate given or estimated (``"auto"``);
- ``ransac``: scikit-learn's ``RANSACRegressor`` (Fischler & Bolles 1981), its inliers;
- ``huber``: scikit-learn's ``HuberRegressor`` (Huber 1964), the rows it treats as outliers are dropped;
- ``residual``: :class:`~poisonlab.defenses.robust_regression.ResidualSanitizer`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.data.scaling import UnitBox
from poisonlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from poisonlab.defenses import DefenseResult

METHODS = ("trim", "ransac", "huber", "residual")


def unit_box(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (flattened) and response min-max scaled to ``[0, 1]`` with their own ranges."""
    return UnitBox(X, y).scale(X, y)


def robust_fit(
    method: str, X: np.ndarray, y: np.ndarray, *, random_state: int, **params: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Fit one robust regression on unit-box data; return (kept mask, |residual| per row)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import HuberRegressor, LinearRegression, RANSACRegressor

    from poisonlab.defenses.robust_regression import ResidualSanitizer, TRIMRegressor

    if method == "trim":
        model: Any = TRIMRegressor(random_state=random_state, **params).fit(X, y)
        kept = model.kept_mask_
    elif method == "ransac":
        model = RANSACRegressor(LinearRegression(), random_state=random_state, **params).fit(X, y)
        kept = model.inlier_mask_
    elif method == "huber":
        with warnings.catch_warnings():
            # lbfgs may stop at max_iter on poisoned data; the fit it reached is still the defense's answer
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = HuberRegressor(max_iter=1000, **params).fit(X, y)
        kept = ~model.outliers_
    elif method == "residual":
        model = ResidualSanitizer(**params).fit(X, y)
        kept = model.kept_mask_
    else:
        raise ConfigError(f"unknown regression defense {method!r}; known: {', '.join(METHODS)}")
    return np.asarray(kept, dtype=bool), np.abs(y - model.predict(X))


class RobustRegressionDefense:
    """Drop the training rows a robust regression rejects, then train the experiment's model on the rest."""

    def __init__(self, method: str, **params: Any) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown regression defense {method!r}; known: {', '.join(METHODS)}")
        if method == "trim":
            rate = params.get("poison_rate", "auto")
            if rate != "auto" and not (isinstance(rate, int | float) and 0 <= rate < 0.5):
                raise ConfigError(f"trim: poison_rate must be 'auto' or a rate in [0, 0.5), got {rate!r}")
        self.method = method
        self.params = params

    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult:
        from poisonlab.defenses import DefenseResult  # the package imports this module

        if not train.is_regression:
            raise DataError(
                f"defense {self.method} is for regression data; {train.name} is a {train.task} dataset"
            )
        if len(train) < train.n_features + 2:
            raise DataError(
                f"{self.method}: {len(train)} samples are too few for {train.n_features} features"
            )
        X, y = unit_box(train.X, train.y)
        kept, scores = robust_fit(self.method, X, y, random_state=int(rng.integers(2**31 - 1)), **self.params)
        return DefenseResult(train.subset(np.flatnonzero(kept)), ~kept, scores)
