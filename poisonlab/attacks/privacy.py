"""Privacy poisoning: poisons that make a model leak whether a target was in its training set.

Tramèr, Shokri, San Joaquin, Le, Jagielski, Hong & Carlini, "Truth Serum: Poisoning
Machine Learning Models to Reveal Their Secrets", ACM CCS 2022
(https://arxiv.org/abs/2204.00032). The attacker knows a target ``(x, y)`` and wants to
learn whether it is in the victim's training set. It plants ``r`` copies of ``x`` with
one wrong label ``y' ≠ y``. A model trained without the target then fits ``y'`` on
``x`` and gives ``y`` almost no probability; a model trained with it must weigh the one
true copy against the ``r`` wrong ones, and ``y`` keeps a clearly larger share. The
target turns into an outlier whose presence moves the model's output far more than an
ordinary sample's, so a membership-inference attack such as LiRA
(:mod:`poisonlab.privacy`) separates members from non-members much better.

A poisonlab attack returns a dataset of the size it was given with the exact mask of
the rows it changed, so :class:`TruthSerum` *replaces* rows with the copies: each copy
overwrites a row drawn with the seed among the non-target rows whose label differs from
the copy's (the paper *adds* the copies; :func:`poisonlab.privacy.membership_audit`
adds them, as the paper does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError

__all__ = ["TruthSerum", "mislabelled_copies", "resolve_targets"]

Targets = int | Sequence[int] | np.ndarray


def resolve_targets(targets: Targets, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted target row indices: ``targets`` drawn at random if a count, else checked indices."""
    if isinstance(targets, bool):
        raise ConfigError(f"targets must be a count or row indices, got {targets!r}")
    if isinstance(targets, int | np.integer):
        if not 1 <= targets <= n_rows:
            raise ConfigError(f"targets must be a count in 1..{n_rows}, got {targets}")
        return np.sort(rng.choice(n_rows, size=int(targets), replace=False))
    index = np.asarray(targets)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise ConfigError(f"targets must be a count or a non-empty list of row indices, got {targets!r}")
    if index.min() < 0 or index.max() >= n_rows:
        bad = int(index[(index < 0) | (index >= n_rows)][0])
        raise ConfigError(f"target index {bad} is out of range: the data has rows 0..{n_rows - 1}")
    if np.unique(index).size != index.size:
        raise ConfigError("target indices repeat: name each target once")
    return np.sort(index.astype(np.int64))


def mislabelled_copies(
    X: np.ndarray, y: np.ndarray, n_classes: int, copies: int | np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth Serum's poisons: ``copies`` copies of each target ``X[i]``, all with one wrong label.

    The wrong label of each target is drawn uniformly from the other classes. ``copies``
    is one count for every target or one per target. Returns the poisons' features and
    labels (copies of one target next to each other) and the wrong label of each target.
    """
    if n_classes < 2:
        raise ConfigError("Truth Serum needs at least two classes to mislabel a target")
    y = np.asarray(y, dtype=np.int64)
    shift = rng.integers(1, n_classes, size=y.shape[0])  # never 0: the label always changes
    wrong = (y + shift) % n_classes
    counts = np.broadcast_to(np.asarray(copies, dtype=np.int64), y.shape)
    owner = np.repeat(np.arange(y.shape[0]), counts)
    return np.asarray(X)[owner], wrong[owner], wrong


class TruthSerum(Attack):
    """Truth Serum's targeted membership poisoning: wrong-label copies of each target (Tramèr et al. 2022).

    Parameters
    ----------
    targets : int or sequence of int, optional
        The rows whose membership the attacker wants to reveal: their indices, or how
        many to draw with the seed. Each gets exactly ``copies`` copies, so the budget
        must allow ``targets × copies`` poisons (a larger budget is not spent: more
        copies than asked would not serve the attack). Default: as many targets as the
        budget allows, ``ceil(budget / copies)``, the budget shared as evenly as it
        divides (no target gets more than ``copies``), so all of it is spent.
    copies : int
        ``r``, the wrong-label copies of each target. The paper measured r from 1 to
        16; a handful already multiplies LiRA's true-positive rate at low false-positive
        rates, and too many drown the one true copy as well.

    Each copy replaces a non-target row whose label differs from the copy's (see the
    module docstring), so features and labels both change: no ``keeps_*`` tag holds.

    References
    ----------
    Tramèr, F., Shokri, R., San Joaquin, A., Le, H., Jagielski, M., Hong, S., & Carlini,
    N. (2022). Truth Serum: Poisoning Machine Learning Models to Reveal Their Secrets.
    ACM CCS 2022. arXiv:2204.00032.
    """

    def __init__(self, *, targets: Targets | None = None, copies: int = 4) -> None:
        if isinstance(copies, bool) or not isinstance(copies, int | np.integer) or copies < 1:
            raise ConfigError(f"copies must be an integer ≥ 1, got {copies!r}")
        if targets is not None and not isinstance(targets, int | np.integer | Sequence | np.ndarray):
            raise ConfigError(f"targets must be a count or row indices, got {targets!r}")
        self.targets = targets
        self.copies = int(copies)

    def check(self, dataset: Dataset) -> None:
        super().check(dataset)
        if self.targets is not None:  # indices out of range fail the plan, not every run
            resolve_targets(self.targets, len(dataset), np.random.default_rng(0))

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        n = len(dataset)
        if self.targets is None:
            n_targets = math.ceil(n_poison / self.copies)
            target_index = resolve_targets(min(n_targets, n), n, rng)
            share = np.full(target_index.size, n_poison // target_index.size)
            share[: n_poison % target_index.size] += 1
        else:
            target_index = resolve_targets(self.targets, n, rng)
            share = np.full(target_index.size, self.copies)
            if share.sum() > n_poison:
                raise ConfigError(
                    f"{target_index.size} targets × {self.copies} copies need a budget of "
                    f"{int(share.sum())} poisons, got {n_poison}"
                )
        X_poison, y_poison, _ = mislabelled_copies(
            dataset.X[target_index], dataset.y[target_index], dataset.n_classes, share, rng
        )
        rows = self._rows_to_replace(dataset, target_index, y_poison, rng)
        X, y = dataset.X.copy(), dataset.y.copy()
        X[rows], y[rows] = X_poison, y_poison
        return PoisonResult(dataset.with_arrays(X=X, y=y), mask_of(rows, n))

    @staticmethod
    def _rows_to_replace(
        dataset: Dataset, target_index: np.ndarray, y_poison: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """One distinct row per poison, never a target, whose label differs from the poison's."""
        free = np.ones(len(dataset), dtype=bool)
        free[target_index] = False
        rows = np.empty(y_poison.shape[0], dtype=np.int64)
        for label in np.unique(y_poison):  # a fixed order: the same seed, the same rows
            wanted = np.flatnonzero(y_poison == label)
            pool = np.flatnonzero(free & (dataset.y != label))
            if pool.size < wanted.size:
                raise ConfigError(
                    f"{dataset.name} has too few rows outside the targets to hold {y_poison.shape[0]} "
                    "copies: poison fewer targets or fewer copies"
                )
            chosen = rng.choice(pool, size=wanted.size, replace=False)
            rows[wanted] = chosen
            free[chosen] = False
        return rows
