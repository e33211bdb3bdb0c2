"""Loss-based detection: backdoor poisons are learned unusually fast (Anti-Backdoor Learning)."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence


class EarlyLossDetector(Detector):
    """ABL's isolation: the samples whose training loss falls fastest in the first epochs.

    Li et al. (2021) observe that backdoor samples reach a low loss much faster than
    clean ones, because the trigger is an easy shortcut, and isolate the samples with
    the *lowest* loss after a few epochs. The score is one-sided: the robust z-score
    (median/MAD within the labelled class) of how far below its class's median a
    sample's mean log-loss over the first ``epochs`` epochs lies; a sample learned
    slower than its class (a flipped label) scores 0. The automatic rule flags a
    score above 3.5 (Iglewicz and Hoaglin), where ABL isolates a fixed share (1% by
    default in its code): :func:`~poisonlab.defenses.detectors.base.flag_top` with
    ``contamination`` does that. ABL's local gradient ascent, which widens the gap
    while it trains, needs control of the training loop and is not part of a
    detector that reads recorded losses.

    References
    ----------
    Y. Li, X. Lyu, N. Koren, L. Lyu, B. Li, X. Ma. "Anti-Backdoor Learning: Training
    Clean Models on Poisoned Data." NeurIPS 2021.
    """

    needs = ("losses",)

    def __init__(self, *, epochs: int = 5) -> None:
        self.epochs = epochs

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        assert evidence.losses is not None  # guaranteed by `needs`
        early = np.log(evidence.losses[:, : self.epochs] + 1e-8).mean(axis=1)
        scores = np.zeros(len(dataset))
        for c in np.unique(dataset.y):
            idx = np.flatnonzero(dataset.y == c)
            median = np.median(early[idx])
            mad = np.median(np.abs(early[idx] - median)) or 1e-12
            scores[idx] = np.maximum(0.0, 0.6745 * (median - early[idx]) / mad)
        return scores

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        return scores > 3.5
