"""Spectral detectors: poisons that share a feature leave a strong direction in their class.

Both score each sample by its projection on the top singular direction of its
labelled class, after centring (spectral signatures) or robust whitening (SPECTRE).
Given ``epsilon``, an upper bound on the poisons' share of their class, both apply
their papers' rule: remove the ``1.5·ε`` highest-scoring share of every class.
Without it they flag, per class, the side of a bimodal projection only when its
split is wider than any clean class's measured on the development sets.

Why so strict without ε (measured on development sets, the scan's own proxies:
digits and breast_cancer seeds 0–2, ``mnist`` seed 0; BadNets, one-pixel and blend
backdoors at 1–10%, a tabular trigger at 5–10%): the split of the poisoned class
was never wider than the widest split of a clean class (spectral: clean classes
up to 5.8 pooled standard deviations, poisoned 2.6–4.1 on digits; SPECTRE: clean
up to 23.8 on ``mnist``). A looser cut flagged 1–12% of clean sets and found no
more poisons, so it is not the default.
"""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.errors import ConfigError
from poisonlab.validation import positive_int


def _top_direction(M: np.ndarray) -> np.ndarray:
    # The top right singular vector of the (n × h) matrix, via the h × h Gram matrix.
    _, _, vt = np.linalg.svd(M, full_matrices=False)
    return vt[0]


class SpectralSignature(Detector):
    """Spectral signatures: squared projection on the top singular vector of centred class features.

    For each labelled class, the representations are centred on the class mean, the
    top right singular vector ``v`` of the centred matrix is found, and each sample's
    score is ``((r_i − μ) · v)²``. Centring matters: without it the top direction is
    the class mean itself and poisons shifted one way are missed.

    Flags: given ``epsilon``, an upper bound on the poisons' share of the class they
    sit in, the paper's rule removes the ``1.5·ε`` highest-scoring share of every
    class (Tran et al., Algorithm 1);
    it flags that share of clean classes too, by design. Without it the automatic
    rule flags, per class, the side of a bimodal projection split by at least
    ``min_separation`` pooled standard deviations (see the module docstring for
    why the default is strict; ``scan --contamination`` ranks by the scores instead).

    Parameters
    ----------
    epsilon : float in (0, 1/1.5), optional
        Upper bound on the poisons' share of their class; ``None`` uses the split rule.
    min_separation : float
        The split rule's gap, in pooled standard deviations (wider than every clean
        class of the development sets).

    References
    ----------
    B. Tran, J. Li, A. Madry. "Spectral Signatures in Backdoor Attacks." NeurIPS 2018.
    """

    class_scores = True

    def __init__(self, *, epsilon: float | None = None, min_separation: float = 7.0) -> None:
        self.epsilon = _checked_epsilon("spectral", epsilon)
        self.min_separation = min_separation

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        reps = evidence.representations.astype(np.float64)
        scores = np.zeros(len(dataset))
        self.projections_ = np.zeros(len(dataset))
        for c in np.unique(dataset.y):
            idx = np.flatnonzero(dataset.y == c)
            if idx.size < 3:
                continue
            M = reps[idx] - reps[idx].mean(axis=0)
            proj = M @ _top_direction(M)
            self.projections_[idx] = proj
            scores[idx] = proj**2
        return scores

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        if self.epsilon is None:
            return split_flags(dataset.y, self.projections_, min_separation=self.min_separation)
        return remove_top_share(dataset.y, scores, 1.5 * self.epsilon)


def _checked_epsilon(name: str, epsilon: object) -> float | None:
    if epsilon is not None and not (
        isinstance(epsilon, int | float) and not isinstance(epsilon, bool) and 0 < 1.5 * epsilon < 1
    ):
        raise ConfigError(f"{name}: epsilon must lie in (0, {1 / 1.5:.3f}) or be None, got {epsilon!r}")
    return None if epsilon is None else float(epsilon)


def remove_top_share(labels: np.ndarray, scores: np.ndarray, share: float) -> np.ndarray:
    """Per class, flag the ``floor(share × n_c)`` highest scores (the papers' ``1.5·ε`` removal)."""
    flags = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_flag = int(np.floor(share * idx.size + 1e-9))
        flags[idx[np.argsort(-scores[idx], kind="stable")[:n_flag]]] = True
    return flags


