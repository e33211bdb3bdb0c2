"""Nearest-neighbour search for detectors: exact on small sets, an inverted-file index on large ones.

Several detectors read each sample's k nearest neighbours (label votes, exclusionary
reclassification), and a scan asks for them many times over the same space. Exact
search costs O(N²·d): 100,000 embeddings of 256 dimensions took about 70 s for one
full query, so a scan of a million rows cannot use it. :class:`NeighbourSearch` answers
every query of one space:

- up to ``exact_below`` samples, with scikit-learn's exact search, exactly as the
  detectors did before (same neighbours, same order);
- above, with faiss's inverted-file index (``IndexIVFFlat``; Jégou, Douze and
  Schmid 2011, "Product quantization for nearest neighbor search", §4, the
  inverted file with exact distances inside the probed lists) over the space's
  top 32 principal components (fitted on 20,000 rows). The space is cut into
  ``nlist = sqrt(nprobe · N)`` k-means cells; a query reads the ``nprobe`` cells
  nearest to it, so its cost is ``2·sqrt(nprobe · N)·dims`` instead of ``N·d``,
  and a full query grows as N^1.5 rather than N². A query that finds fewer than
  ``k`` admissible neighbours in its cells (the rest of its cells were excluded)
  is asked again with four times the cells, up to all of them.

Detectors use the neighbours' labels, not their identities. On the 100,000 planted
embeddings of ``benchmarks/bench_scale.py`` (10 Gaussian classes in 256 dimensions)
the index found 1.7% of the exact 10 nearest neighbours (within a class of
isotropic noise every member is about as near as any other) and the same k-NN label
disagreement flags for every sample, in 1.1 s for the index and one full query;
the scan's F1 there equals the exact scan's, and ``tests/test_neighbours.py`` checks
the votes and a scan on harder mixes. The 32 components are a limit: classes that
differ only beyond them (many fine-grained classes) would mix in the votes; set
:data:`INDEX_DIMS` higher for such spaces (each doubling about doubles the cost).
faiss is the optional extra ``poisonlab[scale]``; without it, large sets fall back
to exact search.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

Metric = Literal["euclidean", "cosine"]

#: sets of at most this many samples are searched exactly
EXACT_BELOW = 20_000
#: principal components the index searches in (a search built without ``dims`` reads it)
INDEX_DIMS = 32


def have_faiss() -> bool:
    """Whether the approximate index (the ``scale`` extra) is installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class NeighbourSearch:
    """k-nearest-neighbour queries over the rows of one space, excluding chosen rows.

    ``metric="cosine"`` compares directions (rows scaled to unit length), as a
    label vote in a network's representations does. ``exact_below`` sets the size
    up to which search is exact (default :data:`EXACT_BELOW`); larger sets use the
    inverted-file index when faiss is installed, over the space's top ``dims``
    principal components (fitted on 20,000 rows), with ``nprobe`` cells read per
    query.
    """

    def __init__(
        self,
        X: np.ndarray,
        *,
        metric: Metric = "euclidean",
        exact_below: int | None = None,
        nprobe: int = 8,
        dims: int | None = None,
        random_state: int = 0,
    ) -> None:
        #: the array this search was built over (the cache of :class:`Evidence` checks it)
        self.source = X
        X = np.asarray(X)
        self.metric = metric
        self.n = X.shape[0]
        limit = EXACT_BELOW if exact_below is None else exact_below
        self.exact = self.n <= limit or not have_faiss()
        # exact search reads the rows themselves; the index scales them a block at a time
        self.X = _unit(X) if metric == "cosine" and self.exact else X
        self.nprobe = nprobe
        self.dims = INDEX_DIMS if dims is None else dims
        self.random_state = random_state
        self._index: Any = None

    def query(self, rows: np.ndarray | None, k: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
        """Global indices, ``(len(rows), k)``, of each row's ``k`` nearest admissible samples, nearest first.

        ``rows=None`` queries every sample and leaves the sample itself out (its
        first neighbour, as exact search returns it). ``exclude`` (indices) are
        never returned; a query row is then one of them or not. ``k`` is capped at
        the number of admissible samples.
        """
        if rows is None:
            k = min(k, self.n - 1)
            found = self._search(np.arange(self.n), k + 1, None)
            return self._drop_self(found, k)
        rows = np.asarray(rows)
        allowed = np.ones(self.n, dtype=bool)
        if exclude is not None:
            allowed[exclude] = False
        k = min(k, int(allowed.sum()))
        if k == 0:
            return np.zeros((rows.size, 0), dtype=np.int64)
        return self._search(rows, k, None if exclude is None else allowed)

    def _drop_self(self, found: np.ndarray, k: int) -> np.ndarray:
        if self.exact:  # as exact search returns it: the sample itself first
            return found[:, 1:]
        own = found == np.arange(self.n)[:, None]
        # the sample's own column if it was found, else the farthest one, is left out
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(self.n), drop] = False
        return found[keep].reshape(self.n, k)

    def _search(self, rows: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        if self.exact:
            from sklearn.neighbors import NearestNeighbors

            admissible = np.arange(self.n) if allowed is None else np.flatnonzero(allowed)
            space = self.X if allowed is None else self.X[admissible]
            _, found = NearestNeighbors(n_neighbors=k).fit(space).kneighbors(self.X[rows])
            return admissible[found]
        return self._search_index(rows, k, allowed)

    def _build(self) -> Any:
        import faiss

        rng = np.random.default_rng(self.random_state)
        d = self.X.shape[1]
        sample = self._block(self.X[np.sort(rng.choice(self.n, min(self.n, 20_000), replace=False))])
        pca = None
        if d > self.dims:  # the top principal components of a sample, applied a block at a time
            pca = faiss.PCAMatrix(d, self.dims)
            pca.train(sample)
            d = self.dims

        def reduce(block: np.ndarray) -> np.ndarray:
            return block if pca is None else pca.apply(block)

        self.Z = np.empty((self.n, d), dtype=np.float32)
        for start in range(0, self.n, 1 << 16):
            self.Z[start : start + (1 << 16)] = reduce(self._block(self.X[start : start + (1 << 16)]))
        nlist = int(np.clip(round(np.sqrt(self.nprobe * self.n)), 1, self.n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        index.cp.seed = self.random_state
        index.cp.niter = 10
        # k-means cells from a sample of 40 rows per cell, as faiss advises
        index.train(self.Z[np.sort(rng.choice(self.n, min(self.n, 40 * nlist), replace=False))])
        index.add(self.Z)
        return index

    def _block(self, rows: np.ndarray) -> np.ndarray:
        """Rows as the index reads them: float32, contiguous, of unit length for cosine."""
        rows = _unit(rows) if self.metric == "cosine" else rows
        return np.ascontiguousarray(rows, dtype=np.float32)

    def _search_index(self, rows: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        import faiss

        if self._index is None:
            self._index = self._build()
        index = self._index
        bitmap = None if allowed is None else np.packbits(allowed, bitorder="little")
        found = np.full((rows.size, k), -1, dtype=np.int64)
        todo = np.arange(rows.size)
        nprobe = min(self.nprobe, index.nlist)
        selector = None if bitmap is None else faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(bitmap))
        while todo.size:
            params = faiss.SearchParametersIVF()
            params.nprobe = nprobe
            if selector is not None:
                params.sel = selector
            for start in range(0, todo.size, 1 << 14):
                part = todo[start : start + (1 << 14)]
                queries = self.Z[rows[part]]
                found[part] = index.search(queries, k, params=params)[1]
            if nprobe >= index.nlist:
                break
            todo = todo[(found[todo] < 0).any(axis=1)]
            nprobe = min(4 * nprobe, index.nlist)
        if (found < 0).any():  # every cell was read: fewer admissible samples than k
            raise ValueError(f"asked for {k} neighbours among fewer admissible samples")
        return found


def label_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Votes per class of each row of neighbour labels: ``(N, k)`` labels → ``(N, n_classes)`` counts."""
    rows = np.repeat(np.arange(labels.shape[0]), labels.shape[1])
    counts = np.zeros((labels.shape[0], n_classes), dtype=np.int64)
    np.add.at(counts, (rows, labels.ravel()), 1)
    return counts


def exclusion_vote(
    search: NeighbourSearch,
    y: np.ndarray,
    members: np.ndarray,
    n_classes: int,
    k: int,
    *,
    also: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-NN vote on each member's class among the samples outside ``members`` and ``also``.

    Returns each member's voted label, the vote's majority share, and the
    neighbours that voted (one row per member).
    """
    exclude = members if also is None or also.size == 0 else np.union1d(members, also)
    neighbours = search.query(members, k, exclude=exclude)
    counts = label_counts(y[neighbours], n_classes)
    return counts.argmax(axis=1), counts.max(axis=1) / neighbours.shape[1], neighbours


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
