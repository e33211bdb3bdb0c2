"""Recorded transforms: named, parameterised changes to a version's samples, by name in :data:`TRANSFORMS`.

A transform is an object built with keyword-only parameters and called on a
version's arrays: ``transform(X, y, ids) -> (X, y, ids)``. The contract
(:class:`Transform`, checked by ``poisonlab.checks.check_transform``):

* the output is a valid ledger batch: numeric ``X`` with the input's per-sample
  shape, 1-D numeric ``y``, unique integer or string ``ids``, at least one sample;
* it is deterministic (the same input gives the same bytes) and never writes to its
  input;
* :meth:`Transform.params` is a JSON dict that rebuilds it:
  ``TRANSFORMS.create(name, **t.params())`` does exactly what ``t`` does. The ledger
  records those parameters with the SHA-256 of the class's source (:func:`code_hash`),
  so a version can be explained ("min-max scaled by this code") and reproduced from
  its input version.

Tags say what a transform may change: ``changes_features`` (``X`` values),
``changes_labels`` (``y`` values) and ``drops_samples`` (the output holds fewer
samples, each id keeping its row); a transform tagged ``False`` keeps that part as
it is, which the checks hold it to.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from poisonlab.errors import ConfigError
from poisonlab.registry import Registry

if TYPE_CHECKING:
    from poisonlab.provenance.ledger import Ledger
    from poisonlab.provenance.records import Version

__all__ = [
    "TRANSFORMS",
    "TRANSFORM_TAGS",
    "Deduplicate",
    "Normalise",
    "Transform",
    "apply_transform",
    "code_hash",
    "deduplicate",
    "normalise",
    "run_transform",
]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class Transform(ABC):
    """A recorded change to a version's samples (see the module docstring for the contract)."""

    #: Whether the transform may change feature values.
    changes_features: ClassVar[bool] = False
    #: Whether it may change label values.
    changes_labels: ClassVar[bool] = False
    #: Whether it may drop samples (the rest keep their rows).
    drops_samples: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        """The transformed ``(X, y, ids)``; the inputs are left as they are."""

    def params(self) -> dict[str, Any]:
        """The keyword parameters that rebuild this transform (its constructor's, by name)."""
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}


class Normalise(Transform):
    """Scale every feature: ``standard`` (zero mean, unit variance) or ``minmax`` (into [0, 1]).

    Constant features are left at zero. The output is float32; the fitted statistics
    are part of the result's provenance through the input version they derive from.

    Parameters
    ----------
    method : {"standard", "minmax"}
        The scaling.
    """

    changes_features = True

    def __init__(self, *, method: str = "standard") -> None:
        if method not in ("standard", "minmax"):
            raise ConfigError(f"normalise: method must be 'standard' or 'minmax', got {method!r}")
        self.method = method

    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        Xf = np.asarray(X, dtype=np.float64)
        if self.method == "standard":
            centre, scale = Xf.mean(axis=0), Xf.std(axis=0)
        else:
            centre, scale = Xf.min(axis=0), Xf.max(axis=0) - Xf.min(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        return ((Xf - centre) / scale).astype(np.float32), y, ids


class Deduplicate(Transform):
    """Drop samples whose features and label repeat an earlier (``first``) or later (``last``) sample.

    Exact byte equality: near-duplicates are a detector's job, not a transform's.

    Parameters
    ----------
    keep : {"first", "last"}
        Which of the repeats stays.
    """

    drops_samples = True

    def __init__(self, *, keep: str = "first") -> None:
        if keep not in ("first", "last"):
            raise ConfigError(f"deduplicate: keep must be 'first' or 'last', got {keep!r}")
        self.keep = keep

    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        n = X.shape[0]
        rows = np.ascontiguousarray(X).reshape(n, -1).view(np.uint8)
        labels = np.ascontiguousarray(y).reshape(n, -1).view(np.uint8)
        keys = np.concatenate([rows, labels], axis=1)
        order = np.arange(n) if self.keep == "first" else np.arange(n)[::-1]
        _, first = np.unique(keys[order], axis=0, return_index=True)
        chosen = np.sort(order[first])
        return X[chosen], y[chosen], ids[chosen]


#: The tags every transform declares (class attributes of :class:`Transform`).
TRANSFORM_TAGS: dict[str, Any] = {
    "changes_features": Transform.changes_features,
    "changes_labels": Transform.changes_labels,
    "drops_samples": Transform.drops_samples,
}
TRANSFORMS: Registry[Transform] = Registry("transform", tags=TRANSFORM_TAGS, title="ledger transforms")
TRANSFORMS.add("normalise", Normalise, "Scale every feature: standard (z-score) or minmax (into [0, 1])")
TRANSFORMS.add(
    "deduplicate", Deduplicate, "Drop exact repeats (features and label) keeping the first or last"
)


def code_hash(transform: str | Transform | type[Transform]) -> str:
    """SHA-256 over the transform class's source code: what the ledger records as "the code that did it"."""
    source: Any = TRANSFORMS.get(transform).factory if isinstance(transform, str) else transform
    cls = source if inspect.isclass(source) else type(source)
    return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()


def run_transform(name: str, X: np.ndarray, y: np.ndarray, ids: np.ndarray, params: dict[str, Any]) -> Arrays:
    """Apply transform ``name`` built with ``params``; unknown parameters are a :class:`ConfigError`."""
    return TRANSFORMS.create(name, **params)(X, y, ids)


def apply_transform(
    ledger: Ledger,
    name: str,
    params: dict[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> Version:
    """Apply transform ``name`` to the head version of ``ledger`` and record the result as the next version.

    The event records the name, every parameter that rebuilds the transform
    (defaults included) and :func:`code_hash`.

    Raises
    ------
    UnknownNameError
        If no transform is called ``name``.
    ConfigError
        On parameters the transform does not take or refuses, or an empty ledger or head version.
    LedgerError
        If another writer moved the head while the transform ran.
    """
    transform = TRANSFORMS.create(name, **(params or {}))
    head = ledger.head()
    if head.n == 0:  # every sample quarantined: there is nothing to transform, and no statistics
        raise ConfigError(f"version {head.number} holds no samples, so there is nothing to {name}")
    X, y, ids, _ = ledger.arrays(head)
    X2, y2, ids2 = transform(X, y, ids)
    return ledger.transform(
        name, transform.params(), X2, y2, ids2, code_hash=code_hash(transform), actor=actor
    )


def normalise(X: np.ndarray, y: np.ndarray, ids: np.ndarray, *, method: str = "standard") -> Arrays:
    """:class:`Normalise` as a function (kept for callers of the old function API)."""
    return Normalise(method=method)(X, y, ids)


def deduplicate(X: np.ndarray, y: np.ndarray, ids: np.ndarray, *, keep: str = "first") -> Arrays:
    """:class:`Deduplicate` as a function (kept for callers of the old function API)."""
    return Deduplicate(keep=keep)(X, y, ids)
