"""Readers for user data: ``.npz`` (never unpickled), ``.csv``, ``.parquet``, image folders."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from poisonlab.data.builtin import DATASETS
from poisonlab.data.dataset import TASKS, Dataset, Task
from poisonlab.data.graph import GRAPHS
from poisonlab.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TABLE_SUFFIXES = {".csv", ".parquet", ".pq"}


def load_dataset(
    spec: str,
    *,
    label_col: str | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    task: Task | None = None,
    **params: object,
) -> Dataset:
    """Load a registered dataset by name, or a user file/folder by path.

    ``task`` says whether a file's target is class labels or a regression response;
    ``None`` means classification, except for an ``.npz`` that records its task
    (poisonlab writes one). A built-in dataset has a fixed task.
    """
    if task is not None and task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if spec in DATASETS:
        dataset = DATASETS.create(spec, **params)
        if task is not None and dataset.task != task:
            raise DataError(f"{spec} is a {dataset.task} dataset, not {task}")
        return dataset
    path = Path(spec)
    if spec in GRAPHS and not path.exists():
        raise DataError(
            f"{spec} is a knowledge graph, not a table or images: graph attacks run from "
            "`poisonlab attack kg_* --target-fact ...` and from Python (poisonlab.data.load_graph); "
            "a run config does not take graphs yet"
        )
    if params:
        raise DataError(f"{spec}: parameters {sorted(params)} only apply to built-in datasets")
    if not path.exists():
        if path.suffix or "/" in spec:
            raise DataError(f"{spec}: no such file or folder")
        known = ", ".join(DATASETS.names())
        raise DataError(f"unknown dataset {spec!r}; built-in: {known}; or give a path to a file")
    if path.is_dir():
        if task == "regression":
            raise DataError(f"{spec}: an image folder holds classes, not a regression target")
        return read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path, task=task)
    if suffix in TABLE_SUFFIXES:
        return read_table(path, label_col=label_col, id_col=id_col, source_col=source_col, task=task)
    raise DataError(f"{spec}: unsupported file type {suffix!r} (use .npz, .csv, .parquet or a folder)")


def read_npz(path: Path, *, task: Task | None = None) -> Dataset:
    """Arrays ``X``, ``y`` and optional ``ids``, ``source``, ``task``; loaded with ``allow_pickle=False``.

    An explicit ``task`` wins over the one the file records.
    """
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: malformed npz: not a zip archive of arrays")
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = {"X", "y"} - names
            if missing:
                raise DataError(f"{path}: npz lacks array(s) {sorted(missing)}; found {sorted(names)}")
            arrays = {k: archive[k] for k in ("X", "y", "ids", "source", "task", "class_names") if k in names}
            not_arrays = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
            if not_arrays:
                raise DataError(f"{path}: malformed npz: {not_arrays} are not .npy arrays")
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: npz holds object arrays, which poisonlab never unpickles") from exc
        raise DataError(f"{path}: malformed npz: {exc}") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: malformed npz: {exc}") from exc
    if task is None:
        task = recorded_task(arrays.get("task"), path)
    return Dataset.from_arrays(
        arrays["X"],
        arrays["y"],
        ids=arrays.get("ids"),
        source=arrays.get("source"),
        name=path.stem,
        task=task or "classification",
        class_names=npz_class_names(arrays.get("class_names"), path),
    )


def recorded_task(value: np.ndarray | None, path: Path) -> Task:
    """The task an ``.npz`` records in its ``task`` array (a 0-d string), classification if none."""
    recorded = str(value) if value is not None and value.ndim == 0 else "classification"
    if recorded not in TASKS:
        raise DataError(f"{path}: unknown task {recorded!r} recorded in the file")
    return recorded  # type: ignore[return-value]


def npz_class_names(value: np.ndarray | None, path: Path) -> tuple[str, ...]:
    """An ``.npz``'s ``class_names``: a 1-D array of strings, or nothing."""
    if value is None:
        return ()
    if value.ndim != 1 or value.dtype.kind != "U":
        raise DataError(
            f"{path}: class_names must be a 1-D array of strings, got {value.dtype} {value.shape}"
        )
    return tuple(str(v) for v in value)