class Spectre(Detector):
    """SPECTRE-style robust spectral detector: robust whitening, then a QUE score.

    Per labelled class the representations are reduced to ``n_components`` by PCA,
    a robust mean and covariance are estimated (minimum covariance determinant), the
    data are whitened with them, and each sample gets the quantum-entropy score
    ``w_iᵀ Q w_i`` with ``Q = exp(α (Σ_w − I) / (‖Σ_w‖₂ − 1))`` normalised to unit trace,
    where ``Σ_w`` is the whitened sample covariance. Whitening with robust statistics
    makes the poisons' direction stand out even when the clean class has its own
    large directions of variance. The robust covariance is scikit-learn's minimum
    covariance determinant, where the paper filters outliers iteratively; both
    estimate the clean bulk's covariance with a share of the class held out.

    Flags: given ``epsilon``, the paper's rule removes the ``1.5·ε`` highest QUE
    scores of every class; without it, the split rule of
    :class:`SpectralSignature` on the whitened top direction, with a gap of at
    least ``min_separation`` (wider than the widest clean split measured: see the
    module docstring).

    Parameters
    ----------
    n_components : int
        PCA dimensions kept per class before robust whitening.
    alpha : float
        The QUE score's exponent (the paper uses 4).
    epsilon : float in (0, 1/1.5), optional
        Upper bound on the poisons' share of their class; ``None`` uses the split rule.
    min_separation : float
        The split rule's gap, in pooled standard deviations.
    random_state : int
        Seed of the minimum covariance determinant's random starts.

    References
    ----------
    J. Hayase, W. Kong, R. Somani, S. Oh. "SPECTRE: Defending Against Backdoor
    Attacks Using Robust Statistics." ICML 2021.
    """

    class_scores = True

    def __init__(
        self,
        *,
        n_components: int = 16,
        alpha: float = 4.0,
        epsilon: float | None = None,
        min_separation: float = 25.0,
        random_state: int = 0,
    ) -> None:
        self.n_components = positive_int(n_components, "n_components")
        self.alpha = alpha
        self.epsilon = _checked_epsilon("spectre", epsilon)
        self.min_separation = min_separation
        self.random_state = random_state

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        from scipy.linalg import expm
        from sklearn.covariance import MinCovDet

        reps = evidence.representations.astype(np.float64)
        scores = np.zeros(len(dataset))
        self.projections_ = np.zeros(len(dataset))
        for c in np.unique(dataset.y):
            idx = np.flatnonzero(dataset.y == c)
            k = min(self.n_components, idx.size // 4, reps.shape[1])
            if k < 1:
                continue
            X = reps[idx] - reps[idx].mean(axis=0)
            _, sv, vt = np.linalg.svd(X, full_matrices=False)
            k = min(k, int(np.sum(sv > 1e-6 * sv[0])))  # never past the class data's numerical rank
            if k < 1:
                continue
            Z = X @ vt[:k].T
            mcd = MinCovDet(random_state=self.random_state).fit(Z)
            evals, evecs = np.linalg.eigh(mcd.covariance_)
            W = (Z - mcd.location_) @ evecs / np.sqrt(np.maximum(evals, 1e-12))
            cov = W.T @ W / W.shape[0]
            norm = np.linalg.norm(cov, 2)
            Q = expm(self.alpha * (cov - np.eye(k)) / max(norm - 1.0, 1e-6))
            Q /= np.trace(Q)
            scores[idx] = np.einsum("ij,jk,ik->i", W, Q, W)
            self.projections_[idx] = W @ np.linalg.eigh(cov)[1][:, -1]
        return scores

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        if self.epsilon is None:
            return split_flags(dataset.y, self.projections_, min_separation=self.min_separation)
        return remove_top_share(dataset.y, scores, 1.5 * self.epsilon)


def split_flags(
    labels: np.ndarray, projections: np.ndarray, *, max_share: float = 0.5, min_separation: float = 4.0
) -> np.ndarray:
    """Per class, flag the smaller group of a clearly bimodal 1-D projection.

    The projection is split in two by 1-D 2-means (an exact search over sorted
    cut points). A class counts as split when the smaller group holds at most
    ``max_share`` of it and the two groups' means lie ``min_separation`` pooled
    standard deviations apart (a clean class's projection is unimodal and fails this).
    """
    flags = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if idx.size < 6:
            continue
        order = np.argsort(projections[idx])
        x = projections[idx][order]
        n = x.size
        csum, csq = np.cumsum(x), np.cumsum(x**2)
        left_n = np.arange(1, n)
        right_n = n - left_n
        left_sse = csq[:-1] - csum[:-1] ** 2 / left_n
        right_sse = (csq[-1] - csq[:-1]) - (csum[-1] - csum[:-1]) ** 2 / right_n
        cut = int(np.argmin(left_sse + right_sse))  # left group = order[: cut + 1]
        n_left, n_right = cut + 1, n - cut - 1
        pooled = np.sqrt((left_sse[cut] + right_sse[cut]) / max(n - 2, 1)) or 1e-12
        gap = abs(csum[cut] / n_left - (csum[-1] - csum[cut]) / n_right) / pooled
        small_left = n_left <= n_right
        small_n = n_left if small_left else n_right
        if gap >= min_separation and small_n <= max_share * n:
            chosen = order[: cut + 1] if small_left else order[cut + 1 :]
            flags[idx[chosen]] = True
    return flags
