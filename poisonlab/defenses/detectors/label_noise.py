"""Label-noise detectors: find samples whose label disagrees with what the data says."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.validation import positive_int


class KNNLabelDisagreement(Detector):
    """Share of a sample's ``k`` nearest neighbours (cosine) labelled otherwise.

    A flipped label sits among neighbours of its true class, so most of them
    disagree with it. Neighbours are read in the evidence's ``inputs`` when present
    (standardised tabular inputs, which no model fitted to the noisy labels) and
    in the proxy's representations otherwise. The automatic rule flags samples where a clear majority of
    neighbours (more than ``majority``) disagree. Neighbours are found with
    the shared neighbour search (:mod:`poisonlab.defenses.neighbours`: exact
    up to 20,000 samples, an inverted-file index above).

    References
    ----------
    A. Paudice, L. Muñoz-González, E. C. Lupu. "Label Sanitization Against Label
    Flipping Poisoning Attacks." ECML PKDD Workshops, 2018 (k-NN relabelling defence).
    """

    def __init__(self, *, k: int = 10, majority: float = 0.5) -> None:
        self.k = positive_int(k, "k")
        self.majority = majority

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        reps = evidence.representations if evidence.inputs is None else evidence.inputs
        neighbour_labels = dataset.y[evidence.neighbours(reps, "cosine").query(None, self.k)]
        return np.mean(neighbour_labels != dataset.y[:, None], axis=1)

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        return scores > self.majority


class DeepKNN(Detector):
    """Deep k-NN: remove a sample whose label is not the plurality of its neighbours' in feature space.

    For each training sample, the ``k`` nearest neighbours (Euclidean) in the
    model's penultimate-layer features vote; the sample is flagged when the most
    frequent label among them is not its own. Feature-collision and polytope
    poisons sit in feature space among samples of the class they attack while
    keeping their own (base) label, so their neighbours outvote them. The
    defence needs ``k`` larger than the number of poisons around a target; Peri et
    al. find that about twice the poison count works, and ``k=None`` (the default)
    takes twice a 1% budget, ``2·ceil(n/100)``, clipped to 10–100. The score is
    the share of neighbours labelled otherwise.

    References
    ----------
    N. Peri, N. Gupta, W. R. Huang, L. Fowl, C. Zhu, S. Feizi, T. Goldstein, J. P.
    Dickerson. "Deep k-NN Defense against Clean-label Data Poisoning Attacks."
    ECCV Workshops, 2020.
    """

    def __init__(self, *, k: int | None = None) -> None:
        self.k = None if k is None else positive_int(k, "k")

    def neighbours(self, n: int) -> int:
        """The ``k`` used for ``n`` samples."""
        k = self.k if self.k is not None else int(np.clip(2 * -(-n // 100), 10, 100))
        return max(1, min(k, n - 1))

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        k = self.neighbours(len(dataset))
        labels = dataset.y[evidence.neighbours(evidence.representations).query(None, k)]
        counts = np.zeros((len(dataset), max(dataset.n_classes, int(dataset.y.max()) + 1)), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(len(dataset)), k), labels.ravel()), 1)
        # ties go to the sample's own label: flagged only when another label has strictly more votes
        own = counts[np.arange(len(dataset)), dataset.y]
        counts[np.arange(len(dataset)), dataset.y] = -1
        self.outvoted_ = counts.max(axis=1) > own
        return np.mean(labels != dataset.y[:, None], axis=1)

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        return self.outvoted_


class ConfidentLearning(Detector):
    """Confident learning on cross-fitted predicted probabilities (cleanlab).

    Estimates the joint distribution of given and true labels from out-of-sample
    predicted probabilities with per-class confidence thresholds, and flags the
    samples the confident joint says are mislabelled (``prune_by_noise_rate``).
    The score is one minus the probability the out-of-sample model gives the
    sample's own label (self-confidence).

    References
    ----------
    C. G. Northcutt, L. Jiang, I. L. Chuang. "Confident Learning: Estimating
    Uncertainty in Dataset Labels." JAIR 70, 2021.
    """

    needs = ("pred_probs",)

    def __init__(self, *, filter_by: str = "prune_by_noise_rate") -> None:
        self.filter_by = filter_by

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        assert evidence.pred_probs is not None  # guaranteed by `needs`
        return 1.0 - evidence.pred_probs[np.arange(len(dataset)), dataset.y]

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        from cleanlab.filter import find_label_issues

        probs = np.clip(evidence.pred_probs, 1e-8, None)  # type: ignore[arg-type]
        probs = probs / probs.sum(axis=1, keepdims=True)
        return np.asarray(find_label_issues(dataset.y, probs, filter_by=self.filter_by, n_jobs=1), dtype=bool)
