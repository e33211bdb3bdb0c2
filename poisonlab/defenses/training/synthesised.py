"""Training on synthesised poisons: random triggers with the right labels, so triggers stop paying off.

A backdoor works because a trigger predicts the target class in the training data.
This defense adds copies of training samples stamped with *random* triggers of
known families, each keeping its true label, so that the model sees trigger-like
artefacts on every class and learns to ignore them. It is adversarial training with
poisoned data in the sense of data augmentation against backdoors (Borgnia et al.,
"Strong Data Augmentation Sanitizes Poisoning and Backdoor Attacks Without an
Accuracy Tradeoff", ICASSP 2021, who use augmentations rather than triggers; Geiping
et al., "What Doesn't Kill You Makes You Robust(er): How to Adversarially Train
against Data Poisoning", 2021, who synthesise poisons during training).

Families: ``patch`` (a random pattern of 2–5 pixels square at a random place),
``blend`` (a random noise image blended at α ∈ [0.1, 0.3]) and, for tabular data,
``feature`` (one to three random features set to a value beyond their observed
range). What it buys against a trigger family it never synthesised is measured by
``benchmarks/bench_robust_training.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.training.base import MakeModel, TrainedModel

__all__ = ["FAMILIES", "SynthesisedPoisons", "synthesise"]

FAMILIES = ("patch", "blend", "feature")
IMAGE_FAMILIES = ("patch", "blend")


def _patch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    _, h, w = x.shape
    size = int(rng.integers(2, min(5, h, w) + 1))
    row, col = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    out = x.copy()
    out[:, row : row + size, col : col + size] = rng.random((size, size)) > 0.5
    return out


def _blend(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = rng.uniform(0.1, 0.3)
    return np.clip((1 - alpha) * x + alpha * rng.random(x.shape), 0.0, 1.0)


def synthesise(
    X: np.ndarray, n: int, families: tuple[str, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``X``, each with a fresh random trigger of a random family; (rows, their sources)."""
    source = rng.integers(0, X.shape[0], size=n)
    out = np.array(X[source], dtype=np.float32, copy=True)
    if X.ndim == 4:
        for i in range(n):
            family = families[int(rng.integers(len(families)))]
            out[i] = _patch(out[i], rng) if family == "patch" else _blend(out[i], rng)
        return out, source
    flat = out.reshape(n, -1)
    low, high = X.reshape(X.shape[0], -1).min(axis=0), X.reshape(X.shape[0], -1).max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    for i in range(n):
        cols = rng.choice(flat.shape[1], size=int(rng.integers(1, min(3, flat.shape[1]) + 1)), replace=False)
        beyond = rng.random(cols.size) < 0.5
        flat[i, cols] = np.where(beyond, high[cols] + 0.5 * span[cols], low[cols] - 0.5 * span[cols])
    return out, source


class SynthesisedPoisons:
    """Train on the data plus ``share`` × its size of correctly labelled, randomly triggered copies.

    Parameters
    ----------
    share : float
        Synthesised rows per training row (0.5 adds half as many rows again).
    families : tuple of str
        Trigger families to synthesise on images (``patch``, ``blend``); tabular data
        always get ``feature`` triggers.
    """

    def __init__(self, *, share: float = 0.5, families: tuple[str, ...] | list[str] = IMAGE_FAMILIES) -> None:
        if not 0 < share <= 4:
            raise ValueError(f"share must lie in (0, 4], got {share!r}")
        families = tuple(families)
        unknown = [f for f in families if f not in IMAGE_FAMILIES]
        if not families or unknown:
            raise ValueError(f"families must be chosen from {', '.join(IMAGE_FAMILIES)}, got {families!r}")
        self.share = share
        self.families = families

    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel:
        n = max(1, round(self.share * len(train)))
        extra, source = synthesise(train.X, n, self.families, rng)
        X = np.concatenate([np.asarray(train.X, dtype=np.float32), extra])
        y = np.concatenate([train.y, train.y[source]])
        model: Any = make_model(int(rng.integers(2**31 - 1)))
        model.fit(X, y)
        return TrainedModel(model, extras={"n_synthesised": n})
