"""Defenses applied to the (possibly poisoned) training set before the model is trained.

Contract: ``apply(train, rng) -> DefenseResult`` with the dataset to train on and the
mask of training rows the defense removed (``True`` = removed). Every detector is
also a defense of the same name: flag, drop what it flags, and train on the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors import DETECTORS
from poisonlab.errors import DataError
from poisonlab.registry import Registry


@dataclass(frozen=True, eq=False)
class DefenseResult:
    """The training set to use, the rows removed, and the detector scores behind the removal."""

    dataset: Dataset
    removed_mask: np.ndarray
    scores: np.ndarray | None = None


class Defense(Protocol):
    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult: ...


class NoDefense:
    """Train on the data as it is."""

    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult:
        return DefenseResult(train, np.zeros(len(train), dtype=bool))


class DetectAndDrop:
    """Scan the training set with a detector, drop what it flags, train on the rest."""

    def __init__(self, detector: str, *, contamination: float | None = None, **params: Any) -> None:
        self.detector = detector
        self.contamination = contamination
        self.params = params
        DETECTORS.create(detector, **params)  # fail fast on bad parameters

    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult:
        from poisonlab.defenses.scan import scan

        if train.is_regression:
            raise DataError(
                f"defense {self.detector} is for classification data; for {train.name} (regression) "
                "use trim, ransac, huber or residual"
            )
        seed = int(rng.integers(2**31 - 1))
        report = scan(train, detector=self.detector, contamination=self.contamination, random_state=seed)
        keep = ~report.flags
        if np.unique(train.y[keep]).size < 2:
            raise DataError(f"{self.detector} flagged all but one class; nothing left to train on")
        return DefenseResult(train.subset(np.flatnonzero(keep)), report.flags, report.scores)


DEFENSES: Registry[Defense] = Registry("defense")
DEFENSES.add("none", NoDefense, "No defense: train on the data as it is")


def _detect_and_drop(name: str) -> Callable[..., Defense]:
    def factory(*, contamination: float | None = None, **params: Any) -> Defense:
        return DetectAndDrop(name, contamination=contamination, **params)

    return factory


for _entry in DETECTORS:
    DEFENSES.add(_entry.name, _detect_and_drop(_entry.name), f"Drop what '{_entry.name}' flags, then train")


def _robust_regression(method: str, doc: str) -> Callable[..., Defense]:
    from poisonlab.defenses.regression import RobustRegressionDefense

    def factory(**params: Any) -> Defense:
        return RobustRegressionDefense(method, **params)

    factory.__name__ = method
    factory.__doc__ = doc
    return factory


def _trim(*, poison_rate: float | str = "auto", n_init: int = 10) -> Defense:
    from poisonlab.defenses.regression import RobustRegressionDefense

    return RobustRegressionDefense("trim", poison_rate=poison_rate, n_init=n_init)


DEFENSES.add("trim", _trim, "Regression: TRIM (Jagielski et al. 2018), poison rate given or 'auto'")
DEFENSES.add(
    "ransac", _robust_regression("ransac", "RANSAC"), "Regression: keep RANSAC's inliers (scikit-learn)"
)
DEFENSES.add("huber", _robust_regression("huber", "Huber"), "Regression: drop Huber regression's outliers")
DEFENSES.add(
    "residual",
    _robust_regression("residual", "residual"),
    "Regression: drop rows whose residual's robust z-score exceeds 3.5, refit",
)

#: Defenses for regression data; every other defense (but ``none``) is for classification.
REGRESSION_DEFENSES = frozenset({"trim", "ransac", "huber", "residual"})

__all__ = [
    "DEFENSES",
    "DETECTORS",
    "REGRESSION_DEFENSES",
    "Defense",
    "DefenseResult",
    "DetectAndDrop",
    "NoDefense",
]
