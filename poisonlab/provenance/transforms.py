"""Recorded transformations: a named, parameterised change to a version's samples.

Each transform is a pure function ``(X, y, ids, **params) -> (X, y, ids)``. The
ledger records its name, its parameters and the SHA-256 of its source code
(:func:`code_hash`), so a version can be explained ("standardised with these
means and scales by this code") and reproduced from its input version.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from poisonlab.errors import ConfigError, UnknownNameError

__all__ = ["TRANSFORMS", "code_hash", "deduplicate", "normalise", "run_transform"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def normalise(X: np.ndarray, y: np.ndarray, ids: np.ndarray, *, method: str = "standard") -> Arrays:
    """Scale every feature: ``standard`` (zero mean, unit variance) or ``minmax`` (into [0, 1]).

    Constant features are left at zero. The output is float32; the fitted statistics
    are part of the result's provenance through the input version they derive from.
    """
    Xf = np.asarray(X, dtype=np.float64)
    if method == "standard":
        centre, scale = Xf.mean(axis=0), Xf.std(axis=0)
    elif method == "minmax":
        centre, scale = Xf.min(axis=0), Xf.max(axis=0) - Xf.min(axis=0)
    else:
        raise ConfigError(f"normalise: method must be 'standard' or 'minmax', got {method!r}")
    scale = np.where(scale > 0, scale, 1.0)
    return ((Xf - centre) / scale).astype(np.float32), y, ids


def deduplicate(X: np.ndarray, y: np.ndarray, ids: np.ndarray, *, keep: str = "first") -> Arrays:
    """Drop samples whose features and label repeat an earlier (``first``) or later (``last``) sample.

    Exact byte equality: near-duplicates are a detector's job, not a transform's.
    """
    if keep not in ("first", "last"):
        raise ConfigError(f"deduplicate: keep must be 'first' or 'last', got {keep!r}")
    n = X.shape[0]
    rows = np.ascontiguousarray(X).reshape(n, -1).view(np.uint8)
    labels = np.ascontiguousarray(y).reshape(n, -1).view(np.uint8)
    keys = np.concatenate([rows, labels], axis=1)
    order = np.arange(n) if keep == "first" else np.arange(n)[::-1]
    _, first = np.unique(keys[order], axis=0, return_index=True)
    chosen = np.sort(order[first])
    return X[chosen], y[chosen], ids[chosen]


TRANSFORMS: dict[str, Callable[..., Arrays]] = {"normalise": normalise, "deduplicate": deduplicate}


def code_hash(name: str) -> str:
    """SHA-256 over the transform's source code: what the ledger records as "the code that did it"."""
    return hashlib.sha256(inspect.getsource(_lookup(name)).encode()).hexdigest()


def run_transform(name: str, X: np.ndarray, y: np.ndarray, ids: np.ndarray, params: dict[str, Any]) -> Arrays:
    """Apply transform ``name`` with ``params``; unknown parameters are a :class:`ConfigError`."""
    fn = _lookup(name)
    accepted = set(inspect.signature(fn).parameters) - {"X", "y", "ids"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"{name} has no parameter {unknown[0]!r}; its parameters are: {', '.join(sorted(accepted))}"
        )
    return fn(X, y, ids, **params)


def _lookup(name: str) -> Callable[..., Arrays]:
    if name not in TRANSFORMS:
        raise UnknownNameError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name]
