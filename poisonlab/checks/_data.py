"""Small seeded datasets the checks run on: every task and modality, well separated."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.data.graph import KnowledgeGraph

#: Labels of the classification sets: the built-in attacks' default source (1) and
#: targets (7 for a targeted flip, 0 for backdoors) exist, and few classes keep the
#: checks fast.
LABELS = (0, 1, 7)
N_CLASSES = len(LABELS)
PER_CLASS = 20


def toy_dataset(task: str, modality: str, *, seed: int = 0, per_class: int = PER_CLASS) -> Dataset:
    """A separable set of the given task and modality (image: N×1×8×8 in [0, 1])."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        X = rng.uniform(size=(60, 5)).astype(np.float32)
        y = X @ np.arange(1.0, 6.0) + 0.05 * rng.standard_normal(60)
        return Dataset.from_arrays(X, y, name=f"toy_{modality}_regression", task="regression")
    index = np.repeat(np.arange(N_CLASSES), per_class)
    if modality == "image":
        # each class lights up its own pixel block, plus noise
        pixels = 0.1 * rng.uniform(size=(len(index), 1, 8, 8))
        for c in range(N_CLASSES):
            pixels[index == c, 0, 2 * c : 2 * c + 2, 2 * c : 2 * c + 2] += 0.8
        X = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    else:
        centres = 4.0 * rng.standard_normal((N_CLASSES, 6))
        X = (centres[index] + rng.standard_normal((len(index), 6))).astype(np.float32)
    order = rng.permutation(len(index))
    y = np.asarray(LABELS)[index]
    sources = np.array(["a", "b", "c"])[np.arange(len(y)) % 3]
    return Dataset.from_arrays(X[order], y[order], source=sources, name=f"toy_{modality}_classification")


def other_data(tasks: tuple[str, ...], modalities: tuple[str, ...]) -> list[Dataset]:
    """Toy sets whose task or modality is outside what a component declares it takes."""
    out = []
    for task, modality in (
        ("classification", "image"),
        ("classification", "tabular"),
        ("regression", "tabular"),
    ):
        if task not in tasks or modality not in modalities:
            out.append(toy_dataset(task, modality))
    return out


def accepted_data(tasks: tuple[str, ...], modalities: tuple[str, ...]) -> list[Dataset]:
    """Toy sets of every task and modality a component declares it takes."""
    return [
        toy_dataset(task, modality)
        for task, modality in (
            ("classification", "image"),
            ("classification", "tabular"),
            ("regression", "tabular"),
        )
        if task in tasks and modality in modalities
    ]


def toy_graph() -> tuple[KnowledgeGraph, np.ndarray]:
    """A small regular knowledge graph and one held-out fact its structure implies.

    Twelve entities on a ring: ``next`` links each to the following one, ``prev`` is its
    inverse, and ``peer`` links the members of each group of four both ways. The fact
    ``(e0, next, e1)`` is left out of the graph and returned as the target a model
    should rank highly and an attack should aim at.
    """
    n = 12
    entities = tuple(f"e{i}" for i in range(n))
    facts = [(i, 0, (i + 1) % n) for i in range(n)] + [((i + 1) % n, 1, i) for i in range(n)]
    facts += [(i, 2, j) for i in range(n) for j in range(n) if i != j and i // 4 == j // 4]
    target = np.array([0, 0, 1])
    triples = np.array([f for f in facts if f != (0, 0, 1)], dtype=np.int64)
    return KnowledgeGraph(triples, entities, ("next", "prev", "peer"), "toy_graph"), target
