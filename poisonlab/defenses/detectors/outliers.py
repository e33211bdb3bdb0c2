"""Generic outlier detectors on representations, fitted per labelled class (scikit-learn)."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence


class _PerClassOutliers(Detector):
    """Base: one outlier model per labelled class, each scoring on its own class's scale."""

    class_scores = True

    def _fit_class(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        scores = np.zeros(len(dataset))
        for c in np.unique(dataset.y):
            idx = np.flatnonzero(dataset.y == c)
            if idx.size >= 5:
                scores[idx] = self._fit_class(evidence.representations[idx])
        return scores


class IsolationForestDetector(_PerClassOutliers):
    """Isolation Forest per class: poisons that are easy to isolate score high.

    References
    ----------
    F. T. Liu, K. M. Ting, Z.-H. Zhou. "Isolation Forest." ICDM 2008.
    """

    def __init__(self, *, n_estimators: int = 100, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _fit_class(self, Z: np.ndarray) -> np.ndarray:
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state).fit(Z)
        return -forest.score_samples(Z)


class LocalOutlierFactorDetector(_PerClassOutliers):
    """Local Outlier Factor per class: samples in sparser regions than their neighbours score high.

    References
    ----------
    M. M. Breunig, H.-P. Kriegel, R. T. Ng, J. Sander. "LOF: Identifying
    Density-Based Local Outliers." SIGMOD 2000.
    """

    def __init__(self, *, n_neighbors: int = 20) -> None:
        self.n_neighbors = n_neighbors

    def _fit_class(self, Z: np.ndarray) -> np.ndarray:
        from sklearn.neighbors import LocalOutlierFactor

        lof = LocalOutlierFactor(n_neighbors=min(self.n_neighbors, Z.shape[0] - 1)).fit(Z)
        return -lof.negative_outlier_factor_
