"""Defenses: on the training set before the model is trained, or on the training itself.

Two contracts, told apart by the tag ``stage``:

- ``"data"``: ``apply(train, rng) -> DefenseResult`` with the dataset to train on and
  the mask of training rows the defense removed (``True`` = removed). Every detector
  is also a defense of the same name: flag, drop what it flags, and train on the rest.
- ``"training"``: ``train(train, make_model, rng) -> TrainedModel`` (see
  :mod:`poisonlab.defenses.training`): robust or certified training of the run's
  model. ``needs_torch`` marks those that change a torch model's training loop;
  ``certifies`` those whose model also returns certified radii.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors import DETECTORS
from poisonlab.defenses.training import (
    AntiBackdoorLearning,
    BaggingDefense,
    DPADefense,
    SynthesisedPoisons,
    TrainedModel,
    TrainingDefense,
)
from poisonlab.defenses.training.dp import DPSGD
from poisonlab.defenses.training.finite_aggregation import FiniteAggregationDefense
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
    """Scan the training set with a detector, drop what it flags, train on the rest.

    One defense for every detector and both tasks: classification data are scanned
    on a proxy model's evidence, regression data by robust linear fits.
    """

    def __init__(self, detector: str, *, contamination: float | None = None, **params: Any) -> None:
        self.detector = detector
        self.contamination = contamination
        self.params = params
        DETECTORS.create(detector, **params)  # fail fast on bad parameters

    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult:
        from poisonlab.defenses.scan import scan

        seed = int(rng.integers(2**31 - 1))
        report = scan(
            train,
            detector=self.detector,
            contamination=self.contamination,
            random_state=seed,
            params=self.params,
        )
        keep = ~report.flags
        if not train.is_regression and np.unique(train.y[keep]).size < 2:
            raise DataError(f"{self.detector} flagged all but one class; nothing left to train on")
        return DefenseResult(train.subset(np.flatnonzero(keep)), report.flags, report.scores)


#: ``tasks``: the data the defense applies to. ``stage``: ``"data"`` (``apply``) or
#: ``"training"`` (``train``). ``needs_torch``: trains a torch model's loop itself.
#: ``certifies``: its model returns certified radii (``certify``).
DEFENSES: Registry[Any] = Registry(
    "defense",
    tags={
        "tasks": ("classification", "regression"),
        "stage": "data",
        "needs_torch": False,
        "certifies": False,
    },
)
DEFENSES.add("none", NoDefense, "No defense: train on the data as it is")


def _detect_and_drop(name: str) -> Callable[..., Defense]:
    def factory(*, contamination: float | None = None, **params: Any) -> Defense:
        return DetectAndDrop(name, contamination=contamination, **params)

    # the defense takes its detector's parameters, and says so to `list` and to checks
    detector = inspect.signature(DETECTORS.get(name).factory).parameters.values()
    contamination = inspect.Parameter("contamination", inspect.Parameter.KEYWORD_ONLY, default=None)
    params = [contamination, *(p for p in detector if p.name != "random_state")]
    factory.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    factory.__name__ = name
    return factory


for _entry in DETECTORS:
    if not set(_entry.tag("tasks")) & {"classification", "regression"}:
        continue  # a knowledge-graph detector scans facts; no training run of a grid trains on those
    DEFENSES.add(
        _entry.name,
        _detect_and_drop(_entry.name),
        f"Drop what detector '{_entry.name}' flags, then train",
        tasks=_entry.tag("tasks"),
    )

_TRAINING = {"tasks": ("classification",), "stage": "training"}
DEFENSES.add(
    "dpa",
    DPADefense,
    "Deep Partition Aggregation: k models on hashed partitions, certified radius (Levine & Feizi 2021)",
    certifies=True,
    **_TRAINING,
)
DEFENSES.add(
    "finite_aggregation",
    FiniteAggregationDefense,
    "Finite Aggregation: k·d models on d hashed buckets each, a tighter certificate (Wang et al. 2022)",
    certifies=True,
    **_TRAINING,
)
DEFENSES.add(
    "bagging",
    BaggingDefense,
    "Bagging with a probabilistic certified radius (Jia, Cao & Gong 2021)",
    certifies=True,
    **_TRAINING,
)
DEFENSES.add(
    "dp_sgd",
    DPSGD,
    "Differentially private training, DP-SGD through Opacus; records the ε spent (Abadi et al. 2016)",
    needs_torch=True,
    **_TRAINING,
)
DEFENSES.add(
    "abl",
    AntiBackdoorLearning,
    "Anti-Backdoor Learning: isolate the lowest-loss samples, then unlearn them (Li et al. 2021)",
    needs_torch=True,
    **_TRAINING,
)
DEFENSES.add(
    "synthesised_poisons",
    SynthesisedPoisons,
    "Train with extra, correctly labelled copies carrying random triggers",
    **_TRAINING,
)

__all__ = [
    "DEFENSES",
    "DETECTORS",
    "Defense",
    "DefenseResult",
    "DetectAndDrop",
    "NoDefense",
    "TrainedModel",
    "TrainingDefense",
]
