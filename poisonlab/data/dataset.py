"""The one dataset type every attack, model and detector consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from poisonlab.errors import DataError

Modality = Literal["image", "tabular"]
Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, targets, stable per-sample ids and an optional per-sample source.

    ``X`` is float32: ``N×C×H×W`` in ``[0, 1]`` for images, ``N×d`` for tabular data.
    For ``task="classification"`` ``y`` holds class indices ``0..K-1`` and
    ``classes[k]`` is the label the user's data used for class ``k`` (so files
    round-trip in the user's label space). For ``task="regression"`` ``y`` is a
    float64 response and ``classes`` is empty. The arrays are read-only: operations
    return new datasets instead of mutating this one.
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    source: np.ndarray | None = None
    name: str = "data"
    classes: tuple[int, ...] = field(default=())
    task: Task = "classification"
    #: a name for each class, aligned with ``classes`` (an image folder's subfolders); may be empty
    class_names: tuple[str, ...] = field(default=())
    #: a name for each feature column of tabular data (a CSV's header); may be empty
    feature_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        X = np.asarray(self.X)
        y = np.asarray(self.y)
        n = X.shape[0] if X.ndim else 0
        if X.ndim not in (2, 4):
            raise DataError(
                f"{self.name}: features must be N×d (tabular) or N×C×H×W (images), got shape {X.shape}"
            )
        if n == 0:
            raise DataError(f"{self.name}: the dataset has no rows")
        if y.ndim != 1 or y.shape[0] != n:
            raise DataError(f"{self.name}: X has {n} rows but y has {y.shape[0] if y.ndim else 0}")
        if self.feature_names and (X.ndim != 2 or len(self.feature_names) != X.shape[1]):
            raise DataError(
                f"{self.name}: {len(self.feature_names)} feature names for {X.shape[1:]} features"
            )
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise DataError(f"{self.name}: features must be real numbers, got dtype {X.dtype}")
        X = X.astype(np.float32, copy=False)
        bad = ~np.isfinite(X)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(
                f"{self.name}: features contain NaN or inf ({int(bad.sum())} values, first in row {row})"
            )
        if X.ndim == 4 and (X.min() < 0.0 or X.max() > 1.0):
            raise DataError(f"{self.name}: image features must lie in [0, 1]")
        if self.task == "regression":
            y = _regression_target(y, self.name)
            if self.classes:
                raise DataError(f"{self.name}: a regression dataset has no classes")
        elif self.task != "classification":
            raise DataError(f"{self.name}: task must be one of {', '.join(TASKS)}, got {self.task!r}")
        else:
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{self.name}: labels must be integer class indices, got dtype {y.dtype}")
            y = y.astype(np.int64, copy=False)
            n_classes = len(self.classes) if self.classes else int(y.max()) + 1
            if y.min() < 0 or y.max() >= n_classes:
                raise DataError(f"{self.name}: labels must lie in 0..{n_classes - 1}")
            if not self.classes:
                object.__setattr__(self, "classes", tuple(range(n_classes)))
        if self.class_names:
            if self.task == "regression" or len(self.class_names) != len(self.classes):
                raise DataError(
                    f"{self.name}: {len(self.class_names)} class names for {len(self.classes)} classes"
                )
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        ids = np.asarray(self.ids)
        if ids.shape != (n,):
            raise DataError(f"{self.name}: {ids.shape[0] if ids.ndim else 0} ids for {n} rows")
        if ids.dtype == object:
            raise DataError(f"{self.name}: ids must be integers or strings")
        if np.unique(ids).shape[0] != n:
            raise DataError(f"{self.name}: ids are not unique")
        if self.source is not None:
            source = np.asarray(self.source).astype(str)
            if source.shape != (n,):
                raise DataError(
                    f"{self.name}: {source.shape[0] if source.ndim else 0} source entries for {n} rows"
                )
            object.__setattr__(self, "source", _frozen(source))
        object.__setattr__(self, "X", _frozen(X))
        object.__setattr__(self, "y", _frozen(y))
        object.__setattr__(self, "ids", _frozen(ids))

    @classmethod
    def from_arrays(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        *,
        ids: np.ndarray | None = None,
        source: np.ndarray | None = None,
        name: str = "data",
        task: Task = "classification",
        class_names: tuple[str, ...] | list[str] | None = None,
        feature_names: tuple[str, ...] | list[str] | None = None,
    ) -> Dataset:
        """Build a dataset from user arrays.

        For classification any integer labels are mapped to ``0..K-1``; for
        regression ``y`` must be a numeric response. ``class_names[k]`` names the
        ``k``-th smallest label; ``feature_names`` the columns of tabular ``X``.
        """
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim == 3:  # N×H×W greyscale images
            X = X[:, None, :, :]
        if y.ndim != 1:
            raise DataError(f"{name}: labels must be a 1-D array, got shape {y.shape}")
        if X.ndim and y.shape[0] != X.shape[0]:
            raise DataError(f"{name}: X has {X.shape[0]} rows but y has {y.shape[0]}")
        if y.shape[0] == 0:
            raise DataError(f"{name}: the dataset has no rows")
        if ids is None:
            ids = np.arange(y.shape[0])
        if task == "regression":
            return cls(
                X=X,
                y=_regression_target(y, name),
                ids=np.asarray(ids),
                source=source,
                name=name,
                task=task,
                feature_names=tuple(feature_names or ()),
            )
        if task != "classification":
            raise DataError(f"{name}: task must be one of {', '.join(TASKS)}, got {task!r}")
        y = _integer_labels(y, name)
        classes, y_index = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise DataError(f"{name}: needs at least two classes, found {classes.shape[0]}")
        return cls(
            X=X,
            y=y_index,
            ids=np.asarray(ids),
            source=source,
            name=name,
            classes=tuple(int(c) for c in classes),
            class_names=tuple(class_names or ()),
            feature_names=tuple(feature_names or ()),
        )

    # -- derived facts -------------------------------------------------------
    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def modality(self) -> Modality:
        return "image" if self.X.ndim == 4 else "tabular"

    @property
    def n_features(self) -> int:
        return int(np.prod(self.X.shape[1:]))

    def original_labels(self, y: np.ndarray | None = None) -> np.ndarray:
        """Labels in the user's label space (``classes[y]``); the response itself for regression."""
        if self.is_regression:
            return self.y if y is None else y
        return np.asarray(self.classes, dtype=np.int64)[self.y if y is None else y]

    # -- operations returning new datasets ------------------------------------
    def subset(self, index: np.ndarray) -> Dataset:
        """Rows selected by an index or boolean mask, in that order."""
        index = np.asarray(index)
        return replace(
            self,
            X=self.X[index],
            y=self.y[index],
            ids=self.ids[index],
            source=None if self.source is None else self.source[index],
        )

    def with_arrays(self, *, X: np.ndarray | None = None, y: np.ndarray | None = None) -> Dataset:
        """A copy with new features and/or labels; ids, source and classes are kept."""
        return replace(
            self,
            X=self.X if X is None else X,
            y=self.y if y is None else y,
        )


