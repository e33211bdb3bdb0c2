"""A gate in front of an online learner: label consistency with the trusted history.

:class:`StreamGate` scores each incoming batch against a *trusted history* (a small
clean seed set plus every sample the gate has admitted since) and decides, before
the batch reaches the model, which samples go to quarantine. Three rules, applied
in this order:

1. **Distrusted source.** A source whose batches were rejected whole
   ``distrust_after`` times is distrusted: every later batch from it is quarantined.
2. **Batch rule.** A sample is *suspicious* when the plurality label of its ``k``
   nearest trusted neighbours is not its own label and fewer than ``min_agreement``
   of those neighbours share its label (the k-NN sanitisation of Paudice et al.
   2018; Peri et al. 2020's Deep k-NN plurality test). On clean data a small share
   of samples is suspicious anyway (the *base rate*, measured leave-one-out on the
   trusted seed at ``fit``). If a batch holds more suspicious samples than a
   binomial draw at the base rate plausibly gives (one-sided tail ``p < batch_alpha``)
   the batch comes from a poisoning source and is rejected whole, its clean-looking
   samples included: a backdoor needs few poisons, and the ones that pass the
   per-sample test are exactly the ones the attacker wants through.
3. **Sample rule.** Otherwise only the suspicious samples are rejected.

Images are compared as flattened pixels, without per-pixel standardisation: pixels
share one scale, and dividing by a per-pixel spread would blow up the near-constant
border pixels where patch triggers sit, so a few admitted triggered samples would
become each other's nearest neighbours and vouch for the next ones. Tabular features
are standardised with the trusted seed's mean and spread.

What the rules buy (``benchmarks/bench_stream.py``, digits, one of three sources
poisoning 10 % of the stream with BadNets): the sample rule alone already quarantines
every poison, at ~18 clean samples lost; the batch rule also quarantines the poisoning
source's clean samples (~250), the price of not relying on the sample rule catching
every poison. Limits: the sample rule sees dirty-label poisons, whose label contradicts
what the input looks like; clean-label poisons (feature collisions) keep a plausible
label and need Deep k-NN's setting, neighbours in a trained network's feature space.
A poisoning source that keeps its suspicious share near the base rate passes the batch
rule, and its poisons then face the sample rule alone.

References
----------
A. Paudice, L. Muñoz-González, E. C. Lupu. "Label Sanitization against Label Flipping
Poisoning Attacks." ECML PKDD Workshops, 2018. https://arxiv.org/abs/1803.00992

N. Peri, N. Gupta, W. R. Huang, L. Fowl, C. Zhu, S. Feizi, T. Goldstein, J. P.
Dickerson. "Deep k-NN Defense against Clean-label Data Poisoning Attacks." ECCV
Workshops, 2020. https://arxiv.org/abs/1909.13374
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from typing import Self

import numpy as np
from threadpoolctl import ThreadpoolController

from poisonlab.errors import ConfigError, DataError, NotFittedError

__all__ = ["GateDecision", "StreamGate"]

# Rows of queries per distance block: bounds the (rows × history) matrix in memory.
_BLOCK = 1024


@functools.cache
def _blas() -> ThreadpoolController:
    """One controller per process: building one scans the loaded libraries (~4 ms)."""
    return ThreadpoolController()


@dataclass(frozen=True, eq=False)
class GateDecision:
    """What the gate decided for one batch.

    ``rejected`` is the quarantine mask (``True`` = quarantined), ``scores`` the share
    of each sample's ``k`` trusted neighbours that carry another label (higher = more
    suspicious), ``suspicious`` the per-sample rule's flags, ``batch_rejected`` whether
    the whole batch went to quarantine, ``p_value`` the binomial tail of the batch's
    suspicious count at the trusted base rate, and ``reason`` one line saying why.
    """

    rejected: np.ndarray
    scores: np.ndarray
    suspicious: np.ndarray
    batch_rejected: bool
    p_value: float
    reason: str
    source: str | None = None

    @property
    def n_rejected(self) -> int:
        return int(self.rejected.sum())

    @property
    def admitted(self) -> np.ndarray:
        """The complement of ``rejected``: samples that may reach the model."""
        return ~self.rejected


class StreamGate:
    """Quarantine stream samples whose labels their trusted neighbours contradict.

    Parameters
    ----------
    k : int
        Neighbours read in the trusted history.
    min_agreement : float in (0, 1]
        A sample whose neighbours' plurality label differs from its own is suspicious
        only when fewer than this share of its neighbours carry its label.
    batch_alpha : float in (0, 1)
        Significance of the batch rule: a batch whose suspicious count has a binomial
        tail below this at the base rate is rejected whole.
    min_base_rate : float in [0, 1)
        Floor of the base rate, so a seed on which no sample looked suspicious does not
        make one suspicious sample reject a whole batch.
    distrust_after : int or None
        Whole-batch rejections after which a source is distrusted (its later batches
        all go to quarantine); ``None`` never distrusts a source.
    max_history : int or None
        Cap on the history: past it the oldest *admitted* samples are forgotten (the
        trusted seed is always kept). ``None`` keeps everything.

    Raises
    ------
    NotFittedError
        From ``check``, ``admit`` and ``score_samples`` before ``fit``.

    Notes
    -----
    ``check`` reads the history and, when given a ``source``, updates that source's
    tally of rejected batches (``source_rejections_``, ``distrusted_``); it never
    changes the history. ``admit`` grows the history with samples the caller lets
    through, normally ``X[decision.admitted]``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))]
    >>> y = np.r_[np.zeros(100, int), np.ones(100, int)]
    >>> gate = StreamGate(k=5).fit(X, y)
    >>> gate.check(np.array([[0.0, 0.0], [6.0, 6.0]]), np.array([1, 1])).rejected.tolist()
    [True, False]
    """

    def __init__(
        self,
        *,
        k: int = 10,
        min_agreement: float = 0.3,
        batch_alpha: float = 1e-3,
        min_base_rate: float = 0.01,
        distrust_after: int | None = 2,
        max_history: int | None = 5000,
    ) -> None:
        self.k = k
        self.min_agreement = min_agreement
        self.batch_alpha = batch_alpha
        self.min_base_rate = min_base_rate
        self.distrust_after = distrust_after
        self.max_history = max_history

    # ------------------------------------------------------------------ fitting
    def _validate_params(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {self.k!r}")
        if not 0.0 < self.min_agreement <= 1.0:
            raise ConfigError(f"min_agreement must lie in (0, 1], got {self.min_agreement}")
        if not 0.0 < self.batch_alpha < 1.0:
            raise ConfigError(f"batch_alpha must lie in (0, 1), got {self.batch_alpha}")
        if not 0.0 <= self.min_base_rate < 1.0:
            raise ConfigError(f"min_base_rate must lie in [0, 1), got {self.min_base_rate}")
        if self.distrust_after is not None and self.distrust_after < 1:
            raise ConfigError(f"distrust_after must be >= 1 or None, got {self.distrust_after}")
        if self.max_history is not None and self.max_history < 1:
            raise ConfigError(f"max_history must be >= 1 or None, got {self.max_history}")

    def fit(self, X_trusted: np.ndarray, y_trusted: np.ndarray) -> Self:
        """Start the history from a clean seed and measure the base rate on it."""
        self._validate_params()
        X = np.asarray(X_trusted)
        y = _labels(y_trusted, X)
        if X.shape[0] < 2:
            raise DataError(f"the trusted seed needs at least 2 samples, got {X.shape[0]}")
        flat = X.reshape(X.shape[0], int(np.prod(X.shape[1:]))).astype(np.float64)
        self.image_ = X.ndim == 4
        self.n_features_in_ = flat.shape[1]
        self.mean_ = np.zeros(flat.shape[1]) if self.image_ else flat.mean(axis=0)
        spread = flat.std(axis=0)
        self.scale_ = np.ones(flat.shape[1]) if self.image_ else np.where(spread > 1e-12, spread, 1.0)
        self.history_X_ = (flat - self.mean_) / self.scale_
        self.history_y_ = y
        self.n_trusted_ = flat.shape[0]
        self.n_classes_ = int(y.max()) + 1
        _, suspicious = self._neighbour_rule(self.history_X_, y, exclude_self=True)
        self.seed_suspicious_rate_ = float(suspicious.mean())
        self.base_rate_ = max(self.seed_suspicious_rate_, float(self.min_base_rate))
        self.source_batches_: dict[str, int] = {}
        self.source_rejections_: dict[str, int] = {}
        self.distrusted_: set[str] = set()
        return self

    def admit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Add samples the caller let through to the history."""
        Z, y = self._transform(X, y)
        self.history_X_ = np.concatenate([self.history_X_, Z])
        self.history_y_ = np.concatenate([self.history_y_, y])
        self.n_classes_ = max(self.n_classes_, int(y.max()) + 1 if y.size else 0)
        excess = (
            0 if self.max_history is None else len(self.history_y_) - max(self.max_history, self.n_trusted_)
        )
        if excess > 0:  # forget the oldest admitted rows, never the trusted seed
            keep = np.r_[
                np.arange(self.n_trusted_), np.arange(self.n_trusted_ + excess, len(self.history_y_))
            ]
            self.history_X_, self.history_y_ = self.history_X_[keep], self.history_y_[keep]
        return self

    # ------------------------------------------------------------------ scoring
    def score_samples(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Share of each sample's ``k`` trusted neighbours labelled otherwise."""
        Z, y = self._transform(X, y)
        return self._neighbour_rule(Z, y)[0]

    def check(self, X: np.ndarray, y: np.ndarray, source: str | None = None) -> GateDecision:
        """Decide which samples of one batch go to quarantine (see the module docstring)."""
        Z, y = self._transform(X, y)
        n = len(y)
        scores, suspicious = self._neighbour_rule(Z, y)
        n_suspicious = int(suspicious.sum())
        from scipy.stats import binom  # scipy.stats takes a second to import: only when gating

        p_value = float(binom.sf(n_suspicious - 1, n, self.base_rate_)) if n_suspicious else 1.0
        if source is not None and source in self.distrusted_:
            rejected = np.ones(n, dtype=bool)
            batch_rejected = True
            reason = (
                f"source {source!r} is distrusted after {self.source_rejections_[source]} rejected batches"
            )
        elif p_value < self.batch_alpha:
            rejected = np.ones(n, dtype=bool)
            batch_rejected = True
            reason = (
                f"batch rejected: {n_suspicious}/{n} samples contradict their trusted neighbours "
                f"(base rate {self.base_rate_:.3f}, binomial p = {p_value:.2g})"
            )
            if source is not None:
                self.source_rejections_[source] = self.source_rejections_.get(source, 0) + 1
                if self.distrust_after is not None and self.source_rejections_[source] >= self.distrust_after:
                    self.distrusted_.add(source)
        else:
            rejected = suspicious.copy()
            batch_rejected = False
            reason = (
                f"{n_suspicious}/{n} samples rejected: labels contradict their trusted neighbours"
                if n_suspicious
                else "admitted"
            )
        if source is not None:
            self.source_batches_[source] = self.source_batches_.get(source, 0) + 1
        return GateDecision(rejected, scores, suspicious, batch_rejected, p_value, reason, source)

    # ------------------------------------------------------------------ internals
    def _transform(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "history_X_"):
            raise NotFittedError("this StreamGate is not fitted; call fit(X_trusted, y_trusted) first")
        X = np.asarray(X)
        y = _labels(y, X)
        flat = X.reshape(X.shape[0], int(np.prod(X.shape[1:]))).astype(np.float64)
        if flat.shape[1] != self.n_features_in_:
            raise DataError(f"the gate was fitted on {self.n_features_in_} features, got {flat.shape[1]}")
        if not np.isfinite(flat).all():
            raise DataError("batch features contain NaN or inf")
        return (flat - self.mean_) / self.scale_, y

    def _neighbour_rule(
        self, Z: np.ndarray, y: np.ndarray, *, exclude_self: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Disagreement scores and suspicious flags of rows ``Z`` labelled ``y``."""
        n = len(y)
        if n == 0:
            return np.zeros(0), np.zeros(0, dtype=bool)
        H, Hy = self.history_X_, self.history_y_
        k = min(int(self.k), len(Hy) - int(exclude_self))
        h_sq = np.einsum("ij,ij->i", H, H)
        neighbours = np.empty((n, k), dtype=np.int64)
        # A batch-sized product is far too small for threaded BLAS: on a shared two-core
        # machine its threads turned a 0.3 ms check into 10-30 ms (measured).
        with _blas().limit(limits=1, user_api="blas"):
            for start in range(0, n, _BLOCK):
                block = Z[start : start + _BLOCK]
                d2 = h_sq[None, :] - 2.0 * block @ H.T  # + |z|², constant per row
                if exclude_self:
                    d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
                neighbours[start : start + len(block)] = np.argpartition(d2, k - 1, axis=1)[:, :k]
        labels = Hy[neighbours]
        counts = np.zeros((n, max(self.n_classes_, int(y.max()) + 1)), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(n), k), labels.ravel()), 1)
        agreement = counts[np.arange(n), y] / k
        # Ties for the plurality count as agreement: only a clear other label is suspicious.
        suspicious = (counts.max(axis=1) > counts[np.arange(n), y]) & (agreement < self.min_agreement)
        return 1.0 - agreement, suspicious


def _labels(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0] if X.ndim else 0} rows but y has shape {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
        raise DataError(f"labels must be class indices 0..K-1, got dtype {y.dtype}")
    if X.ndim < 2:
        raise DataError(f"features must be N×d or N×C×H×W, got shape {X.shape}")
    return y.astype(np.int64)
