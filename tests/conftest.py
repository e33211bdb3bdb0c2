"""Shared fixtures: tiny datasets, helpers to pick one per attack, README examples, a multi-cloud table.

The datasets are built once per session (``functools.cache``) and are immutable, so
sharing them between tests is safe; tests that must not see shared state take copies.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from poisonlab.data import Dataset, load_dataset
from poisonlab.registry import Entry


@functools.cache
def tiny_image() -> Dataset:
    """The first 300 digits (≈30 per class): 300×1×8×8 float32 in [0, 1], 10 classes."""
    return load_dataset("digits").subset(np.arange(300))


@functools.cache
def tiny_tabular() -> Dataset:
    """A seeded, well-separated 3-class tabular set: 200×8 float32."""
    return load_dataset("synthetic", n_samples=200, n_features=8, n_informative=4, n_classes=3, class_sep=2.0)


@functools.cache
def tiny_regression() -> Dataset:
    """A seeded linear regression set: 200×8 float32, continuous response."""
    return load_dataset("synthetic_regression", n_samples=200, n_features=8, n_informative=8)


@pytest.fixture(scope="session")
def image_data() -> Dataset:
    return tiny_image()


@pytest.fixture(scope="session")
def tabular_data() -> Dataset:
    return tiny_tabular()


def modalities_of(entry: Entry[Any]) -> tuple[str, ...]:
    """The modalities an attack entry declares (its factory's ``modalities`` class attribute)."""
    return tuple(entry.factory.modalities)  # type: ignore[attr-defined]


def dataset_for(entry: Entry[Any], modality: str | None = None) -> Dataset:
    """A tiny dataset the attack accepts: ``modality`` if given, else images when allowed."""
    allowed = modalities_of(entry)
    if modality is None:
        modality = "image" if "image" in allowed else allowed[0]
    if modality not in allowed:
        raise ValueError(f"{entry.name} does not accept {modality} data")
    if "classification" not in entry.factory.tasks:  # type: ignore[attr-defined]
        return tiny_regression()
    return tiny_image() if modality == "image" else tiny_tabular()


def attack_params(entry: Entry[Any], dataset: Dataset) -> dict[str, Any]:
    """Parameters making an attack valid on ``dataset``: class labels it lacks are replaced.

    Attacks take class labels (``source``, ``target``) in the data's label space with
    defaults such as ``source=1, target=7``; on a dataset without those labels we pick
    distinct labels that exist, keeping the defaults wherever they already fit.
    """
    defaults = entry.parameters()
    params: dict[str, Any] = {}
    labels = list(dataset.classes)
    taken: set[int] = set()
    for role in ("target", "source"):
        if role not in defaults or defaults[role] is None:  # None: the attack picks the class itself
            continue
        default = defaults[role]
        if default in labels and default not in taken:
            value = default
        else:
            value = next(c for c in labels if c not in taken)
            params[role] = value
        taken.add(value)
    # attacks that optimise against a surrogate: a few steps keep the battery fast
    for key, cheap in CHEAP_OPTIMISATION.items():
        if key in defaults:
            params[key] = cheap
    return params


#: Parameters of the gradient-based attacks, small enough for the contract battery.
CHEAP_OPTIMISATION = {"steps": 4, "restarts": 1, "surrogate_epochs": 3, "retrain": 1}


def aimed(attack: Any, dataset: Dataset) -> Any:
    """A targeted-instance attack aimed at an input outside ``dataset``; other attacks unchanged."""
    if getattr(attack, "targets_instance", False):
        return attack.aim(np.clip(dataset.X[0] + 0.05, 0.0, 1.0))
    return attack


@pytest.fixture(scope="module")
def single_threaded() -> Iterator[None]:
    """Pin torch and BLAS to one thread: results depend on the thread count, and so does speed
    on a shared two-core machine."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def run_readme_example(marker: str) -> dict[str, Any]:
    """Execute the one ```python block of the README that contains ``marker``; return its namespace."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    [example] = [b for b in blocks if marker in b]
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)  # our own README, not user data
    return namespace


def multimodal_table(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of two clouds each, on raw scales: no trigger's rows form a cloud of their own."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=1200,
        n_features=12,
        n_informative=6,
        n_classes=3,
        n_clusters_per_class=2,
        flip_y=0.0,
        class_sep=2.0,
        random_state=seed,
    )
    return X * np.logspace(0, 2, X.shape[1]), y
