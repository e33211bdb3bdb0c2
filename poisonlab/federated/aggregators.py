"""Robust aggregation rules for federated learning, as pure NumPy functions.

Every rule takes the clients' updates stacked as an ``(n, d)`` array (one flat
float32 or float64 update per row) and returns an :class:`AggregationResult`:
the aggregate as a ``(d,)`` float32 vector, the indices of the updates a
selection rule kept (Krum, Multi-Krum, Bulyan), and, for rules whose aggregate
is a weighted sum of the inputs, the weight each update received.

==================  ===========================================  ==========================
name                rule                                         tolerates f faulty when
==================  ===========================================  ==========================
``fedavg``          (weighted) mean, McMahan et al. 2017          f = 0
``median``          coordinate-wise median, Yin et al. 2018       n >= 2f + 1
``trimmed_mean``    coordinate-wise trimmed mean, Yin et al.      floor(beta·n) >= f
``krum``            Krum, Blanchard et al. 2017                   n >= 2f + 3
``multi_krum``      Multi-Krum, Blanchard et al. 2017             n >= 2f + 3
``bulyan``          Bulyan over Krum, El Mhamdi et al. 2018       n >= 4f + 3
``norm_clipping``   clip norms, then average; Sun et al. 2019     bounds, does not remove
``fltrust``         FLTrust, Cao et al. 2021                      needs a trusted server update
==================  ===========================================  ==========================

:data:`AGGREGATORS` is a :class:`~poisonlab.registry.Registry`: each entry's ``factory``
is the rule function, and its tags say what the simulation, the Flower strategy and the
conformance checks need to know about it (see :data:`AGGREGATOR_TAGS`), so that no code
outside this module tests a rule's name.

Pairwise distances (Krum, Multi-Krum, Bulyan) come from one Gram product
``‖a‖² + ‖b‖² − 2·A·Aᵀ`` of the centred updates, computed block by block of
columns; see :func:`pairwise_sq_distances` for the precision argument.
Coordinate-wise rules (median, trimmed mean, Bulyan's second stage) transpose
a block of columns at a time and sort it, so no full-size copy of the updates
is made: on 100 updates of 10⁶ float32 parameters (400 MB) the extra memory is
a few MB.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.registry import Entry, Registry

__all__ = [
    "AGGREGATORS",
    "AGGREGATOR_TAGS",
    "AggregationResult",
    "MinClients",
    "bulyan",
    "check_preconditions",
    "coordinate_median",
    "fedavg",
    "fltrust",
    "krum",
    "multi_krum",
    "norm_clipping",
    "pairwise_sq_distances",
    "trimmed_mean",
]

# Columns per block of the Gram product. Each block is a (n, 4096) matrix product in the
# input's precision, summed into a float64 accumulator, so float32 round-off grows with the
# block length (4096), not with d. Larger blocks were no faster here (100 × 10⁶ float32:
# 0.23 s at 8192 columns, one OpenBLAS thread).
_GRAM_BLOCK = 4096
# Columns per block of the coordinate-wise rules: each worker fills a (block, n) buffer
# (1.6 MB for n = 100 float32) to transpose, sort and reduce. 1024 to 4096 columns measured
# the same; fewer blocks mean less Python overhead.
_COORD_BLOCK = 4096
# Columns sampled (evenly spaced) to choose the centre of the Gram product.
_CENTRE_SAMPLE = 1024
# Worker threads for the two column-block loops (Gram product, coordinate-wise rules), each
# taking a contiguous range of columns. NumPy's copies, sorts and ufuncs and the BLAS calls
# release the GIL, so the ranges run in parallel. Python threads that wait simply sleep,
# unlike OpenBLAS's spinning ones (see _centred_gram), so on a busy machine two workers
# cost nothing: measured no slower than one on the shared two-core test machine.
_WORKERS = max(1, min(4, os.cpu_count() or 1))

_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class AggregationResult:
    """What an aggregation rule returns.

    Attributes
    ----------
    update : np.ndarray
        The aggregate, shape ``(d,)``, float32 whatever the input precision.
    selected : np.ndarray or None
        For the selection rules (Krum, Multi-Krum, Bulyan), the row indices of the
        updates that were kept, in the order the rule chose them (int64). ``None``
        for the other rules. Comparing it with the indices of the malicious clients
        gives the share of malicious updates the rule accepted.
    weights : np.ndarray or None
        For rules whose aggregate is a weighted sum of the input rows, the weight of
        each row (float64, shape ``(n,)``): ``update ≈ weights @ updates``. Zero means
        the row did not contribute. ``None`` for the coordinate-wise rules (median,
        trimmed mean, Bulyan), whose output mixes different rows in different
        coordinates.
    """

    update: np.ndarray
    selected: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Frozen means frozen: the arrays are made read-only too (the rules always pass
        # arrays of their own, never views of the caller's input).
        for value in (self.update, self.selected, self.weights):
            if value is not None:
                value.setflags(write=False)


@dataclass(frozen=True, repr=False)
class MinClients:
    """The clients a rule needs to tolerate ``f`` faulty ones: ``n >= per_f·f + plus``.

    It is the ``min_clients`` tag of the rules that make such a claim; shown (and
    written by ``poisonlab list``) as ``"n >= 2f + 3"``.
    """

    per_f: int
    plus: int

    def __call__(self, f: int) -> int:
        """The smallest ``n`` that tolerates ``f`` faulty clients."""
        return self.per_f * f + self.plus

    def __repr__(self) -> str:
        return f"n >= {self.per_f}f + {self.plus}"


_KRUM_N = MinClients(2, 3)  # Blanchard et al. 2017
_BULYAN_N = MinClients(4, 3)  # El Mhamdi et al. 2018
_MAJORITY_N = MinClients(2, 1)  # coordinate-wise rules: an honest majority in every coordinate


# --------------------------------------------------------------------------- validation


def _as_updates(updates: Any, name: str) -> np.ndarray:
    """The updates as an (n, d) float32/float64 array, without copying float32/float64 input."""
    arr = np.asarray(updates)
    if arr.ndim != 2:
        raise ConfigError(
            f"{name}: updates must be a 2-D array (n clients, d parameters), got shape {arr.shape}"
        )
    n, d = arr.shape
    if n < 1:
        raise ConfigError(f"{name}: needs at least one update, got n=0")
    if d < 1:
        raise ConfigError(f"{name}: updates have no parameters (d=0)")
    if arr.dtype not in (np.float32, np.float64):
        if arr.dtype == np.bool_ or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
        ):
            raise ConfigError(f"{name}: updates must be real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    return arr


def _require_finite(arr: np.ndarray, name: str, what: str = "updates contain") -> None:
    # Fast path: one BLAS pass. A NaN or inf anywhere makes its column sum NaN or inf, so a
    # finite sum proves the input finite; a non-finite sum may also be an overflow of finite
    # values, so only then is every element checked (allocating a boolean mask).
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.ones(arr.shape[0], dtype=arr.dtype) @ arr if arr.ndim == 2 else arr
        fast_ok = bool(np.isfinite(total).all())
    if not fast_ok and not np.isfinite(arr).all():
        raise ConfigError(f"{name}: {what} NaN or inf")


def _as_int(value: Any, name: str, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}: {label} must be an integer, got {value!r}")
    return int(value)


def _check_f(name: str, n: int, f: Any, need: MinClients | None = None) -> int:
    """``f`` as an int in ``0 <= f < n``, and ``n >= need(f)`` when the rule states a condition."""
    f = _as_int(f, name, "f")
    if f < 0:
        raise ConfigError(f"{name}: f must be >= 0, got f={f}")
    if f >= n:
        raise ConfigError(f"{name}: f must be < n, got n={n}, f={f}")
    if need is not None and n < need(f):
        raise ConfigError(f"{name} needs {need} clients, got n={n}, f={f}")
    return f


def _trim_count(name: str, n: int, beta: Any) -> int:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= float(beta) < 0.5:
        raise ConfigError(f"{name}: beta must be a number in [0, 0.5), got {beta!r}")
    # floor(beta·n), forgiving the representation error of products such as 0.29 * 100 =
    # 28.999999999999996, and never trimming every value.
    return min(math.floor(float(beta) * n + 1e-9), (n - 1) // 2)


def check_preconditions(
    rule: str | Entry[AggregationResult], n: int, f: int, *, beta: float | None = None
) -> None:
    """Raise :class:`ConfigError` if ``rule`` cannot tolerate ``f`` faulty clients out of ``n``.

    Parameters
    ----------
    rule : str or Entry
        A name in :data:`AGGREGATORS`, or an entry (your own rule's, for instance).
    n : int
        Number of clients (updates per round), ``n >= 1``.
    f : int
        Number of faulty (Byzantine) clients to tolerate, ``0 <= f < n``.
    beta : float, optional
        For rules tagged ``trims`` (the trimmed mean): the trim fraction to be used.
        When given, it must trim at least ``f`` values per side (``floor(beta·n) >= f``).

    Raises
    ------
    UnknownNameError
        ``rule`` is not a known aggregator.
    IncompatibleError
        The rule's ``min_clients`` condition fails: ``n >= 2f + 3`` for Krum and
        Multi-Krum (Blanchard et al. 2017), ``n >= 4f + 3`` for Bulyan (El Mhamdi et al.
        2018), ``n >= 2f + 1`` for the median and the trimmed mean. The message names
        the rules whose condition holds for this ``n`` and ``f``.
    ConfigError
        ``n`` or ``f`` is out of range. FedAvg, norm clipping and FLTrust accept any
        ``0 <= f < n``: they have no condition (FedAvg offers no protection at all, and
        checking it must not stop an experiment that measures exactly that).
    """
    entry = AGGREGATORS.get(rule) if isinstance(rule, str) else rule
    name = entry.name
    n = _as_int(n, name, "n")
    if n < 1:
        raise ConfigError(f"{name}: n must be >= 1, got n={n}")
    f = _check_f(name, n, f)
    need: MinClients | None = entry.tag("min_clients")
    if need is not None and n < need(f):
        fits = [
            e.name for e in AGGREGATORS if e.tag("min_clients") is not None and n >= e.tag("min_clients")(f)
        ]
        instead = f"; rules that tolerate f={f} of n={n}: {', '.join(fits)}" if fits else ""
        raise IncompatibleError(f"{name} needs {need} clients, got n={n}, f={f}{instead}")
    if entry.tag("trims") and beta is not None:
        k = _trim_count(name, n, beta)
        if k < f:
            raise IncompatibleError(f"{name} with beta={beta} trims {k} per side, fewer than f={f}")


# --------------------------------------------------------------------------- shared kernels


def _weighted_sum(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``weights @ x`` as float32, in one BLAS pass and without a float64 copy of ``x``.

    For float32 input the sum over the n rows is accumulated in float32 (sgemv): its
    round-off is at most about n·2⁻²⁴ of Σ|wᵢ·xᵢ| per coordinate, below the float32
    resolution of the result for any realistic n, and a float64 pass would cost 0.5 s
    instead of 0.03 s on 100 × 10⁶ parameters.
    """
    return np.asarray(weights.astype(x.dtype) @ x, dtype=np.float32)


def _sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared L2 norm of each row, products and sums in float64 (exact products of float32)."""
    return np.einsum("ij,ij->i", x, x, dtype=np.float64)


def _robust_centre(x: np.ndarray) -> int:
    """A row near the bulk of the updates, found cheaply on a sample of columns.

    The row minimising the sum of squared distances, measured on ``_CENTRE_SAMPLE`` evenly
    spaced columns in float64, to its ``(n - 1) // 2`` nearest rows: a Krum-like medoid
    that fewer than half the rows cannot drag away. It only sets the origin of the Gram
    product (distances do not depend on it), so a poor choice costs precision, never
    correctness.
    """
    n, d = x.shape
    if n <= 2:
        return 0
    cols = np.unique(np.linspace(0, d - 1, num=min(d, _CENTRE_SAMPLE)).astype(np.intp))
    sample = x[:, cols].astype(np.float64)
    sample -= sample.mean(axis=0)
    sq = np.einsum("ij,ij->i", sample, sample)
    dist = sq[:, None] + sq[None, :] - 2.0 * (sample @ sample.T)
    np.fill_diagonal(dist, np.inf)
    k = (n - 1) // 2
    scores = np.partition(dist, k - 1, axis=1)[:, :k].sum(axis=1)
    return int(np.argmin(scores))


def _split_columns(d: int, block: int) -> list[tuple[int, int]]:
    """Contiguous column ranges on block boundaries, one per worker (fewer if d is small)."""
    n_blocks = -(-d // block)
    parts = min(_WORKERS, n_blocks)
    bounds = [min(d, block * ((i * n_blocks) // parts)) for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def _over_columns(work: Callable[[int, int], _T], d: int, block: int) -> list[_T]:
    """Run ``work(lo, hi)`` on each range of :func:`_split_columns`, in threads if more than one."""
    ranges = _split_columns(d, block)
    if len(ranges) == 1:
        return [work(*ranges[0])]
    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        return list(pool.map(lambda r: work(*r), ranges))


def _centred_gram(x: np.ndarray, centre: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
    """``(x − centre)·(x − centre)ᵀ`` accumulated in float64 over blocks of columns.

    The block products run on one BLAS thread each. They are small (n × 4096 by
    4096 × n), so BLAS's own threads gain at most 2× on an idle machine (0.13 s against
    0.23 s for 100 × 10⁶ on two cores), while on a busy machine, with more runnable
    threads than cores, OpenBLAS's spin-waiting worker threads stalled at every one of the
    245 calls: 25 s instead of 0.25 s, measured on a shared two-core machine. Parallelism
    comes from :data:`_WORKERS` Python threads instead. The BLAS limit is process-wide while
    the product runs (threadpoolctl, installed with scikit-learn).
    """
    n, d = x.shape

    def partial_gram(lo: int, hi: int) -> np.ndarray:
        gram = np.zeros((n, n), dtype=np.float64)
        buf = np.empty((n, min(_GRAM_BLOCK, hi - lo)), dtype=dtype)
        # errstate is per thread: a float32 overflow is detected by the caller, which redoes
        # the product in float64.
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(lo, hi, _GRAM_BLOCK):
                stop = min(start + _GRAM_BLOCK, hi)
                block = buf[:, : stop - start]
                np.subtract(x[:, start:stop], centre[start:stop], out=block, dtype=dtype)
                gram += block @ block.T
        return gram

    with threadpool_limits(limits=1, user_api="blas"):
        partials = _over_columns(partial_gram, d, _GRAM_BLOCK)
    return np.sum(partials, axis=0)


def pairwise_sq_distances(updates: np.ndarray) -> np.ndarray:
    """All pairwise squared Euclidean distances between the rows of ``updates``.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64, finite.

    Returns
    -------
    np.ndarray
        Shape ``(n, n)``, float64, symmetric, zero on the diagonal, ``>= 0``
        everywhere. Identical rows are at distance exactly 0. A distance too large for
        float64 is ``inf``.

    Notes
    -----
    One Gram product, ``D = ‖a‖² + ‖b‖² − 2·A·Aᵀ``, instead of ``n²`` vector
    differences. Precision choices:

    * The rows are first centred on one of them, chosen by :func:`_robust_centre`.
      Distances do not change, but the cancellation in ``‖a‖² + ‖b‖² − 2a·b`` now
      scales with the spread of the updates instead of their size. This matters when
      the updates share a large common part (full model weights rather than deltas;
      ``100 + 10⁻³·noise`` in the tests), where an uncentred float32 product loses
      every significant digit of the distances.
    * For float32 input the product runs in float32 BLAS over blocks of 4096 columns
      and the blocks are summed in float64: about twice as fast as a float64 product
      (0.23 s against 0.46 s for 100 × 10⁶ on one core) and it needs no float64 copy
      of the input. The error of each squared distance is then of order
      ``2⁻²⁴·√4096·(‖a − c‖² + ‖b − c‖²)`` (``c`` the centre): 10⁻⁷ to 10⁻⁵ of each
      distance in the tests (the most for two updates five times closer to each other
      than to the centre), which check that Krum, Multi-Krum and Bulyan choose as with
      float64 distances computed from explicit differences.
    * The squared norms are the diagonal of the same accumulated product, so for two
      identical rows ``‖a‖² + ‖b‖² − 2a·b`` cancels exactly to 0.
    * Round-off can still leave tiny negative values, which are clamped to 0.
    * If a float32 product overflows (values around 10¹⁹ and beyond), it is redone in
      float64, which cannot overflow for finite float32 input.
    """
    x = _as_updates(updates, "pairwise_sq_distances")
    _require_finite(x, "pairwise_sq_distances")
    return _distances(x)


def _distances(x: np.ndarray) -> np.ndarray:
    centre = x[_robust_centre(x)]
    gram = _centred_gram(x, centre, x.dtype.type)
    if x.dtype == np.float32 and not np.isfinite(gram).all():
        gram = _centred_gram(x, centre, np.float64)  # float32 overflowed; float64 cannot here
    sq = np.diag(gram).copy()
    with np.errstate(over="ignore", invalid="ignore"):
        dist = sq[:, None] + sq[None, :] - 2.0 * gram
    dist[np.isnan(dist)] = np.inf  # inf − inf: only when a float64 norm itself overflowed
    np.maximum(dist, 0.0, out=dist)
    # Exactly symmetric with an exact zero diagonal, whatever order BLAS summed in.
    upper = np.triu(dist, 1)
    return upper + upper.T


def _krum_scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each row: the sum of its squared distances to its n − f − 2 nearest others.

    ``dist`` is a square block of :func:`pairwise_sq_distances`. When ``n − f − 2 < 1``
    (only inside Bulyan's last rounds, see :func:`bulyan`) one neighbour is used, so
    that the score still measures closeness; a single row scores 0.
    """
    r = dist.shape[0]
    k = min(max(r - f - 2, 1), r - 1)
    if k == 0:
        return np.zeros(r)
    others = dist.copy()
    np.fill_diagonal(others, np.inf)  # a row is not its own neighbour
    return np.partition(others, k - 1, axis=1)[:, :k].sum(axis=1)


