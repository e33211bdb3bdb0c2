"""Conformance checks for ledger transforms: ``transform(X, y, ids) -> (X, y, ids)``.

The contract is :class:`~poisonlab.provenance.transforms.Transform`'s: the output is
a batch the ledger accepts, the call is deterministic and leaves its input alone,
the tags ``changes_features``, ``changes_labels`` and ``drops_samples`` bound what
it may change, and ``params()`` is JSON that rebuilds the transform. The checks run
on two small batches holding exact repeats: a tabular one with integer ids and an
image-shaped one with string ids.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from poisonlab.checks._base import Check, expect, run_checks
from poisonlab.errors import DataError
from poisonlab.registry import Entry

__all__ = ["check_transform", "yield_transform_checks"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
_DEFAULT_TAGS: dict[str, Any] = {"changes_features": False, "changes_labels": False, "drops_samples": False}


def _batches() -> dict[str, Arrays]:
    """Two seeded batches with repeated samples (rows 6 and 7 repeat rows 0 and 1, labels included)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 12).astype(np.int64)
    X[6:8], y[6:8] = X[0:2], y[0:2]
    images = rng.uniform(size=(10, 1, 2, 2))
    labels = np.arange(10) % 2
    images[5], labels[5] = images[2], labels[2]
    return {
        "tabular": (X, y, np.arange(100, 112)),
        "images": (images, labels, np.array([f"s-{i}" for i in range(10)])),
    }


def _factory(transform: Any) -> tuple[Callable[..., Any], Any, dict[str, Any], str]:
    """The factory that rebuilds it, one instance, the declared tags, and a name for messages."""
    if isinstance(transform, Entry):
        return transform.factory, transform.create(), dict(transform.tags), transform.name
    if inspect.isclass(transform):
        cls, instance = transform, transform()
    else:
        cls, instance = type(transform), transform
    declared = {key: getattr(cls, key) for key in _DEFAULT_TAGS if hasattr(cls, key)}
    return cls, instance, declared, cls.__name__


def yield_transform_checks(transform: Any, *, tags: dict[str, Any] | None = None) -> Iterator[Check]:
    """Every check of the transform contract.

    Parameters
    ----------
    transform : Entry, class or instance
        A :data:`~poisonlab.provenance.transforms.TRANSFORMS` entry (built with its
        defaults), a transform class (built without arguments) or an instance; the
        class's ``changes_features``, ``changes_labels`` and ``drops_samples``
        attributes are its tags.
    tags : dict, optional
        Tags that override the declared ones.
    """
    factory, instance, declared, name = _factory(transform)
    t = {**_DEFAULT_TAGS, **declared, **(tags or {})}
    for label, batch in _batches().items():
        where = f"{name}.{label}"
        yield Check(f"{where}.output_is_a_valid_batch", partial(_valid, instance, batch))
        yield Check(f"{where}.changes_only_what_its_tags_say", partial(_keeps, instance, batch, t))
        yield Check(f"{where}.deterministic", partial(_deterministic, instance, batch))
        yield Check(f"{where}.does_not_mutate_input", partial(_no_mutation, instance, batch))
        yield Check(f"{where}.params_rebuild_it", partial(_round_trip, factory, instance, batch))
    yield Check(f"{name}.code_hash_is_recordable", partial(_code_hash, instance))


def check_transform(transform: Any, *, tags: dict[str, Any] | None = None) -> list[str]:
    """Run every check of :func:`yield_transform_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_transform_checks(transform, tags=tags))


def _call(instance: Any, batch: Arrays) -> Arrays:
    out = instance(*(a.copy() for a in batch))
    expect(
        isinstance(out, tuple) and len(out) == 3 and all(isinstance(a, np.ndarray) for a in out),
        f"returns {type(out).__name__}, not a tuple of three arrays (X, y, ids)",
    )
    return out  # type: ignore[no-any-return]


def _valid(instance: Any, batch: Arrays) -> None:
    from poisonlab.provenance.hashing import check_arrays, check_unique_ids

    X, y, ids = _call(instance, batch)
    try:
        check_arrays(X, y, ids)
        check_unique_ids(ids)
    except DataError as exc:
        expect(False, f"the ledger would refuse its output: {exc}")
    expect(len(ids) > 0, "its output holds no samples")
    expect(X.shape[1:] == batch[0].shape[1:], f"samples of shape {X.shape[1:]}, not {batch[0].shape[1:]}")


def _keeps(instance: Any, batch: Arrays, tags: dict[str, Any]) -> None:
    X, y, ids = _call(instance, batch)
    X0, y0, ids0 = batch
    if not tags["drops_samples"]:
        expect(np.array_equal(ids, ids0), "the ids changed, but its tags say it keeps every sample")
    where = {value: k for k, value in enumerate(ids0.tolist())}
    rows = [where.get(value, -1) for value in ids.tolist()]
    # no tag lets a transform invent samples: each output id names an input row
    expect(min(rows, default=0) >= 0, "its output holds ids its input lacks")
    expect(rows == sorted(rows), "the samples it keeps are no longer in their input order")
    known, source = np.arange(len(rows)), np.array(rows, dtype=np.int64)
    if not tags["changes_features"]:
        same = X.dtype == X0.dtype and np.array_equal(X[known], X0[source])
        expect(same, "features changed, but its tags say changes_features=False")
    if not tags["changes_labels"]:
        expect(np.array_equal(y[known], y0[source]), "labels changed, but its tags say changes_labels=False")


def _deterministic(instance: Any, batch: Arrays) -> None:
    a, b = _call(instance, batch), _call(instance, batch)
    same = all(x.dtype == z.dtype and x.tobytes() == z.tobytes() for x, z in zip(a, b, strict=True))
    expect(same, "two calls on the same input give different bytes")


def _no_mutation(instance: Any, batch: Arrays) -> None:
    given = tuple(a.copy() for a in batch)
    instance(*given)
    expect(all(np.array_equal(a, b) for a, b in zip(given, batch, strict=True)), "it wrote into its input")


def _round_trip(factory: Callable[..., Any], instance: Any, batch: Arrays) -> None:
    from poisonlab.provenance.chain import canonical_json

    params = instance.params()
    expect(isinstance(params, dict), f"params() returns {type(params).__name__}, not a dict")
    try:
        recorded = json.loads(canonical_json(params))
    except (TypeError, ValueError) as exc:
        expect(False, f"params() is not JSON the ledger can record: {exc}")
    rebuilt = factory(**recorded)
    a, b = _call(instance, batch), _call(rebuilt, batch)
    same = all(x.dtype == z.dtype and x.tobytes() == z.tobytes() for x, z in zip(a, b, strict=True))
    expect(same, f"rebuilt from its recorded params {recorded} it does something else")


def _code_hash(instance: Any) -> None:
    from poisonlab.provenance.store import is_digest
    from poisonlab.provenance.transforms import code_hash

    try:
        digest = code_hash(instance)
    except (OSError, TypeError) as exc:  # inspect.getsource: no source to hash
        expect(False, f"its source code cannot be read to record a code hash ({exc})")
    expect(is_digest(digest), f"code hash {digest!r} is not a SHA-256 hex digest")
