"""Loss-based detection: poisons are learned unusually fast (backdoors) or slowly (flipped labels)."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence


class EarlyLossDetector(Detector):
    """Per-sample training loss over the first epochs, compared within each labelled class.

    Li et al. (2021) observe that backdoor samples reach a low loss much faster than
    clean ones, because the trigger is an easy shortcut; mislabelled samples, the
    opposite, keep a high loss until memorised. The score is the absolute robust
    z-score (median/MAD within the class) of the mean loss over the first
    ``epochs`` epochs, so both directions are suspicious.

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
            scores[idx] = np.abs(0.6745 * (early[idx] - median) / mad)
        return scores
