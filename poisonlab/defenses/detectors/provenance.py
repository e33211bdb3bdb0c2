"""Provenance-based detection: judge whole sources by what they do to held-out performance."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.errors import DataError


class ProvenanceDetector(Detector):
    """Flag sources whose data makes a model worse on everyone else's held-out data.

    Baracaldo et al. (2017) group training data by provenance and, for each group,
    compare a model trained with it against one trained without it on held-out
    data; a group whose removal improves performance is flagged as a whole. Here
    the model is a logistic regression in the label-free view (the standardised
    inputs of tabular data, the principal components of an image's pixels, the
    user's features when given), evaluation data are
    held-out rows of the *other* sources (cross-fitted over ``n_folds``), and a
    source is flagged when removing it raises held-out accuracy by more than
    ``min_gain`` and by more than two standard errors. Every row's score is its
    source's gain; rows are selected by index.

    Not on the proxy's representations: the proxy was trained on the labels being
    judged, and an MLP memorises a source's flipped labels, so its features carry
    them. On breast_cancer in four sources, one with every label flipped, removing
    that source raised held-out accuracy by 1.8 points (short of two standard
    errors) in the proxy's penultimate features and by 7.5 in the inputs.

    References
    ----------
    N. Baracaldo, B. Chen, H. Ludwig, J. A. Safavi. "Mitigating Poisoning Attacks on
    Machine Learning Models: A Data Provenance Based Approach." AISec 2017.
    """

    def __init__(self, *, n_folds: int = 3, min_gain: float = 0.01, random_state: int = 0) -> None:
        self.n_folds = n_folds
        self.min_gain = min_gain
        self.random_state = random_state

    needs_sources = True

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import KFold
        from sklearn.preprocessing import StandardScaler

        if dataset.source is None:
            raise DataError(f"{dataset.name}: the provenance detector needs a per-sample source")
        sources, source_idx = np.unique(dataset.source, return_inverse=True)
        if sources.size < 2:
            raise DataError(f"{dataset.name}: the provenance detector needs at least two sources")
        Z = StandardScaler().fit_transform(evidence.label_free())
        rows = np.arange(len(dataset))
        folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
        gains = np.zeros((sources.size, self.n_folds))
        for f, (train, held) in enumerate(folds.split(rows)):
            with_all = LogisticRegression(max_iter=1000).fit(Z[train], dataset.y[train])
            for s in range(sources.size):
                keep = train[source_idx[train] != s]
                judge = held[source_idx[held] != s]
                if judge.size == 0 or np.unique(dataset.y[keep]).size < 2:
                    continue
                without = LogisticRegression(max_iter=1000).fit(Z[keep], dataset.y[keep])
                gains[s, f] = np.mean(without.predict(Z[judge]) == dataset.y[judge]) - np.mean(
                    with_all.predict(Z[judge]) == dataset.y[judge]
                )
        mean = gains.mean(axis=1)
        stderr = gains.std(axis=1, ddof=1) / np.sqrt(self.n_folds) if self.n_folds > 1 else 0.0
        self.source_gain_ = dict(zip(sources.tolist(), mean.tolist(), strict=True))
        self.flagged_sources_ = [
            str(s)
            for s, m, e in zip(sources, mean, np.broadcast_to(stderr, mean.shape), strict=True)
            if m > self.min_gain and m > 2 * e
        ]
        return mean[source_idx]

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        assert dataset.source is not None
        return np.isin(dataset.source, self.flagged_sources_)