def _regression_target(y: np.ndarray, name: str) -> np.ndarray:
    """A finite float64 response, or one clear error naming the first bad value."""
    if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        sample = _plain(y.ravel()[0]) if y.size else None
        raise DataError(f"{name}: a regression target must be numeric, found {sample!r} (dtype {y.dtype})")
    y = y.astype(np.float64)
    finite = np.isfinite(y)
    if not finite.all():
        raise DataError(
            f"{name}: the regression target contains NaN or inf (first in row {int(np.argmin(finite))})"
        )
    return y


def _integer_labels(y: np.ndarray, name: str) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        finite = np.isfinite(y)
        if finite.all() and np.array_equal(y, np.round(y)):
            return y.astype(np.int64)
        bad = y[~finite] if not finite.all() else y[y != np.round(y)]
        raise DataError(f"{name}: labels must be integers, found {_plain(bad[0])!r}")
    sample = _plain(y.ravel()[0]) if y.size else None
    raise DataError(f"{name}: labels must be integers, found {sample!r} (dtype {y.dtype})")


def _plain(value: object) -> object:
    """A numpy scalar as the Python value (so messages read ``0.5``, not ``np.float64(0.5)``)."""
    return value.item() if isinstance(value, np.generic) else value


def train_test_split(
    dataset: Dataset, *, test_size: float = 0.25, random_state: int = 0
) -> tuple[Dataset, Dataset]:
    """Seeded split, stratified by class for classification (every class keeps a sample on each side)."""
    from sklearn.model_selection import train_test_split as sk_split

    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size must lie in (0, 1), got {test_size}")
    if dataset.is_regression:
        if len(dataset) < 4:
            raise DataError(f"{dataset.name}: {len(dataset)} rows are too few to split")
        train_idx, test_idx = sk_split(
            np.arange(len(dataset)), test_size=test_size, random_state=random_state
        )
        return dataset.subset(np.sort(train_idx)), dataset.subset(np.sort(test_idx))
    counts = np.bincount(dataset.y, minlength=dataset.n_classes)
    if counts.min() < 2:
        k = int(np.argmin(counts))
        raise DataError(
            f"{dataset.name}: class {dataset.classes[k]} has {counts[k]} sample(s); "
            "a stratified split needs at least 2 per class"
        )
    index = np.arange(len(dataset))
    try:
        train_idx, test_idx = sk_split(
            index, test_size=test_size, random_state=random_state, stratify=dataset.y
        )
    except ValueError as exc:
        raise DataError(f"{dataset.name}: cannot split: {exc}") from exc
    return dataset.subset(np.sort(train_idx)), dataset.subset(np.sort(test_idx))
