"""The contract of a defense that acts on training itself, not on the data before it.

A training defense gets the (possibly poisoned) training set and a way to build the
user's model, and returns a trained model::

    trained = defense.train(train, make_model, rng)   # -> TrainedModel
    trained.model.predict(X_test)

``make_model(seed)`` returns a fresh, unfitted model of the run (any registered
model, torch or scikit-learn). A defense that builds several base models (partition
or bagging ensembles) calls it once per base model; one that changes the training
loop (DP-SGD, Anti-Backdoor Learning) needs a torch model and says so with the tag
``needs_torch``. A certifying defense's model also has ``certify(X) -> Certificate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError

__all__ = ["Certificate", "MakeModel", "TrainedModel", "TrainingDefense", "certified_accuracy", "torch_model"]

#: Builds a fresh, unfitted model of the run from a seed.
MakeModel = Callable[[int], Any]


@dataclass(frozen=True, eq=False)
class Certificate:
    """Per-input predictions and certified radii of a certified model.

    ``radius[i] = r`` means that no change of at most ``r`` training samples (in the
    unit the certifier states: insertions, deletions, relabellings) changes
    ``prediction[i]``; ``-1`` means nothing is certified (a tie the tie-break loses,
    or a bound that does not hold even for zero changes).
    """

    prediction: np.ndarray
    radius: np.ndarray
    #: what one unit of the radius is, in words (for the user and the README)
    unit: str = "training samples inserted, deleted or relabelled"
    #: for a probabilistic certificate, the probability that it holds (1.0 if deterministic)
    confidence: float = 1.0
    #: units of radius one training sample with changed features costs (2 where it moves
    #: to another partition: a deletion and an insertion)
    feature_change_cost: int = 1

    def changes_of(self, n_relabelled: int, n_features_changed: int, n_added: int = 0) -> int:
        """The radius a poisoning needs: its changed training samples counted in this certificate's unit."""
        return n_relabelled + self.feature_change_cost * n_features_changed + n_added


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """What a training defense returns: the trained model and what the defense learned on the way.

    ``removed_mask`` marks training rows the defense set apart (Anti-Backdoor
    Learning's isolated rows), ``None`` for defenses that set none apart;
    ``extras`` holds figures for the run record, such as ``dp_epsilon``.
    """

    model: Any
    removed_mask: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class TrainingDefense(Protocol):
    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel: ...


def torch_model(model: Any, defense: str) -> Any:
    """``model`` if it is a poisonlab torch model; else one line naming the models that work."""
    if not hasattr(model, "train_epoch"):
        from poisonlab.models import MODELS

        works = ", ".join(e.name for e in MODELS.where(torch=True))
        raise ConfigError(f"{defense} trains a torch model; {type(model).__name__} is not one (use {works})")
    return model


def certified_accuracy(y_true: np.ndarray, certificate: Certificate, radii: np.ndarray) -> np.ndarray:
    """Share of inputs predicted correctly with a certified radius ≥ r, for each r in ``radii``."""
    y_true = np.asarray(y_true)
    correct = certificate.prediction == y_true
    radius = np.asarray(certificate.radius)
    return np.array([float(np.mean(correct & (radius >= r))) for r in np.asarray(radii)])
