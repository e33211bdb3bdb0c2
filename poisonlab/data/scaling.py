"""Min-max scaling of a regression set to the unit box, as the regression attacks and defenses use it."""

from __future__ import annotations

import numpy as np


class UnitBox:
    """Maps flattened features and the response to ``[0, 1]`` with a training set's ranges, and back.

    Jagielski et al. (2018) state their regression attacks and TRIM on data scaled
    this way; poison points are confined to the box. A constant column maps to 0.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64).reshape(X.shape[0], -1)
        self.lo, self.hi = X.min(axis=0), X.max(axis=0)
        self.y_lo, self.y_hi = float(np.min(y)), float(np.max(y))

    def scale(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64).reshape(X.shape[0], -1)
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        y_span = self.y_hi - self.y_lo or 1.0
        return np.clip((X - self.lo) / span, 0.0, 1.0), np.clip(
            (np.asarray(y) - self.y_lo) / y_span, 0.0, 1.0
        )

    def unscale(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lo + X * (self.hi - self.lo), self.y_lo + y * (self.y_hi - self.y_lo)
