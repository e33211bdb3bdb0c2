"""Label-noise detectors: find samples whose label disagrees with what the data says."""

from __future__ import annotations

from typing import Self

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.defenses.neighbours import Metric, label_counts
from poisonlab.errors import ConfigError
from poisonlab.validation import positive_int


class KNNLabelDisagreement(Detector):
    """Share of a sample's ``k`` nearest neighbours (cosine) labelled otherwise.

    A flipped label sits among neighbours of its true class, so most of them
    disagree with it. Neighbours are read in the evidence's ``inputs`` when present
    (standardised tabular inputs, which no model fitted to the noisy labels) and
    in the proxy's representations otherwise, and found with the shared neighbour
    search (:mod:`poisonlab.defenses.neighbours`: exact up to 20,000 samples, an
    inverted-file index above). The score is the share of neighbours labelled
    otherwise (Paudice et al. 2018).

    The automatic rule depends on ``rule``:

    - ``"confident"`` (the default): the neighbours' label shares are read as
      out-of-sample class probabilities (a sample is never its own neighbour,
      add-½ smoothing) and pruned by confident learning (Northcutt et al. 2021,
      ``prune_by_noise_rate``): a sample counts as mislabelled only when its
      neighbours vote for another class at least as strongly as that class's own
      members' neighbours do on average, and no more are flagged per pair of
      classes than that estimate of the noise allows. Where classes overlap in
      the raw features, a boundary sample's neighbourhood is mixed, and so is its
      class's on average: it is not flagged.
    - ``"majority"``: Paudice et al.'s fixed threshold, a share of disagreeing
      neighbours above ``majority``. It flags every sample with a mixed
      neighbourhood, 2–3.5% of clean breast_cancer training splits (seeds 0–2);
      ``auto`` uses it at k = 10 only together with a second witness.

    ``k`` = 20 and the confident rule were chosen on seeds 0–2 of digits,
    breast_cancer, wine and ``mnist`` (0–1), clean and with 10% and 20% uniform
    and class-conditional flips; they flag at most 1.01% of those clean splits
    (0.00–0.06% of digits, wine and ``mnist``), against 3.5% for the majority
    rule, at recall 0.67–1.00 on the flips (majority, on digits and breast_cancer:
    0.88–1.00).

    References
    ----------
    A. Paudice, L. Muñoz-González, E. C. Lupu. "Label Sanitization Against Label
    Flipping Poisoning Attacks." ECML PKDD Workshops, 2018 (k-NN relabelling defence).
    C. G. Northcutt, L. Jiang, I. L. Chuang. "Confident Learning: Estimating
    Uncertainty in Dataset Labels." JAIR 70, 2021.
    """

    def __init__(self, *, k: int = 20, rule: str = "confident", majority: float = 0.5) -> None:
        if rule not in ("confident", "majority"):
            raise ValueError(f"rule must be 'confident' or 'majority', got {rule!r}")
        self.k = positive_int(k, "k")
        self.rule = rule
        self.majority = majority
        self._left_out: np.ndarray | None = None

    def leaving_out(self, rows: np.ndarray) -> Self:
        """Never count ``rows`` (a mask) among anyone's neighbours in the next fits.

        For samples already found to be poisoned by another witness: a relabelled
        sample lies among clean samples of its true class, and its wrong label
        would vote against each of them.
        """
        self._left_out = np.asarray(rows, dtype=bool)
        return self

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        reps = evidence.representations if evidence.inputs is None else evidence.inputs
        search = evidence.neighbours(reps, "cosine")
        n = len(dataset)
        left_out = self._left_out
        if left_out is None or not left_out.any():
            found = search.query(None, self.k)
        else:
            if left_out.shape != (n,):
                raise ValueError(f"rows to leave out cover {left_out.shape[0]} samples, dataset has {n}")
            found = search.query(np.arange(n), self.k + 1, exclude=np.flatnonzero(left_out))
            # a sample still in the pool finds itself (nearest, unless a duplicate ties):
            # its own column goes, else the farthest one
            own = found == np.arange(n)[:, None]
            drop = np.where(own.any(axis=1), own.argmax(axis=1), found.shape[1] - 1)
            keep = np.ones_like(found, dtype=bool)
            keep[np.arange(n), drop] = False
            found = found[keep].reshape(n, found.shape[1] - 1)
        self.neighbour_labels_ = dataset.y[found]
        return np.mean(self.neighbour_labels_ != dataset.y[:, None], axis=1)

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        if self.rule == "majority":
            return scores > self.majority
        from cleanlab.filter import find_label_issues

        n_classes = _n_classes(dataset)
        votes = label_counts(self.neighbour_labels_, n_classes)
        probs = (votes + 0.5) / (self.neighbour_labels_.shape[1] + 0.5 * n_classes)
        flags = find_label_issues(dataset.y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
        return np.asarray(flags, dtype=bool)


class DeepKNN(Detector):
    """Deep k-NN: remove a sample whose label is not the plurality of its neighbours' in feature space.

    For each training sample, the ``k`` nearest neighbours in the model's
    penultimate-layer features vote; the sample is flagged when the most
    frequent label among them is not its own. Feature-collision and polytope
    poisons sit in feature space among samples of the class they attack while
    keeping their own (base) label, so their neighbours outvote them. The
    defence needs ``k`` larger than the number of poisons around a target; Peri et
    al. find that about twice the poison count works, and ``k=None`` (the default)
    takes twice a 1% budget, ``2·ceil(n/100)``, clipped to 10–100. The score is
    the share of neighbours labelled otherwise.

    ``metric="cosine"`` (the default) compares the features' directions: after ReLU
    a feature vector's length says mostly how strongly the network responds, and
    Euclidean neighbourhoods of weakly answered samples mix the classes. Chosen on
    development data: on six feature-collision trials against a ``mnist`` CNN (35
    poisons, k = 70) cosine removed 85% of the poisons and 1.8% of clean rows,
    Euclidean distance (the paper's) 80% and 2.7%; on clean ``mnist`` in the scan
    proxy's features (seeds 0-2) 1.6-2.1% against 2.4-2.6%, on digits 0.7-1.0%
    against 0.6-0.8%.

    References
    ----------
    N. Peri, N. Gupta, W. R. Huang, L. Fowl, C. Zhu, S. Feizi, T. Goldstein, J. P.
    Dickerson. "Deep k-NN Defense against Clean-label Data Poisoning Attacks."
    ECCV Workshops, 2020.
    """

    def __init__(self, *, k: int | None = None, metric: Metric = "cosine") -> None:
        self.k = None if k is None else positive_int(k, "k")
        if metric not in ("cosine", "euclidean"):
            raise ConfigError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        self.metric = metric

    def neighbours(self, n: int) -> int:
        """The ``k`` used for ``n`` samples."""
        k = self.k if self.k is not None else int(np.clip(2 * -(-n // 100), 10, 100))
        return max(1, min(k, n - 1))

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        k = self.neighbours(len(dataset))
        labels = dataset.y[evidence.neighbours(evidence.representations, self.metric).query(None, k)]
        counts = label_counts(labels, _n_classes(dataset))
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


def _n_classes(dataset: Dataset) -> int:
    """Classes a vote can name: the data's, or more if a label lies beyond them."""
    return max(dataset.n_classes, int(dataset.y.max()) + 1)
