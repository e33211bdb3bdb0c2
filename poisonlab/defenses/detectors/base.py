"""The detector contract and the threshold rules that turn scores into flags.

A detector is fitted on a dataset plus :class:`Evidence` (arrays computed from a
model, never the model itself) and gives one suspicion score per sample, higher =
more suspicious. Turning scores into a flag mask is a separate step: a fixed
contamination fraction, or the detector's own automatic rule, which needs no
knowledge of the poison rate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Self, cast

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.errors import DataError, IncompatibleError

if TYPE_CHECKING:
    from poisonlab.defenses.neighbours import Metric, NeighbourSearch


@dataclass(frozen=True, eq=False)
class Evidence:
    """Model outputs detectors consume, one row per sample of the scanned dataset.

    ``representations``: penultimate-layer activations (or user embeddings), N×h.
    ``early_representations``: activations of an earlier layer (the CNN's pooled
    convolution features), where input triggers are still separate features.
    ``pred_probs``: out-of-sample predicted class probabilities (cross-fitted), N×K.
    ``losses``: per-sample training loss after each early epoch, N×E.
    ``inputs``: standardised model inputs for tabular data, N×d: a space that no
    model fitted to the (possibly poisoned) labels, where neighbours are read.
    ``view``: the label-free view in which group votes are taken, N×v: ``inputs``
    for tabular data, the top principal components of the raw pixels for images.
    """

    representations: np.ndarray
    early_representations: np.ndarray | None = None
    pred_probs: np.ndarray | None = None
    losses: np.ndarray | None = None
    inputs: np.ndarray | None = None
    view: np.ndarray | None = None
    #: neighbour searches built so far, by (space, metric): each space is indexed once per scan
    _searches: dict[tuple[int, str], NeighbourSearch] = field(default_factory=dict, init=False, repr=False)

    def label_free(self) -> np.ndarray:
        """The space where neighbours are read without trusting any model fitted to the labels.

        ``view`` when present, else ``inputs``, else the representations (the user's
        own features).
        """
        for space in (self.view, self.inputs):
            if space is not None:
                return space
        return self.representations

    def neighbours(self, space: np.ndarray, metric: Metric = "euclidean") -> NeighbourSearch:
        """The neighbour search over ``space`` (one of this evidence's arrays), built on first use."""
        from poisonlab.defenses.neighbours import NeighbourSearch

        key = (id(space), metric)
        found = self._searches.get(key)
        if found is None or found.source is not space:
            found = self._searches[key] = NeighbourSearch(space, metric=metric)
        return found

    def subset(self, index: np.ndarray) -> Evidence:
        """The evidence of the rows selected by an index or boolean mask."""

        def rows(value: np.ndarray | None) -> np.ndarray | None:
            return None if value is None else value[index]

        return Evidence(
            representations=self.representations[index],
            early_representations=rows(self.early_representations),
            pred_probs=rows(self.pred_probs),
            losses=rows(self.losses),
            inputs=rows(self.inputs),
            view=rows(self.view),
        )


class Detector(ABC):
    """Base class: ``fit`` → ``score_samples`` → ``auto_flags`` / :func:`flag_top`.

    Classification data come with :class:`Evidence` from a proxy model; regression
    detectors read the data itself and take ``evidence=None``.
    """

    # Tags (read by ``DETECTORS`` and :mod:`poisonlab.checks`):
    #: Learning tasks whose training sets the detector scans.
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    #: Evidence fields the detector reads besides ``representations`` (classification data).
    needs: ClassVar[tuple[str, ...]] = ()
    #: Smallest class (or dataset) size the detector can work with.
    min_samples: ClassVar[int] = 10
    #: The detector judges whole sources and needs a ``source`` column.
    needs_sources: ClassVar[bool] = False
    #: Scores are computed class by class on each class's own scale (a projection, a
    #: cluster distance), so a fixed ``contamination`` ranks them after
    #: :func:`calibrate_by_class`, not as they are.
    class_scores: ClassVar[bool] = False

    def fit(self, dataset: Dataset, evidence: Evidence | None = None) -> Self:
        n = len(dataset)
        if dataset.task not in self.tasks:
            raise IncompatibleError(
                f"{type(self).__name__} scans {' or '.join(self.tasks)} data; "
                f"{dataset.name} is a {dataset.task} dataset"
            )
        if dataset.is_regression:
            evidence = None  # robust fits read X and y
        elif evidence is None:
            raise DataError(f"{type(self).__name__} needs evidence (representations) for classification data")
        else:
            if evidence.representations.shape[0] != n:
                raise DataError(
                    f"representations have {evidence.representations.shape[0]} rows, dataset has {n}"
                )
            for name in ("early_representations", "inputs", "view"):
                value = getattr(evidence, name)
                if value is not None and value.shape[0] != n:
                    raise DataError(f"{name.replace('_', ' ')} have {value.shape[0]} rows, dataset has {n}")
            for name in self.needs:
                value = getattr(evidence, name)
                if value is None or value.shape[0] != n:
                    raise DataError(f"{type(self).__name__} needs {name} for every sample")
        if n < self.min_samples:
            raise DataError(f"{type(self).__name__} needs at least {self.min_samples} samples, got {n}")
        # evidence is None only for regression data, whose detectors do not read it
        seen = cast(Evidence, evidence)
        self.scores_ = np.asarray(self._score(dataset, seen), dtype=np.float64)
        self.flags_ = np.asarray(self._auto_flags(dataset, seen, self.scores_), dtype=bool)
        return self

    def score_samples(self) -> np.ndarray:
        """Suspicion score of every fitted sample; higher = more suspicious."""
        return self.scores_

    def auto_flags(self) -> np.ndarray:
        """Flags chosen by the detector's own rule, without knowing the poison rate."""
        return self.flags_

    @abstractmethod
    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray: ...

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        return flag_outlying(scores)


def flag_top(scores: np.ndarray, contamination: float) -> np.ndarray:
    """Flag the ``floor(contamination × n)`` highest scores."""
    if not 0.0 < contamination < 1.0:
        raise DataError(f"contamination must lie in (0, 1), got {contamination}")
    n_flag = int(np.floor(contamination * scores.shape[0] + 1e-9))
    mask = np.zeros(scores.shape[0], dtype=bool)
    if n_flag:
        mask[np.argsort(-scores, kind="stable")[:n_flag]] = True
    return mask


def calibrate_by_class(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Scores as robust z-scores within each class: ``(s − median_c) / (1.4826 · MAD_c)``.

    Per-class scores live on per-class scales (a bimodal clean class has a wide
    spread); ranking them globally flags that class's tail instead of the class the
    poisons sit in. On a common scale the share of the highest scores can still
    concentrate in one class, as a backdoor's poisons do.
    """
    calibrated = np.zeros(scores.shape[0])
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        median = np.median(scores[idx])
        mad = 1.4826 * np.median(np.abs(scores[idx] - median))
        if mad == 0:
            mad = np.mean(np.abs(scores[idx] - median)) or 1.0
        calibrated[idx] = (scores[idx] - median) / mad
    return calibrated


def flag_outlying(scores: np.ndarray, *, z: float = 3.5) -> np.ndarray:
    """Flag scores far above the bulk: robust z-score (median/MAD) above ``z``.

    The 3.5 cut-off on the modified z-score is Iglewicz and Hoaglin's rule for
    outliers; it needs no poison rate and flags nothing on a tight, clean bulk.
    """
    median = np.median(scores)
    mad = np.median(np.abs(scores - median))
    if mad == 0:
        mad = np.mean(np.abs(scores - median)) or 1.0
    return 0.6745 * (scores - median) / mad > z
