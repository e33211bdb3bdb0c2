"""Reading a batch for the ledger: the user's arrays exactly as they are in the file.

An ``.npz`` is read without pickle and its ``X``, ``y`` and ``ids`` are kept
bit-exact (dtype, byte order and shape), so that a version exported later holds the
same bytes. :func:`open_batch` streams an ``.npz`` larger than one block (stored or
deflated members alike, see :mod:`.npz`): it is checked as any poisonlab dataset is
(finite features, labels of the right kind, unique ids) a block at a time while the
ledger hashes and stores it. Other inputs (CSV, Parquet, image folders, built-in
datasets) go through :func:`poisonlab.data.load_dataset`, whole; their labels are
kept in the user's label space.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from poisonlab.data import load_dataset
from poisonlab.data.dataset import TASKS, Dataset, Task, _integer_labels
from poisonlab.data.readers import npz_class_names, recorded_task
from poisonlab.errors import DataError
from poisonlab.provenance.npz import NpzReader, block_rows
from poisonlab.provenance.reader import ArrayBatch, BatchReader

__all__ = ["NpzBatch", "as_dataset", "load_batch", "open_batch"]


def load_batch(
    spec: str,
    *,
    label_col: str | None = None,
    id_col: str | None = None,
    task: Task | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, ids)`` of a data file or built-in dataset, as the ledger should store them.

    The data are validated like any poisonlab dataset (finite features, unique ids,
    labels of the right kind); a file that fails gets a :class:`DataError` naming it.
    """
    path = Path(spec)
    if path.suffix.lower() != ".npz" or not path.is_file():
        data = load_dataset(spec, label_col=label_col, id_col=id_col, task=task)
        return data.X, data.original_labels(), data.ids
    # Validate through the normal reader first: one error path for every bad file.
    from poisonlab.data.readers import read_npz

    read_npz(path, task=task)
    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
        ids = archive["ids"] if "ids" in archive.files else np.arange(y.shape[0])
    return X, y, ids


def as_dataset(
    X: np.ndarray, y: np.ndarray, ids: np.ndarray, source: np.ndarray, *, name: str, task: Task | None = None
) -> Dataset:
    """A poisonlab dataset over a ledger version's arrays, with each sample's source.

    Without ``task``, float labels are read as a regression response and integer
    labels as classes.
    """
    if task is None:
        task = "regression" if np.asarray(y).dtype.kind == "f" else "classification"
    return Dataset.from_arrays(X, y, ids=ids, source=source, name=name, task=task)


def open_batch(
    spec: str,
    *,
    label_col: str | None = None,
    id_col: str | None = None,
    task: Task | None = None,
    rows: int | None = None,
) -> BatchReader:
    """A reader over a data file for :meth:`Ledger.add_batch <poisonlab.provenance.Ledger.add_batch>`.

    An ``.npz`` whose features fill more than one block of ``rows`` samples is
    streamed (:class:`NpzBatch`); anything else is read whole by :func:`load_batch`.
    Either way the ledger stores the same bytes.
    """
    path = Path(spec)
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            batch = NpzBatch(path, task=task)
        except DataError:  # load_batch below names the problem as every other reader does
            pass
        else:
            if batch.n > block_rows(batch.row_bytes, rows):
                return batch
            batch.close()
    return ArrayBatch(*load_batch(spec, label_col=label_col, id_col=id_col, task=task))