def read_table(
    path: Path,
    *,
    label_col: str | None,
    id_col: str | None = None,
    source_col: str | None = None,
    task: Task | None = None,
) -> Dataset:
    """A CSV or Parquet table; every column but label/id/source must be numeric."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        else:
            frame = pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed table: {str(exc).splitlines()[0]}") from exc
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{path}: cannot read table: {str(exc).splitlines()[0]}") from exc
    if frame.shape[0] == 0:
        raise DataError(f"{path}: the table has no rows")
    if label_col is None:
        raise DataError(f"{path}: give the label column (--label-col); columns: {list(frame.columns)[:20]}")
    for role, col in (("label", label_col), ("id", id_col), ("source", source_col)):
        if col is not None and col not in frame.columns:
            raise DataError(f"{path}: no {role} column {col!r}; columns: {list(frame.columns)[:20]}")
    used = [c for c in (label_col, id_col, source_col) if c is not None]
    # the poison mask `poisonlab attack --out X.csv` writes beside the data is never a feature
    features = frame.drop(columns=[*used, *([POISON_MASK] if POISON_MASK in frame.columns else [])])
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides {used}")
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DataError(f"{path}: feature column(s) {non_numeric[:5]} are not numeric")
    labels = frame[label_col]
    if labels.isna().any():
        raise DataError(f"{path}: label column {label_col!r} has missing values")
    if not pd.api.types.is_numeric_dtype(labels):
        kind = "numbers" if task == "regression" else "integers"
        raise DataError(f"{path}: label column {label_col!r} must hold {kind}, found {labels.iloc[0]!r}")
    return Dataset.from_arrays(
        features.to_numpy(dtype=np.float32),
        labels.to_numpy(),
        ids=None if id_col is None else frame[id_col].to_numpy().astype(str),
        source=None if source_col is None else frame[source_col].to_numpy().astype(str),
        name=path.stem,
        task=task or "classification",
        feature_names=[str(c) for c in features.columns],
    )


def read_image_folder(path: Path, *, size: tuple[int, int] | None = None) -> Dataset:
    """One subfolder per class; images are resized to the first image's size, values in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in path.iterdir() if p.is_dir())
    if len(class_dirs) < 2:
        raise DataError(f"{path}: an image folder needs one subfolder per class (at least two)")
    # subfolders named by integers ("0", "7") keep them as labels; other names are
    # numbered in sorted order; either way the folder names are the class names
    if all(_is_int(d.name) for d in class_dirs):
        class_dirs.sort(key=lambda d: int(d.name))
        label_of = {d: int(d.name) for d in class_dirs}
    else:
        label_of = {d: k for k, d in enumerate(class_dirs)}
    if len(set(label_of.values())) != len(class_dirs):
        raise DataError(f"{path}: two subfolders name the same integer label")
    files: list[tuple[Path, int]] = []
    for class_dir in class_dirs:
        label = label_of[class_dir]
        files += [(f, label) for f in sorted(class_dir.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{path}: no images found in its class subfolders")
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as img:
                images.append(img.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{f}: not a readable image ({exc})") from exc
    mode = "L" if all(img.mode in ("L", "1", "I", "I;16") for img in images) else "RGB"
    size = size or images[0].size
    arrays = [np.asarray(img.convert(mode).resize(size), dtype=np.float32) / 255.0 for img in images]
    X = np.stack(arrays)
    X = X[:, None] if mode == "L" else X.transpose(0, 3, 1, 2)
    labels = np.array([k for _, k in files])
    ids = np.array([str(f.relative_to(path)) for f, _ in files])
    # the classes that hold images, in label order, keep their folder's name
    present = sorted({k for _, k in files})
    names = {label_of[d]: d.name for d in class_dirs}
    return Dataset.from_arrays(X, labels, ids=ids, name=path.name, class_names=[names[k] for k in present])


def _is_int(text: str) -> bool:
    return text.isascii() and text.lstrip("-").isdigit() and text not in ("", "-")


#: The column (CSV) or array (.npz) that marks the rows an attack poisoned.
POISON_MASK = "poison_mask"


def write_csv(path: Path, dataset: Dataset, poison_mask: np.ndarray | None = None) -> None:
    """Write tabular ``dataset`` as CSV that ``--label-col label --id-col id`` reads back.

    Feature columns keep their names (``x0``, ``x1``, … where the data had none, and
    for images, flattened); then ``label`` (in the user's label space), ``id``,
    ``source`` where the data has one, and ``poison_mask`` (true for poisoned rows),
    which poisonlab never reads as a feature.
    """
    import pandas as pd

    flat = dataset.X.reshape(len(dataset), -1)
    names = list(dataset.feature_names) or [f"x{i}" for i in range(flat.shape[1])]
    extra = ["label", "id", *(["source"] if dataset.source is not None else [])]
    if poison_mask is not None:
        extra.append(POISON_MASK)
    clash = sorted(set(names) & set(extra))
    if clash:
        raise DataError(f"{dataset.name}: a feature column is named {clash[0]!r}; write .npz instead")
    frame = pd.DataFrame(flat, columns=names)
    frame["label"] = dataset.original_labels()
    frame["id"] = dataset.ids
    if dataset.source is not None:
        frame["source"] = dataset.source
    if poison_mask is not None:
        frame[POISON_MASK] = np.asarray(poison_mask, dtype=bool)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_npz(path: Path, dataset: Dataset, **extra: np.ndarray) -> None:
    """Write a dataset (labels in the user's label space) plus extra arrays, without pickle."""
    arrays: dict[str, np.ndarray] = {
        "X": dataset.X,
        "y": dataset.original_labels(),
        "ids": dataset.ids,
    }
    if dataset.source is not None:
        arrays["source"] = dataset.source
    if dataset.is_regression:
        arrays["task"] = np.array(dataset.task)
    if dataset.class_names:
        arrays["class_names"] = np.array(dataset.class_names)
    arrays.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
