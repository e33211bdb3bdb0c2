"""The clean baseline: an attack that poisons nothing."""

from __future__ import annotations

import numpy as np

from poisonlab.attacks.base import Attack, Budget, PoisonResult, Seed
from poisonlab.data.dataset import Dataset


class NoAttack(Attack):
    """Returns the training set unchanged; every experiment grid measures against it."""

    tasks = ("classification", "regression")
    keeps_labels = True
    keeps_features = True

    def poison(self, dataset: Dataset, budget: Budget | None = None, rng: Seed = None) -> PoisonResult:
        return PoisonResult(dataset, np.zeros(len(dataset), dtype=bool))

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        return self.poison(dataset)
