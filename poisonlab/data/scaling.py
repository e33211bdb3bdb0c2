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


def standardise(X: np.ndarray, *, block: int = 1 << 16, whole_below: int = 256 * 2**20) -> np.ndarray:
    """Columns to zero mean and unit variance, as scikit-learn's ``StandardScaler`` does.

    An array of up to ``whole_below`` bytes (256 MiB) goes through ``StandardScaler``
    itself. A larger one
    (a million user embeddings) is standardised in its own float dtype a block of
    rows at a time, with float64 sums: ``StandardScaler`` would build float64
    temporaries of the whole array, three times its float32 size. A constant
    column is centred and left unscaled.
    """
    X = np.asarray(X)
    if X.nbytes <= whole_below or X.dtype.kind != "f":
        from sklearn.preprocessing import StandardScaler

        return np.asarray(StandardScaler().fit_transform(X))
    n = X.shape[0]
    total = np.zeros(X.shape[1])
    for start in range(0, n, block):
        total += X[start : start + block].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros(X.shape[1])
    for start in range(0, n, block):
        squares += np.square(X[start : start + block] - mean.astype(X.dtype)).sum(axis=0, dtype=np.float64)
    std = np.sqrt(squares / n)
    std[std < 10 * np.finfo(np.float64).eps] = 1.0
    out = np.empty_like(X)
    for start in range(0, n, block):
        out[start : start + block] = (X[start : start + block] - mean.astype(X.dtype)) / std.astype(X.dtype)
    return out
