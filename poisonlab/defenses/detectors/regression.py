"""Detectors for regression data: a robust linear fit, its residuals, the rows it rejects.

Each detector scales features (flattened) and response to ``[0, 1]`` with their
own ranges, as the regression attacks do, fits one robust linear regression, and
scores a sample by its absolute residual under that fit; its own flag rule is the
fit's rejection. They read the data itself, no proxy model's evidence.

- ``trim``: :class:`~poisonlab.defenses.robust_regression.TRIMRegressor`
  (Jagielski et al. 2018), poison rate given or estimated (``"auto"``);
- ``ransac``: scikit-learn's ``RANSACRegressor`` (Fischler & Bolles 1981), its outliers;
- ``huber``: scikit-learn's ``HuberRegressor`` (Huber 1964), residual robust z-score above 3.5;
- ``residual``: :class:`~poisonlab.defenses.robust_regression.ResidualSanitizer`,
  a residual robust z-score above 3.5 under ordinary least squares.

References
----------
M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru, B. Li. "Manipulating
Machine Learning: Poisoning Attacks and Countermeasures for Regression Learning."
IEEE S&P 2018.
M. A. Fischler, R. C. Bolles. "Random Sample Consensus." CACM 24(6), 1981.
P. J. Huber. "Robust Estimation of a Location Parameter." Ann. Math. Statist. 35(1), 1964.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.data.scaling import UnitBox
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.errors import ConfigError, DataError


class _RobustFitDetector(Detector):
    """Base: subclasses fit one robust model and return (kept mask, fitted model)."""

    tasks = ("regression",)
    needs = ()
    min_samples = 3

    random_state: int

    def _score(self, dataset: Dataset, evidence: Evidence | None) -> np.ndarray:
        if len(dataset) < dataset.n_features + 2:
            raise DataError(
                f"{dataset.name}: {len(dataset)} samples are too few for {dataset.n_features} features"
            )
        X, y = UnitBox(dataset.X, dataset.y).scale(dataset.X, dataset.y)
        kept, model = self._fit(X, y)
        self.kept_mask_ = np.asarray(kept, dtype=bool)
        self.model_ = model
        return np.abs(y - model.predict(X))

    def _auto_flags(self, dataset: Dataset, evidence: Evidence | None, scores: np.ndarray) -> np.ndarray:
        return ~self.kept_mask_

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any]: ...


class TRIMDetector(_RobustFitDetector):
    """TRIM (Jagielski et al. 2018): the rows outside the trimmed least-squares fit.

    Parameters
    ----------
    poison_rate : float in [0, 0.5) or "auto"
        The share of rows TRIM leaves out; ``"auto"`` estimates it.
    n_init : int
        Random restarts of the alternating minimisation.
    random_state : int
        Seeds the restarts.
    """

    def __init__(self, *, poison_rate: float | str = "auto", n_init: int = 10, random_state: int = 0) -> None:
        if poison_rate != "auto" and not (
            isinstance(poison_rate, int | float)
            and not isinstance(poison_rate, bool)
            and 0 <= poison_rate < 0.5
        ):
            raise ConfigError(f"trim: poison_rate must be 'auto' or a rate in [0, 0.5), got {poison_rate!r}")
        self.poison_rate = poison_rate
        self.n_init = n_init
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any]:
        from poisonlab.defenses.robust_regression import TRIMRegressor

        model = TRIMRegressor(
            poison_rate=self.poison_rate, n_init=self.n_init, random_state=self.random_state
        ).fit(X, y)
        return model.kept_mask_, model


class RANSACDetector(_RobustFitDetector):
    """RANSAC (Fischler & Bolles 1981) around ordinary least squares: its outliers.

    Parameters
    ----------
    random_state : int
        Seeds the random minimal subsets.
    """

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any]:
        from sklearn.linear_model import LinearRegression, RANSACRegressor

        model = RANSACRegressor(LinearRegression(), random_state=self.random_state).fit(X, y)
        return model.inlier_mask_, model


class HuberDetector(_RobustFitDetector):
    """Huber regression (Huber 1964): rows with an outlying residual under the Huber fit.

    The fit down-weights large residuals, so poisons pull it less than they pull
    least squares. Huber's own ``outliers_`` are not the flags: they are the
    residuals beyond ``epsilon`` scale units, where its loss turns linear, which
    is a third of a clean set (measured: 36% of the conformance checks' clean toy
    set). A row is flagged when its residual's modified z-score exceeds
    ``threshold``, the rule of :class:`ResidualDetector`.

    Parameters
    ----------
    epsilon : float > 1
        Huber's threshold, in scale units of the residuals.
    threshold : float
        Cut-off on the residual's modified z-score (Iglewicz and Hoaglin's 3.5).
    """

    def __init__(self, *, epsilon: float = 1.35, threshold: float = 3.5) -> None:
        self.epsilon = epsilon
        self.threshold = threshold

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import HuberRegressor

        from poisonlab.defenses.robust_regression import robust_scale

        with warnings.catch_warnings():
            # lbfgs may stop at max_iter on poisoned data; the fit it reached is still the answer
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = HuberRegressor(epsilon=self.epsilon, max_iter=1000).fit(X, y)
        residuals = y - model.predict(X)
        z = np.abs(residuals - np.median(residuals)) / robust_scale(residuals)
        return z <= self.threshold, model


class ResidualDetector(_RobustFitDetector):
    """Rows whose least-squares residual has a robust z-score above ``threshold``.

    Parameters
    ----------
    threshold : float
        Cut-off on the residual's modified z-score (Iglewicz and Hoaglin's 3.5).
    """

    def __init__(self, *, threshold: float = 3.5) -> None:
        self.threshold = threshold

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any]:
        from poisonlab.defenses.robust_regression import ResidualSanitizer

        model = ResidualSanitizer(threshold=self.threshold).fit(X, y)
        return model.kept_mask_, model