class NpzBatch(BatchReader):
    """An ``.npz`` batch (``X``, ``y``, optional ``ids`` and ``task``) read a block at a time.

    The checks of :func:`poisonlab.data.readers.read_npz` apply, with its messages:
    the shapes, dtypes, ids and recorded task up front; finite features, images in
    [0, 1], labels of the task's kind and at least two classes as the blocks go by.
    """

    def __init__(self, path: Path, *, task: Task | None = None) -> None:
        self.path = path
        self._name = path.stem
        self._reader = self._open(path)
        try:
            self._setup(task)
        except BaseException:
            self._reader.close()
            raise

    @staticmethod
    def _open(path: Path) -> NpzReader:
        try:
            reader = NpzReader(path)
        except DataError as exc:
            raise DataError(f"{path}: malformed npz: {exc}") from None
        missing = {"X", "y"} - set(reader.names)
        if missing:
            reader.close()
            raise DataError(f"{path}: npz lacks array(s) {sorted(missing)}; found {sorted(reader.names)}")
        return reader

    def _member(self, name: str):  # type: ignore[no-untyped-def]
        try:
            return self._reader.member(name)
        except DataError as exc:
            if "never unpickles" in str(exc):
                raise DataError(
                    f"{self.path}: npz holds object arrays, which poisonlab never unpickles"
                ) from None
            raise DataError(f"{self.path}: malformed npz: {exc}") from None

    def _setup(self, task: Task | None) -> None:
        name = self._name
        self._X, self._y = self._member("X"), self._member("y")
        if task is None:
            value = self._member("task").rest() if "task" in self._reader.names else None
            task = recorded_task(value, self.path)
        if task not in TASKS:
            raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task
        if "class_names" in self._reader.names:
            npz_class_names(self._member("class_names").rest(), self.path)
        X_shape, y_shape = self._X.shape, self._y.shape
        if len(y_shape) != 1:
            raise DataError(f"{name}: labels must be a 1-D array, got shape {y_shape}")
        if X_shape and y_shape[0] != X_shape[0]:
            raise DataError(f"{name}: X has {X_shape[0]} rows but y has {y_shape[0]}")
        if y_shape[0] == 0:
            raise DataError(f"{name}: the dataset has no rows")
        if len(X_shape) not in (2, 3, 4):
            raise DataError(
                f"{name}: features must be N×d (tabular) or N×C×H×W (images), got shape {X_shape}"
            )
        dtype = self._X.dtype
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise DataError(f"{name}: features must be real numbers, got dtype {dtype}")
        y_dtype = self._y.dtype
        numeric = np.issubdtype(y_dtype, np.integer) or np.issubdtype(y_dtype, np.floating)
        if task == "regression":
            if y_dtype == np.bool_ or not numeric:
                raise DataError(f"{name}: a regression target must be numeric, got dtype {y_dtype}")
        elif not (numeric or y_dtype == np.bool_):
            raise DataError(f"{name}: labels must be integers, got dtype {y_dtype}")
        self.n = X_shape[0]
        if "ids" in self._reader.names:
            ids = self._member("ids")
            with_ids = ids.rest()
            if with_ids.shape != (self.n,):
                raise DataError(f"{name}: {with_ids.shape[0] if with_ids.ndim else 0} ids for {self.n} rows")
            self.ids = with_ids
        else:
            self.ids = np.arange(self.n)
        if self.ids.dtype.kind not in "iuU":
            raise DataError(f"{name}: ids must be integers or strings")
        increasing = self.ids.dtype.kind in "iu" and bool(np.all(self.ids[1:] > self.ids[:-1]))
        if not increasing and np.unique(self.ids).shape[0] != self.n:
            raise DataError(f"{name}: ids are not unique")
        self.x_dtype, self.x_shape, self.y_dtype = dtype, X_shape[1:], y_dtype

    def blocks(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        name, done, first_label, classes = self._name, 0, None, 1
        while done < self.n:
            X, y = self._X.read(rows), self._y.read(rows)
            try:
                values = X.astype(np.float32)  # as a dataset holds them: beyond float32's range is inf
            except (OverflowError, ValueError) as exc:
                raise DataError(f"{name}: features cannot be read as numbers ({exc})") from None
            bad = ~np.isfinite(values)
            if bad.any():
                row = done + int(np.argwhere(bad)[0][0])
                raise DataError(f"{name}: features contain NaN or inf (first in row {row})")
            if values.ndim in (3, 4) and (values.min() < 0.0 or values.max() > 1.0):
                raise DataError(f"{name}: image features must lie in [0, 1]")
            if self.task == "regression":
                finite = np.isfinite(y.astype(np.float64))
                if not finite.all():  # the row in the file, not in the block
                    row = done + int(np.argmin(finite))
                    raise DataError(f"{name}: the regression target contains NaN or inf (first in row {row})")
            else:
                _integer_labels(y, name)  # the dataset's own rule and message
            if self.task != "regression" and classes < 2 and y.size:
                first_label = y[0] if first_label is None else first_label
                classes += bool(np.any(y != first_label))
            done += X.shape[0]
            yield X, y
        if self.task != "regression" and classes < 2:
            raise DataError(f"{name}: needs at least two classes, found 1")

    def close(self) -> None:
        self._reader.close()