def _sorted_column_blocks(x: np.ndarray, rows: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, block)``: the values of columns ``start:start+b`` of ``x[rows]``, transposed
    to shape ``(b, len(rows))`` and sorted along each row.

    Per coordinate statistics need the n values of one column together, but ``x`` is
    row-major with d ≈ 10⁶: sorting along axis 0 (or ``np.median(axis=0)``) walks
    memory with a stride of 4 MB and took 0.8 s for 60 × 10⁶. Copying one block of
    columns into a small contiguous buffer, row by row, then sorting along the last axis
    (NumPy's SIMD sort) takes 0.2-0.25 s. The buffer is reused: a consumer must be done
    with a block before asking for the next.
    """
    n, d = x.shape
    rows = np.arange(n) if rows is None else rows
    buf = np.empty((min(_COORD_BLOCK, d), len(rows)), dtype=x.dtype)
    for start in range(0, d, _COORD_BLOCK):
        stop = min(start + _COORD_BLOCK, d)
        block = buf[: stop - start]
        for col, row in enumerate(rows):
            block[:, col] = x[row, start:stop]
        block.sort(axis=1)
        yield start, block


def _per_coordinate(
    x: np.ndarray, reduce: Callable[[np.ndarray], np.ndarray], rows: np.ndarray | None = None
) -> np.ndarray:
    """``reduce`` applied to every sorted block of :func:`_sorted_column_blocks`, as a (d,) float32."""
    out = np.empty(x.shape[1], dtype=np.float32)

    def work(lo: int, hi: int) -> None:
        for start, block in _sorted_column_blocks(x[:, lo:hi], rows):
            out[lo + start : lo + start + block.shape[0]] = reduce(block)

    _over_columns(work, x.shape[1], _COORD_BLOCK)
    return out


def _median_of_sorted(block: np.ndarray) -> np.ndarray:
    m = block.shape[1]
    lo, hi = (m - 1) // 2, m // 2
    return 0.5 * (block[:, lo].astype(np.float64) + block[:, hi])


def _mean_closest_to_median(block: np.ndarray, beta: int) -> np.ndarray:
    """For each row of a row-sorted ``(b, m)`` block, the mean of the ``beta`` values closest to its median.

    The ``beta`` values closest to the median are consecutive once sorted: a window
    ``s[k : k + beta]``. Some best window covers the median's position(s) ``lo, hi``, so
    only ``k`` in ``[hi − beta + 1, lo]`` (within ``[0, m − beta]``) is tried: 19 windows
    instead of 41 for m = 60, beta = 20. Window ``k`` reaches ``max(med − s[k],
    s[k+beta−1] − med)`` from the median; its left arm is the longer exactly while
    ``s[k] + s[k+beta−1] < 2·med``, a sum that never decreases with ``k``. So counting the
    windows where it holds finds the crossing, and the best window is the last one before
    it or the first one after it (the lower one on a tie). This replaces sorting the
    distances to the median (an argsort per coordinate) by one comparison per window.
    The sums of two float32 values, and the comparisons, are exact in float64.
    """
    b, m = block.shape
    lo, hi = (m - 1) // 2, m // 2
    first = max(0, min(hi - beta + 1, lo))
    last = min(lo, m - beta)
    twice_med = block[:, lo].astype(np.float64) + block[:, hi]
    ends = block[:, first : last + 1].astype(np.float64) + block[:, first + beta - 1 : last + beta]
    crossing = first + np.count_nonzero(ends < twice_med[:, None], axis=1)
    left = np.maximum(crossing - 1, first)
    right = np.minimum(crossing, last)
    # Gathers through the flat buffer are faster than take_along_axis here.
    flat = block.reshape(-1)
    row_start = np.arange(b) * m
    med = 0.5 * twice_med
    k = np.where(med - flat[row_start + left] <= flat[row_start + right + beta - 1] - med, left, right)
    window = flat[(row_start + k)[:, None] + np.arange(beta)]
    return window.sum(axis=1, dtype=np.float64) / beta


def _result(
    update: np.ndarray, selected: np.ndarray | None = None, weights: np.ndarray | None = None
) -> AggregationResult:
    return AggregationResult(
        # Always a new array: Krum's update must not be a view of the caller's input.
        update=np.array(update, dtype=np.float32, copy=True),
        selected=None if selected is None else np.asarray(selected, dtype=np.int64),
        weights=None if weights is None else np.asarray(weights, dtype=np.float64),
    )


# --------------------------------------------------------------------------- rules


def fedavg(updates: np.ndarray, weights: np.ndarray | None = None) -> AggregationResult:
    """Federated averaging: the mean of the updates, weighted only if asked.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.
    weights : np.ndarray, optional
        One non-negative weight per update, e.g. the clients' example counts as in
        McMahan et al. By default every update counts the same, because the counts are
        reported by the clients themselves and a malicious client could inflate its
        own: pass them explicitly only when they are trusted.

    Returns
    -------
    AggregationResult
        ``update = Σ wᵢ·uᵢ / Σ wᵢ``; ``weights`` holds the normalised ``wᵢ``.

    References
    ----------
    McMahan, Moore, Ramage, Hampson, Agüera y Arcas. "Communication-Efficient Learning
    of Deep Networks from Decentralized Data." AISTATS 2017.
    """
    x = _as_updates(updates, "fedavg")
    n = x.shape[0]
    if weights is None:
        w = np.full(n, 1.0 / n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise ConfigError(f"fedavg: weights must have shape ({n},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ConfigError("fedavg: weights must be finite, >= 0 and not all zero")
        w = w / w.sum()
    _require_finite(x, "fedavg")
    return _result(_weighted_sum(w, x), weights=w)


def coordinate_median(updates: np.ndarray) -> AggregationResult:
    """Coordinate-wise median of the updates (the mean of the two middle values when n is even).

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.

    Returns
    -------
    AggregationResult
        ``selected`` and ``weights`` are ``None``: each coordinate may come from a
        different client.

    Notes
    -----
    Robust to ``f`` arbitrary updates when ``n >= 2f + 1``: every coordinate of the
    result then lies within the range of the honest values of that coordinate.

    References
    ----------
    Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed Learning: Towards
    Optimal Statistical Rates." ICML 2018 (PMLR 80), the coordinate-wise median.
    """
    x = _as_updates(updates, "median")
    _require_finite(x, "median")
    return _result(_per_coordinate(x, _median_of_sorted))


def trimmed_mean(updates: np.ndarray, beta: float) -> AggregationResult:
    """Coordinate-wise trimmed mean: per coordinate, drop the ``k`` largest and ``k`` smallest values.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.
    beta : float
        Fraction trimmed from each side, ``0 <= beta < 0.5``: ``k = floor(beta·n)``
        values per side (so ``beta = 0`` is the mean). To tolerate ``f`` faulty clients,
        choose ``beta >= f / n``; :func:`check_preconditions` checks it.

    Returns
    -------
    AggregationResult
        The mean of the ``n − 2k`` middle values of each coordinate.

    References
    ----------
    Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed Learning: Towards
    Optimal Statistical Rates." ICML 2018 (PMLR 80), the coordinate-wise β-trimmed mean.
    """
    x = _as_updates(updates, "trimmed_mean")
    n = x.shape[0]
    k = _trim_count("trimmed_mean", n, beta)
    _require_finite(x, "trimmed_mean")
    return _result(
        _per_coordinate(x, lambda block: block[:, k : n - k].sum(axis=1, dtype=np.float64) / (n - 2 * k))
    )


def krum(updates: np.ndarray, f: int) -> AggregationResult:
    """Krum: the single update closest to its ``n − f − 2`` nearest neighbours.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.
    f : int
        Number of faulty (Byzantine) clients to tolerate; needs ``n >= 2f + 3``.

    Returns
    -------
    AggregationResult
        The chosen update (a float32 copy), ``selected = [i*]`` and one-hot ``weights``.

    Notes
    -----
    ``score(i)`` is the sum of the squared distances from update ``i`` to its
    ``n − f − 2`` nearest other updates; Krum returns the update with the lowest
    score, the lowest index on a tie. Distances: :func:`pairwise_sq_distances`.

    References
    ----------
    Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with Adversaries:
    Byzantine Tolerant Gradient Descent." NeurIPS 2017.
    """
    return _multi_krum(updates, f, 1, "krum")


def multi_krum(updates: np.ndarray, f: int, m: int | None = None) -> AggregationResult:
    """Multi-Krum: the mean of the ``m`` updates with the best (lowest) Krum scores.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.
    f : int
        Number of faulty clients to tolerate; needs ``n >= 2f + 3``.
    m : int, optional
        How many updates to average, ``1 <= m <= n`` (``m = 1`` is Krum, ``m = n`` the
        plain mean). Default ``n − f``.

    Returns
    -------
    AggregationResult
        ``selected`` lists the ``m`` chosen rows, best score first (ties: lowest index
        first); ``weights`` is ``1/m`` on them and 0 elsewhere.

    References
    ----------
    Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with Adversaries:
    Byzantine Tolerant Gradient Descent." NeurIPS 2017, Multi-Krum.
    """
    return _multi_krum(updates, f, m, "multi_krum")


def _multi_krum(updates: np.ndarray, f: int, m: int | None, name: str) -> AggregationResult:
    x = _as_updates(updates, name)
    n = x.shape[0]
    f = _check_f(name, n, f, _KRUM_N)
    m = n - f if m is None else _as_int(m, name, "m")
    if not 1 <= m <= n:
        raise ConfigError(f"{name}: m must be in [1, n], got m={m}, n={n}")
    _require_finite(x, name)
    scores = _krum_scores(_distances(x), f)
    chosen = np.argsort(scores, kind="stable")[:m]
    weights = np.zeros(n)
    weights[chosen] = 1.0 / m
    update = x[chosen[0]] if m == 1 else _weighted_sum(weights, x)
    return _result(update, selected=chosen, weights=weights)


def bulyan(updates: np.ndarray, f: int) -> AggregationResult:
    """Bulyan over Krum: pick ``θ = n − 2f`` updates by repeated Krum, then trim around the median.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.
    f : int
        Number of faulty clients to tolerate; needs ``n >= 4f + 3``.

    Returns
    -------
    AggregationResult
        ``selected`` lists the θ selected rows in the order Krum chose them.
        ``weights`` is ``None``: the second stage mixes rows per coordinate.

    Notes
    -----
    1. Selection: starting from all updates, apply Krum (with the same ``f``) to the
       updates not yet selected, move its choice to the selection set, and repeat until
       θ = n − 2f updates are selected. The Krum scores are recomputed on the remaining
       set each round (so this is not one Multi-Krum pass), from one distance matrix
       computed once and sub-indexed. With ``r`` updates remaining Krum sums the
       distances to the ``r − f − 2`` nearest; in the last rounds, where ``r − f − 2``
       drops below 1 (only when ``f <= 1``), the single nearest neighbour is used. Ties
       go to the lowest row index.

       The last two rounds run on 2f + 2 and 2f + 1 updates, below Krum's own condition
       ``r >= 2f + 3``, so Krum's guarantee does not cover them: ``f`` identical colluding
       updates are then each other's nearest neighbours at distance 0, and one of them is
       selected in the last round (the tests show it with f = 2). The second stage keeps
       such an outlier out of the aggregate, but ``selected`` reports it.
    2. Aggregation: for each coordinate, the mean of the β = θ − 2f selected values
       closest to the coordinate-wise median of the selection (the mean of the two
       middle values when θ is even). Those β values are consecutive once sorted, so the
       window is found by comparing its two ends with the median instead of sorting
       distances; of two equally close windows the lower one is used.

    References
    ----------
    El Mhamdi, Guerraoui, Rouault. "The Hidden Vulnerability of Distributed Learning in
    Byzantium." ICML 2018 (PMLR 80:3521-3530).
    """
    x = _as_updates(updates, "bulyan")
    n = x.shape[0]
    f = _check_f("bulyan", n, f, _BULYAN_N)
    _require_finite(x, "bulyan")
    theta = n - 2 * f
    beta = theta - 2 * f

    dist = _distances(x)
    remaining = np.arange(n)
    chosen: list[int] = []
    for _ in range(theta):
        scores = _krum_scores(dist[np.ix_(remaining, remaining)], f)
        pick = int(np.argmin(scores))
        chosen.append(int(remaining[pick]))
        remaining = np.delete(remaining, pick)
    selection = np.array(chosen)

    rows_in_memory_order = np.sort(selection)  # the statistic does not depend on the order
    update = _per_coordinate(x, lambda block: _mean_closest_to_median(block, beta), rows_in_memory_order)
    return _result(update, selected=selection)


def norm_clipping(updates: np.ndarray, max_norm: float | None = None) -> AggregationResult:
    """Clip every update to L2 norm ``<= max_norm``, then average.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64.
    max_norm : float, optional
        The clipping threshold, ``> 0``. By default the median of the update norms, a
        threshold that fewer than half the clients cannot raise.

    Returns
    -------
    AggregationResult
        ``update = (1/n)·Σ uᵢ·min(1, max_norm/‖uᵢ‖)``; ``weights`` holds the factors
        ``min(1, max_norm/‖uᵢ‖)/n``.

    Notes
    -----
    Clipping bounds how far one update can move the aggregate; it does not remove
    anything. Sun et al. pair it with optional Gaussian noise ("weak differential
    privacy"), which is not part of this function.

    References
    ----------
    Sun, Kairouz, Suresh, McMahan. "Can You Really Backdoor Federated Learning?"
    arXiv:1911.07963, 2019, norm thresholding of updates.
    """
    x = _as_updates(updates, "norm_clipping")
    n = x.shape[0]
    if max_norm is not None and (
        isinstance(max_norm, bool)
        or not isinstance(max_norm, numbers.Real)
        or not math.isfinite(max_norm)
        or max_norm <= 0
    ):
        raise ConfigError(f"norm_clipping: max_norm must be a finite number > 0, got {max_norm!r}")
    _require_finite(x, "norm_clipping")
    norms = np.sqrt(_sq_norms(x))
    threshold = float(np.median(norms)) if max_norm is None else float(max_norm)
    factors = np.ones(n)
    over = norms > threshold  # strictly larger norms, so never a division by zero
    factors[over] = threshold / norms[over]
    weights = factors / n
    return _result(_weighted_sum(weights, x), weights=weights)


def fltrust(updates: np.ndarray, server_update: np.ndarray) -> AggregationResult:
    """FLTrust: weight each update by its ReLU-clipped cosine to a trusted server update.

    Parameters
    ----------
    updates : np.ndarray
        Shape ``(n, d)``, float32 or float64: the clients' updates.
    server_update : np.ndarray
        Shape ``(d,)``: the update the server computed on its own small, clean root
        dataset.

    Returns
    -------
    AggregationResult
        ``weights`` holds each update's weight in the aggregate,
        ``TSᵢ·‖g₀‖/‖gᵢ‖ / Σⱼ TSⱼ``; 0 for the updates with no trust.

    Notes
    -----
    With ``g₀`` the server update and ``gᵢ`` the client updates:

    * trust score ``TSᵢ = ReLU(cos(gᵢ, g₀))``: an update pointing away from (or
      orthogonal to) the server update gets no weight;
    * each update is rescaled to the server update's norm, ``ḡᵢ = gᵢ·‖g₀‖/‖gᵢ‖``, so a
      large update gains no influence from its size;
    * the aggregate is ``Σ TSᵢ·ḡᵢ / Σ TSᵢ``.

    If every trust score is zero (or the server update is zero) there is nothing to
    trust, and the result is the zero vector with all weights zero. A zero client
    update has cosine 0 with everything, so it gets no trust.

    References
    ----------
    Cao, Fang, Liu, Gong. "FLTrust: Byzantine-robust Federated Learning via Trust
    Bootstrapping." NDSS 2021.
    """
    x = _as_updates(updates, "fltrust")
    n, d = x.shape
    g0 = np.asarray(server_update)
    if g0.shape != (d,):
        raise ConfigError(f"fltrust: server_update must have shape ({d},), got {g0.shape}")
    if g0.dtype == np.bool_ or not (
        np.issubdtype(g0.dtype, np.integer) or np.issubdtype(g0.dtype, np.floating)
    ):
        raise ConfigError(f"fltrust: server_update must be real numbers, got dtype {g0.dtype}")
    _require_finite(g0, "fltrust", "server_update contains")
    _require_finite(x, "fltrust")
    g0 = g0.astype(x.dtype, copy=False)

    norms = np.sqrt(_sq_norms(x))
    server_norm = math.sqrt(float(np.dot(g0.astype(np.float64), g0.astype(np.float64))))
    dots = np.einsum("ij,j->i", x, g0, dtype=np.float64)
    cosine = np.zeros(n)
    nonzero = norms > 0
    if server_norm > 0:
        cosine[nonzero] = dots[nonzero] / (norms[nonzero] * server_norm)
    trust = np.maximum(cosine, 0.0)
    total = trust.sum()
    weights = np.zeros(n)
    if total > 0:
        trusted = trust > 0  # trust > 0 implies a non-zero norm
        weights[trusted] = trust[trusted] * server_norm / (norms[trusted] * total)
        return _result(_weighted_sum(weights, x), weights=weights)
    return _result(np.zeros(d, dtype=np.float32), weights=weights)


#: The tags every aggregator has, with their defaults.
AGGREGATOR_TAGS: dict[str, Any] = {
    # Returns ``selected``, the rows it kept (the simulation reports the malicious share kept).
    "selects_clients": False,
    # Takes ``f``, the number of Byzantine clients to tolerate (the simulation passes m).
    "needs_f": False,
    # Takes ``server_update``, computed by the server on a clean root set (FLTrust).
    "needs_server_update": False,
    # Takes ``beta``, the share trimmed per side (the simulation defaults it to m/k).
    "trims": False,
    # Takes ``weights``, one per client (FedAvg's example counts; a Flower strategy option).
    "takes_weights": False,
    # A MinClients condition n >= a·f + b under which the rule tolerates f faulty clients.
    "min_clients": None,
    # The aggregate does not depend on the order of the clients (up to float round-off).
    "symmetric": True,
    # n identical updates aggregate to that update.
    "keeps_consensus": True,
}

AGGREGATORS: Registry[AggregationResult] = Registry(
    "aggregator", tags=AGGREGATOR_TAGS, title="federated aggregators"
)
"""Aggregation rules by name; each ``factory`` takes ``(updates, ...)`` and returns an AggregationResult."""
AGGREGATORS.add(
    "fedavg", fedavg, "FedAvg: the (weighted) mean of the updates (McMahan et al. 2017)", takes_weights=True
)
AGGREGATORS.add(
    "median", coordinate_median, "Coordinate-wise median (Yin et al. 2018)", min_clients=_MAJORITY_N
)
AGGREGATORS.add(
    "trimmed_mean",
    trimmed_mean,
    "Coordinate-wise trimmed mean: drop the beta·n largest and smallest per coordinate (Yin et al. 2018)",
    trims=True,
    min_clients=_MAJORITY_N,
)
AGGREGATORS.add(
    "krum",
    krum,
    "Krum: the single update closest to its n - f - 2 nearest neighbours (Blanchard et al. 2017)",
    selects_clients=True,
    needs_f=True,
    min_clients=_KRUM_N,
)
AGGREGATORS.add(
    "multi_krum",
    multi_krum,
    "Multi-Krum: the mean of the m updates with the best Krum scores (Blanchard et al. 2017)",
    selects_clients=True,
    needs_f=True,
    min_clients=_KRUM_N,
)
AGGREGATORS.add(
    "bulyan",
    bulyan,
    "Bulyan: repeated Krum, then a trimmed mean around the median (El Mhamdi et al. 2018)",
    selects_clients=True,
    needs_f=True,
    min_clients=_BULYAN_N,
    # Its last Krum rounds score by the single nearest neighbour, so two mutual nearest
    # neighbours tie and the lower row index wins: the order of the clients matters.
    symmetric=False,
)
AGGREGATORS.add(
    "norm_clipping",
    norm_clipping,
    "Norm clipping: clip every update to the median norm, then average (Sun et al. 2019)",
)
AGGREGATORS.add(
    "fltrust",
    fltrust,
    "FLTrust: weight updates by their cosine to a trusted server update (Cao et al. 2021)",
    needs_server_update=True,
)
