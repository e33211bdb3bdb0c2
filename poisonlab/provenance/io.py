"""Reading a batch for the ledger: the user's arrays exactly as they are in the file.

An ``.npz`` is read without pickle and its ``X``, ``y`` and ``ids`` are kept
bit-exact (dtype, byte order and shape), so that a version exported later holds the
same bytes. Other inputs (CSV, Parquet, image folders, built-in datasets) go
through :func:`poisonlab.data.load_dataset`; their labels are kept in the user's
label space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from poisonlab.data import load_dataset
from poisonlab.data.dataset import Dataset, Task

__all__ = ["as_dataset", "load_batch"]


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
