"""Defenses applied to the (possibly poisoned) training set before the model is trained.

Contract: ``apply(train, rng) -> DefenseResult`` with the dataset to train on and the
mask of training rows the defense removed (``True`` = removed). Only ``none`` exists
until the detectors land; the runner already routes every run through this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.registry import Registry


@dataclass(frozen=True, eq=False)
class DefenseResult:
    dataset: Dataset
    removed_mask: np.ndarray


class Defense(Protocol):
    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult: ...


class NoDefense:
    """Train on the data as it is."""

    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult:
        return DefenseResult(train, np.zeros(len(train), dtype=bool))


DEFENSES: Registry[Defense] = Registry("defense")
DEFENSES.add("none", NoDefense, "No defense: train on the data as it is")

__all__ = ["DEFENSES", "Defense", "DefenseResult", "NoDefense"]
