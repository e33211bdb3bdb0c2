"""A batch on its way into the ledger, handed over a block of rows at a time.

:meth:`Ledger.add_batch <poisonlab.provenance.Ledger.add_batch>` takes a
:class:`BatchReader`: the batch's size, dtypes and ids up front, then its features
and labels in consecutive blocks. :class:`ArrayBatch` wraps arrays already in
memory; :func:`poisonlab.provenance.io.open_batch` reads a file, streaming an
``.npz`` so that a batch larger than memory can be added.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from poisonlab.provenance.chain import schema_of
from poisonlab.provenance.hashing import check_arrays


class BatchReader:
    """What the ledger reads from a batch: subclasses set the attributes and implement :meth:`blocks`.

    Attributes
    ----------
    n : int
        Number of samples.
    x_dtype, y_dtype : numpy.dtype
        The dtypes stored (bit-exact, byte order included).
    x_shape : tuple of int
        The per-sample shape of the features.
    ids : numpy.ndarray
        Every sample id (integers or unicode strings), in order.
    """

    n: int
    x_dtype: np.dtype
    x_shape: tuple[int, ...]
    y_dtype: np.dtype
    ids: np.ndarray

    def blocks(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(X, y)`` of consecutive blocks of at most ``rows`` samples, in order."""
        raise NotImplementedError

    @property
    def row_bytes(self) -> int:
        return self.x_dtype.itemsize * math.prod(self.x_shape) + self.y_dtype.itemsize

    def schema(self) -> dict[str, Any]:
        """The batch's schema (:func:`~poisonlab.provenance.chain.schema_of`)."""
        X = np.empty((0, *self.x_shape), dtype=self.x_dtype)
        return schema_of(X, np.empty(0, dtype=self.y_dtype), self.ids)

    def close(self) -> None:
        """Release what the reader holds open."""

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArrayBatch(BatchReader):
    """A batch already in memory; the arrays are checked as :func:`.hashing.check_arrays` does."""

    def __init__(self, X: object, y: object, ids: object) -> None:
        self._X, self._y, self.ids = check_arrays(X, y, ids)
        self.n = int(self._X.shape[0])
        self.x_dtype, self.x_shape, self.y_dtype = self._X.dtype, self._X.shape[1:], self._y.dtype

    def blocks(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, self.n, rows):
            yield self._X[start : start + rows], self._y[start : start + rows]
