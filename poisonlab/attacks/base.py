"""The attack contract: ``poison(dataset, budget, rng) -> PoisonResult``.

An attack is built from its hyperparameters only (keyword-only). ``poison`` never
mutates its input, poisons at most ``budget`` samples, is deterministic given its
seed, and returns the poisoned copy with the exact boolean mask of the rows it
changed (``True`` = poisoned). Backdoor attacks also return the :class:`Trigger`
that turns a clean test input into a triggered one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError, IncompatibleError

Budget = float | int
Seed = int | np.random.Generator | None


class Trigger(ABC):
    """Maps clean inputs to triggered inputs; pure and vectorised over rows."""

    @abstractmethod
    def apply(self, X: np.ndarray) -> np.ndarray:
        """Return a triggered copy of ``X`` (same shape and dtype)."""


@dataclass(frozen=True, eq=False)
class PoisonResult:
    """A poisoned training set and the exact mask of poisoned rows.

    ``target_class`` is the class index the attacker wants inputs sent to (backdoor
    target, or target of a targeted flip); ``source_class`` is set by attacks that
    aim at one class only. ``subpopulation`` is set by attacks on one group of inputs:
    its ``contains(X)`` says which inputs (test inputs too) belong to the group.
    """

    dataset: Dataset
    poison_mask: np.ndarray
    trigger: Trigger | None = None
    target_class: int | None = None
    source_class: int | None = None
    subpopulation: Any = None
    #: Rows of the input that the attack deleted (a graph attack's removed facts, ``k×3``);
    #: ``poison_mask`` marks what it added or changed in the poisoned copy.
    removed: np.ndarray | None = None

    @property
    def n_poison(self) -> int:
        """Samples the attack changed: added or changed rows, plus deleted ones."""
        return int(self.poison_mask.sum()) + (0 if self.removed is None else len(self.removed))


class Attack(ABC):
    """Base class: subclasses implement :meth:`_poison` and declare what data they accept."""

    # Tags (read by ``ATTACKS`` and :mod:`poisonlab.checks`):
    #: Modalities the attack can poison.
    modalities: ClassVar[tuple[str, ...]] = ("image", "tabular")
    #: Learning tasks the attack applies to.
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    #: The attack plants a :class:`Trigger` and a target class (a backdoor).
    backdoor: ClassVar[bool] = False
    #: The attack leaves every label as it is (clean-label); it may change features only.
    keeps_labels: ClassVar[bool] = False
    #: The attack leaves every feature as it is; it may change labels only.
    keeps_features: ClassVar[bool] = False
    #: The attack trains or differentiates a surrogate model to choose or craft its poisons.
    needs_model: ClassVar[bool] = False
    #: The attack aims at one input outside the training data, given by ``aim(x)``.
    targets_instance: ClassVar[bool] = False
    #: When the attacker acts: ``"training"`` (poisons the data, ``poison``) or
    #: ``"inference"`` (perturbs a trained model's inputs, ``perturb``; see ``evasion``).
    phase: ClassVar[str] = "training"

    def check(self, dataset: Dataset) -> None:
        """Refuse, before any run, parameters that cannot work on ``dataset``.

        The base checks that the classes the attack names (``target``, ``source``)
        exist in the data; attacks whose parameters depend on the data in other ways
        (a patch that must fit the image, a column that must exist) add theirs. The
        runner calls this while it plans a grid, so a bad value fails the config,
        not every run of it.
        """
        if dataset.is_regression:
            return
        for role in ("target", "source"):
            label = getattr(self, role, None)
            if label is not None and not isinstance(label, str):
                class_index(label, dataset, role)

    def poison(self, dataset: Dataset, budget: Budget | None, rng: Seed = None) -> PoisonResult:
        """Poison at most ``budget`` samples of ``dataset`` (a fraction in (0, 1] or a count)."""
        if dataset.task not in self.tasks:
            raise IncompatibleError(
                f"attack {type(self).__name__} poisons {' or '.join(self.tasks)} data; "
                f"{dataset.name} is a {dataset.task} dataset"
            )
        if dataset.modality not in self.modalities:
            raise IncompatibleError(
                f"attack {type(self).__name__} works on {' or '.join(self.modalities)} data, "
                f"not on {dataset.modality} data ({dataset.name})"
            )
        n_poison = resolve_budget(budget, len(dataset))
        result = self._poison(dataset, n_poison, np.random.default_rng(rng))
        if result.n_poison > n_poison:  # a broken attack is a bug, not a user error
            raise RuntimeError(f"{type(self).__name__} poisoned {result.n_poison} > budget {n_poison}")
        return result

    @abstractmethod
    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        """Poison exactly ``n_poison`` rows (or fewer where the attack says why)."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


def resolve_budget(budget: Budget | None, n_samples: int) -> int:
    """Number of samples a budget allows: ``floor(rate * n)`` for a rate, or a count."""
    if isinstance(budget, bool) or not isinstance(budget, int | float | np.integer | np.floating):
        raise ConfigError(f"poison budget must be a rate in (0, 1] or a count, got {budget!r}")
    if isinstance(budget, int | np.integer):
        if not 0 < budget <= n_samples:
            raise ConfigError(f"poison count must lie in 1..{n_samples}, got {budget}")
        return int(budget)
    if not (math.isfinite(budget) and 0.0 < budget <= 1.0):
        raise ConfigError(f"poison rate must lie in (0, 1], got {budget}")
    return math.floor(float(budget) * n_samples + 1e-9)


def choose(pool: np.ndarray, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """``n`` distinct indices drawn from ``pool``, or a clear error when the pool is too small."""
    if n > pool.shape[0]:
        raise ConfigError(f"budget of {n} samples exceeds the {pool.shape[0]} {what}")
    return np.sort(rng.choice(pool, size=n, replace=False))


def mask_of(index: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def class_index(label: int, dataset: Dataset, role: str) -> int:
    """Class index of a label given in the user's label space (``dataset.classes``)."""
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise ConfigError(f"{role} class must be an integer label, got {label!r}")
    if int(label) not in dataset.classes:
        raise ConfigError(
            f"{role} class {label} does not exist in {dataset.name} (labels: {list(dataset.classes)})"
        )
    return dataset.classes.index(int(label))
