"""Regression poisoning (Jagielski et al. 2018) behind poisonlab's attack contract.

The array-level algorithms live in :mod:`poisonlab.attacks.regression_core`; this
module adapts them to :class:`~poisonlab.attacks.base.Attack`: the attacker
overwrites ``n_poison`` rows of the training set (chosen at random), features and
response are min-max scaled to ``[0, 1]`` on the training set as in the paper,
and the poison points are mapped back to the data's units.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, choose, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.data.scaling import UnitBox
from poisonlab.errors import ConfigError, DataError


class _RegressionAttack(Attack):
    tasks = ("regression",)
    modalities = ("tabular",)

    def _split(
        self, dataset: Dataset, n_poison: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows to overwrite and rows left clean; the clean rows must still determine a linear model."""
        n_clean = len(dataset) - n_poison
        if n_clean < dataset.n_features + 1:
            raise ConfigError(
                f"a budget of {n_poison} leaves {n_clean} clean samples of {dataset.name}, "
                f"fewer than its {dataset.n_features} features + 1"
            )
        victims = choose(np.arange(len(dataset)), n_poison, rng, "training samples")
        return victims, np.setdiff1d(np.arange(len(dataset)), victims)

    def _result(
        self, dataset: Dataset, victims: np.ndarray, box: UnitBox, Xp: np.ndarray, yp: np.ndarray
    ) -> PoisonResult:
        X, y = np.array(dataset.X, dtype=np.float64), np.array(dataset.y)
        X[victims], y[victims] = box.unscale(Xp, yp)
        poisoned = dataset.with_arrays(X=X.astype(np.float32), y=y)
        # a poison row equal to the row it replaced (possible at a box corner) is not a change
        changed = (poisoned.X[victims] != dataset.X[victims]).any(axis=1) | (
            poisoned.y[victims] != dataset.y[victims]
        )
        return PoisonResult(poisoned, mask_of(victims[changed], len(dataset)))


class StatP(_RegressionAttack):
    """StatP: poison points drawn from the training data's mean and covariance, at the box corners.

    See :func:`poisonlab.attacks.regression_core.statp`. Needs only the first two
    moments of the data, so it stands for a weak, black-box attacker.

    References
    ----------
    M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru, B. Li. "Manipulating
    Machine Learning: Poisoning Attacks and Countermeasures for Regression
    Learning." IEEE S&P 2018.
    """

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        from poisonlab.attacks.regression_core import statp

        victims, clean = self._split(dataset, n_poison, rng)
        box = UnitBox(dataset.X, dataset.y)
        Xs, ys = box.scale(dataset.X[clean].astype(np.float64), dataset.y[clean])
        Xp, yp = statp(Xs, ys, n_poison, rng)
        return self._result(dataset, victims, box, Xp, yp)


class OptP(_RegressionAttack):
    needs_model = True
    """OptP: poison points optimised by gradient ascent through ridge regression's optimality conditions.

    See :func:`poisonlab.attacks.regression_core.optp`. The attacker knows the
    training set (white box) and maximises the ridge model's error on the rows it
    leaves clean (the paper's ``W_tr`` objective; it needs no separate validation
    data, and on diabetes it hurts the test error more than ``W_val`` on a
    held-out fifth: 2.40× against 2.14× at 20%). ``init`` is the paper's starting
    strategy: ``bflip`` (boundary flipping) or ``invflip`` (inverse flipping).

    References
    ----------
    M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru, B. Li. "Manipulating
    Machine Learning: Poisoning Attacks and Countermeasures for Regression
    Learning." IEEE S&P 2018.
    """

    def __init__(
        self, *, init: Literal["bflip", "invflip"] = "bflip", alpha: float = 1e-3, max_iter: int = 300
    ) -> None:
        if init not in ("bflip", "invflip"):
            raise ConfigError(f"init must be 'bflip' or 'invflip', got {init!r}")
        if not alpha >= 0:
            raise ConfigError(f"alpha must be >= 0, got {alpha}")
        self.init = init
        self.alpha = alpha
        self.max_iter = max_iter

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        from poisonlab.attacks.regression_core import optp

        victims, clean = self._split(dataset, n_poison, rng)
        box = UnitBox(dataset.X, dataset.y)
        Xs, ys = box.scale(dataset.X[clean].astype(np.float64), dataset.y[clean])
        try:
            Xp, yp = optp(
                Xs,
                ys,
                Xs,
                ys,
                n_poison,
                alpha=self.alpha,
                init=self.init,
                objective="train",
                max_iter=self.max_iter,
                rng=rng,
            )
        except DataError as exc:
            raise DataError(f"{dataset.name}: {exc}") from exc
        return self._result(dataset, victims, box, Xp, yp)
