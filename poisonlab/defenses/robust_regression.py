"""Robust linear regression against poisoned training sets: TRIM and residual sanitising.

- :class:`TRIMRegressor` is the TRIM defense of Jagielski et al. (IEEE S&P 2018):
  fit on the ``n`` points with the smallest residuals, refit, repeat. With an
  unknown poison rate it estimates ``n`` first with the reweighting step of
  FAST-LTS (Rousseeuw & Van Driessen 2006).
- :class:`ResidualSanitizer` fits once, drops points whose residual has a robust
  z-score above a threshold, and refits.
- :func:`residual_scores` gives one suspicion score per sample from cross-fitted
  residuals, for a scanner.

All three wrap any scikit-learn linear regressor. RANSAC and Huber regression are
not reimplemented here: ``sklearn.linear_model.RANSACRegressor`` and
``HuberRegressor`` are used directly.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["ResidualSanitizer", "TRIMRegressor", "residual_scores"]

# 1 / Φ⁻¹(3/4): turns a median absolute deviation into a standard deviation under normal noise.
MAD_TO_SD = 1.4826
# The default learner: ridge with a small penalty. For features scaled to [0, 1] a
# column's sum of squares is about n·Var(x) (≥ 5 for a few hundred samples), so
# alpha = 0.1 shrinks the coefficients by a few percent at most, close to least
# squares, while keeping the normal equations well conditioned for collinear
# columns and for the subsets TRIM fits on.
DEFAULT_ALPHA = 0.1


def _default_estimator(estimator: Any) -> Any:
    return Ridge(alpha=DEFAULT_ALPHA) if estimator is None else estimator


def robust_scale(residuals: np.ndarray) -> float:
    """``1.4826 · median |r − median(r)|``: the residual standard deviation, robust to < 50% outliers.

    Falls back to the (consistency-scaled) mean absolute deviation when more than
    half the residuals are equal, and to 1 when all are.
    """
    centred = np.abs(residuals - np.median(residuals))
    scale = MAD_TO_SD * float(np.median(centred))
    if scale <= 0:
        scale = math.sqrt(math.pi / 2) * float(np.mean(centred))
    return scale if scale > 0 else 1.0


def _squared_residuals(model: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (y - model.predict(X)) ** 2


def _smallest(values: np.ndarray, n: int) -> np.ndarray:
    """Mask of the ``n`` smallest values (ties broken by index order, deterministically)."""
    mask = np.zeros(values.shape[0], dtype=bool)
    mask[np.argsort(values, kind="stable")[:n]] = True
    return mask


class _KeptSubsetRegressor(RegressorMixin, BaseEstimator):
    """A linear model refitted on the training points a robust rule kept (``kept_mask_``)."""

    estimator_: Any
    kept_mask_: np.ndarray

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the model fitted on the kept points."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(self.estimator_.predict(X))

    @property
    def coef_(self) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.coef_)

    @property
    def intercept_(self) -> float:
        check_is_fitted(self, "estimator_")
        return self.estimator_.intercept_  # type: ignore[no-any-return]


class TRIMRegressor(_KeptSubsetRegressor):
    """TRIM: least trimmed squares by alternating between trimming and refitting.

    Given ``N`` training points of which at most ``p`` are poison, TRIM looks for
    the ``n = N − p`` points on which the learner's loss is smallest:

    1. start from a fit on a subset (a random subset of size ``n``, all points, or
       one of the best random subsets of d + 1 points, as FAST-LTS starts);
    2. keep the ``n`` points with the smallest squared residuals under that fit;
    3. refit on them and repeat 2–3 until the kept set stops changing (for least
       squares each round can only lower the trimmed loss, so this terminates), or
       after ``max_iter`` rounds.

    This runs from several starts and keeps the run with the lowest trimmed loss
    (the mean of the ``n`` smallest squared residuals), as in the paper: the fit on
    all points, ``n_init − 1`` random subsets of size ``n``, and the ``n`` points
    closest to a high-breakdown fit (TRIM keeping ``⌈0.55·N⌉`` points, itself run
    from the same kinds of starts). Every random subset of size ``n`` holds about
    the poison share of poison, so on its own it starts from a fit the poison
    already pulls; with a clustered, optimised poison set TRIM can then settle on
    a subset that keeps the poison and drops clean points. Keeping only about half
    the points leaves room to fit the clean majority instead, and that start
    competes on trimmed loss like the others (the selection never looks at
    anything but the training data).

    Unknown rate (``poison_rate="auto"``). The share of poison is estimated first,
    with the reweighting step of FAST-LTS:

    a. take the high-breakdown fit (TRIM keeping ``h = ⌈0.55·N⌉`` points), which
       tolerates up to 45% outliers;
    b. estimate the residual scale of all ``N`` points under that fit robustly,
       ``s = 1.4826 · MAD(r)``. The MAD is taken over all residuals, not only the
       ``h`` kept ones, whose spread is truncated and would understate ``s``;
    c. count as inliers the points with ``|r − median(r)| ≤ 3·s``. Under normal
       noise a clean point lies beyond 3·s with probability 0.27% (1.2% beyond the
       2.5·s of FAST-LTS), so clean data loses almost nothing to trimming, while
       poison that shifts the model enough to matter sits far outside the clean
       fit, beyond either cut;
    d. ``n = max(inliers, ⌈N/2⌉)``, then TRIM with that ``n`` from the starts above.

    Parameters
    ----------
    estimator : scikit-learn linear regressor, default ``Ridge(alpha=0.1)``
        The learner TRIM refits; cloned, never modified.
    poison_rate : float in [0, 0.5) or "auto"
        Share of the training points assumed to be poison; TRIM keeps
        ``n = N − ⌊poison_rate·N⌋`` points. ``"auto"`` estimates it (see above).
    max_iter : int
        Most trim-and-refit rounds per start.
    n_init : int
        Number of starts (the fit on all points counts as one).
    n_elemental : int
        Random subsets of d + 1 points tried as further starts, FAST-LTS style:
        two trim-and-refit steps each, and the 10 best continue as full starts.
    random_state : int, RandomState or None
        Seeds the random starting subsets.

    Attributes
    ----------
    estimator_ : fitted clone of ``estimator``, trained on the kept points
    kept_mask_ : ndarray of bool, shape (N,)
        The training points ``estimator_`` was fitted on.
    n_iter_ : int
        Trim-and-refit rounds of the winning start.
    poison_rate_ : float
        The rate used, or the estimate ``1 − n/N`` for ``"auto"``.
    loss_ : float
        Mean squared residual over the kept points.
    coef_, intercept_ : those of ``estimator_``.

    References
    ----------
    M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru, B. Li. "Manipulating
    Machine Learning: Poisoning Attacks and Countermeasures for Regression
    Learning." IEEE S&P 2018 (the TRIM defense).
    P. J. Rousseeuw, K. Van Driessen. "Computing LTS Regression for Large Data
    Sets." Data Mining and Knowledge Discovery 12, 2006.
    """

    #: Elemental starts that go on to full TRIM runs.
    N_KEEP_ELEMENTAL = 10
    #: Share of points the high-breakdown fit keeps.
    HIGH_BREAKDOWN_KEEP = 0.55
    #: Inlier cut for ``poison_rate="auto"``, in robust standard deviations.
    AUTO_CUTOFF = 3.0

    def __init__(
        self,
        estimator: Any = None,
        poison_rate: float | str = "auto",
        max_iter: int = 100,
        n_init: int = 10,
        n_elemental: int = 200,
        random_state: Any = 0,
    ) -> None:
        self.estimator = estimator
        self.poison_rate = poison_rate
        self.max_iter = max_iter
        self.n_init = n_init
        self.n_elemental = n_elemental
        self.random_state = random_state

    # -- the TRIM iteration ---------------------------------------------------------

    def _run(
        self, learner: Any, X: np.ndarray, y: np.ndarray, start: np.ndarray, n: int
    ) -> tuple[Any, np.ndarray, int]:
        """TRIM from one starting subset; returns (model, kept mask, rounds)."""
        model = clone(learner).fit(X[start], y[start])
        kept = start
        rounds = 0
        while rounds < self.max_iter:
            rounds += 1
            new = _smallest(_squared_residuals(model, X, y), n)
            if np.array_equal(new, kept):
                break
            kept = new
            model = clone(learner).fit(X[kept], y[kept])
        return model, kept, rounds

    def _elemental_starts(
        self, learner: Any, X: np.ndarray, y: np.ndarray, n: int, rng: np.random.RandomState
    ) -> list[np.ndarray]:
        """FAST-LTS starts: fits on ``n_elemental`` random subsets of d + 1 points, two C-steps each.

        A subset of d + 1 points is free of poison with probability ``(1 − ε)^(d+1)``
        (8.6% for ε = 20%, d = 10), so among a few hundred a clean one is all but
        certain, while a subset of size ``n`` always carries about the poison share.
        After two trim-and-refit steps the ``N_KEEP_ELEMENTAL`` subsets with the
        lowest trimmed loss go on as full starts.
        """
        N, size = X.shape[0], min(X.shape[0], X.shape[1] + 1)
        found: list[tuple[float, np.ndarray]] = []
        for _ in range(self.n_elemental):
            kept = np.zeros(N, dtype=bool)
            kept[rng.choice(N, size=size, replace=False)] = True
            for _ in range(2):
                residuals = _squared_residuals(clone(learner).fit(X[kept], y[kept]), X, y)
                kept = _smallest(residuals, n)
            found.append((float(np.sort(residuals)[:n].mean()), kept))
        found.sort(key=lambda item: item[0])
        return [kept for _, kept in found[: self.N_KEEP_ELEMENTAL]]

    def _best_of(
        self,
        learner: Any,
        X: np.ndarray,
        y: np.ndarray,
        n: int,
        rng: np.random.RandomState,
        extra: list[np.ndarray],
    ) -> tuple[Any, np.ndarray, int, float]:
        """TRIM keeping ``n`` points from every start; the run with the lowest trimmed loss."""
        N = X.shape[0]
        starts = [*extra, np.ones(N, dtype=bool)]
        for _ in range(max(0, self.n_init - 1)):
            mask = np.zeros(N, dtype=bool)
            mask[rng.choice(N, size=n, replace=False)] = True
            starts.append(mask)
        starts += self._elemental_starts(learner, X, y, n, rng)
        best: tuple[Any, np.ndarray, int, float] | None = None
        for start in starts:
            model, kept, rounds = self._run(learner, X, y, start, n)
            # The trimmed loss of the final model: its n smallest squared residuals.
            loss = float(np.sort(_squared_residuals(model, X, y))[:n].mean())
            if best is None or loss < best[3]:
                best = (model, kept, rounds, loss)
        assert best is not None
        return best

    # -- scikit-learn API -------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> TRIMRegressor:
        """Run TRIM on ``(X, y)`` and keep the best model found."""
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not isinstance(self.n_init, numbers.Integral) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, got {self.n_init!r}")
        if not isinstance(self.n_elemental, numbers.Integral) or self.n_elemental < 0:
            raise ValueError(f"n_elemental must be a non-negative integer, got {self.n_elemental!r}")
        auto = isinstance(self.poison_rate, str)
        if auto and self.poison_rate != "auto":
            raise ValueError(f"poison_rate must be a float in [0, 0.5) or 'auto', got {self.poison_rate!r}")
        rate = 0.0 if auto else float(self.poison_rate)  # type: ignore[arg-type]
        if not 0.0 <= rate < 0.5:
            raise ValueError(f"poison_rate must be in [0, 0.5) or 'auto', got {self.poison_rate!r}")
        N = X.shape[0]
        rng = check_random_state(self.random_state)
        learner = _default_estimator(self.estimator)

        n = N - math.floor(rate * N)
        extra: list[np.ndarray] = []
        if auto or n < N:
            # The high-breakdown fit: TRIM keeping about half the points.
            h = max(min(N, math.ceil(self.HIGH_BREAKDOWN_KEEP * N)), 1)
            robust, _, _, _ = self._best_of(learner, X, y, h, rng, [])
            residuals = y - robust.predict(X)
            centred = np.abs(residuals - np.median(residuals))
            if auto:  # FAST-LTS reweighting: count the points within 3 robust SDs
                inliers = int(np.sum(centred <= self.AUTO_CUTOFF * robust_scale(residuals)))
                n = max(inliers, math.ceil(N / 2))
            extra.append(_smallest(centred, n))
        if n == N:
            model, kept, rounds = clone(learner).fit(X, y), np.ones(N, dtype=bool), 0
            loss = float(_squared_residuals(model, X, y).mean())
        else:
            model, kept, rounds, loss = self._best_of(learner, X, y, n, rng, extra)
        self.estimator_ = model
        self.kept_mask_ = kept
        self.n_iter_ = rounds
        self.loss_ = loss
        self.poison_rate_ = 1.0 - n / N if auto else rate
        return self


class ResidualSanitizer(_KeptSubsetRegressor):
    """Fit, drop points with an outlying residual, refit.

    The residuals ``r`` of a first fit on all points get robust z-scores
    ``|r − median(r)| / (1.4826 · MAD(r))``; points scoring above ``threshold`` are
    dropped and the learner is refitted on the rest. 3.5 is the usual cut for such
    modified z-scores (Iglewicz & Hoaglin 1993).

    Parameters
    ----------
    estimator : scikit-learn regressor, default ``Ridge(alpha=0.1)``
    threshold : float
        Robust z-score above which a point is dropped.

    Attributes
    ----------
    estimator_ : fitted clone of ``estimator``, trained on the kept points
    kept_mask_ : ndarray of bool, shape (N,)
    scores_ : ndarray of shape (N,), the robust z-scores of the first fit
    coef_, intercept_ : those of ``estimator_``
    """

    def __init__(self, estimator: Any = None, threshold: float = 3.5) -> None:
        self.estimator = estimator
        self.threshold = threshold

    def fit(self, X: Any, y: Any) -> ResidualSanitizer:
        """Fit, flag outlying residuals, refit without them."""
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold!r}")
        learner = _default_estimator(self.estimator)
        first = clone(learner).fit(X, y)
        residuals = y - first.predict(X)
        scores = np.abs(residuals - np.median(residuals)) / robust_scale(residuals)
        kept = scores <= self.threshold
        self.scores_ = scores
        self.kept_mask_ = kept
        self.estimator_ = first if kept.all() else clone(learner).fit(X[kept], y[kept])
        return self


def residual_scores(
    X: Any, y: Any, estimator: Any = None, cv: int = 5, *, random_state: int | None = 0
) -> np.ndarray:
    """One suspicion score per sample: its cross-fitted absolute residual in robust SD units.

    Each sample is predicted by a model fitted on the other folds (shuffled
    ``KFold``), so a point cannot hide its own residual by pulling the fit; the
    scores are ``|r − median(r)| / (1.4826 · MAD(r))``. Higher means more suspect;
    above about 3.5 is unusual under normal noise.

    Parameters
    ----------
    X : array of shape (N, d)
    y : array of shape (N,)
    estimator : scikit-learn regressor, default ``Ridge(alpha=0.1)``
    cv : int
        Number of folds (at least 2).
    random_state : int or None
        Seeds the fold shuffle.

    Returns
    -------
    ndarray of shape (N,)
    """
    X_arr = np.asarray(X, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    if X_arr.ndim != 2 or y_arr.ndim != 1 or X_arr.shape[0] != y_arr.shape[0]:
        raise ValueError(f"X must be 2-D and y 1-D of the same length, got {X_arr.shape} and {y_arr.shape}")
    if not isinstance(cv, numbers.Integral) or not 2 <= cv <= X_arr.shape[0]:
        raise ValueError(f"cv must be an integer from 2 to the number of samples, got {cv!r}")
    folds = KFold(n_splits=int(cv), shuffle=True, random_state=random_state)
    predicted = cross_val_predict(clone(_default_estimator(estimator)), X_arr, y_arr, cv=folds)
    residuals = y_arr - predicted
    return np.abs(residuals - np.median(residuals)) / robust_scale(residuals)
