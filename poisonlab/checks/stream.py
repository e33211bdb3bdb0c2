"""Conformance checks for the stream's online learners (warm_up → learn → predict).

The protocol is :class:`~poisonlab.stream.learners.Learner`. Each check runs on a
small separable set of every modality the learner's ``modalities`` tag names
(:func:`~poisonlab.checks._data.toy_dataset`, ten classes): the learner warms up on
the first five classes only and then learns from a stream holding all ten, so a
learner whose ``learn`` does nothing cannot pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from poisonlab.checks._base import Check, expect, run_checks
from poisonlab.checks._data import N_CLASSES, toy_dataset
from poisonlab.data.dataset import Dataset
from poisonlab.errors import NotFittedError
from poisonlab.registry import Entry

__all__ = ["check_learner", "yield_learner_checks"]

#: Passes over the streamed set: enough for the scikit-learn MLP, whose partial_fit takes one
#: Adam step per 200 samples however many epochs are laid end to end.
_EPOCHS = 40
_DEFAULT_TAGS: dict[str, Any] = {"modalities": ("image", "tabular"), "torch": False}


def _factory(learner: Any) -> tuple[Callable[[], Any], dict[str, Any], str]:
    """A zero-argument factory of fresh learners, the tags it declares, and a name for messages."""
    if isinstance(learner, Entry):
        entry = learner
        seeded = "random_state" in entry.parameters()
        return (
            lambda: entry.create(**({"random_state": 0} if seeded else {})),
            dict(entry.tags),
            entry.name,
        )
    declared = (
        {key: getattr(learner, key) for key in _DEFAULT_TAGS if hasattr(learner, key)}
        if inspect.isclass(learner)
        else {}
    )
    return learner, declared, str(getattr(learner, "__name__", type(learner).__name__))


def yield_learner_checks(learner: Any, *, tags: dict[str, Any] | None = None) -> Iterator[Check]:
    """Every check of the learner protocol, on each modality the learner declares it takes.

    Parameters
    ----------
    learner : Entry or callable
        A :data:`~poisonlab.stream.learners.LEARNERS` entry (built with
        ``random_state=0`` where it takes one), or a zero-argument factory of fresh
        learners: a class's ``modalities`` and ``torch`` attributes are its tags.
    tags : dict, optional
        Tags that override the declared ones.
    """
    make, declared, name = _factory(learner)
    t = {**_DEFAULT_TAGS, **declared, **(tags or {})}
    modalities = tuple(t["modalities"])
    runs = _Runs(make)
    yield Check(
        f"{name}.declares_data_it_takes", lambda: expect(modalities, "its tags accept no data at all")
    )
    for modality in modalities:
        data = toy_dataset("classification", modality)
        where = f"{name}.{modality}"
        yield Check(f"{where}.predict_before_warm_up_is_not_fitted", partial(_not_fitted, make, data))
        yield Check(f"{where}.predicts_labels_of_the_right_shape", partial(_labels, runs, data))
        yield Check(f"{where}.learns_from_the_stream", partial(_learns, runs, data))
        yield Check(f"{where}.same_seed_same_predictions", partial(_deterministic, runs, data))
        yield Check(f"{where}.does_not_mutate_input", partial(_no_mutation, runs, data))


def check_learner(learner: Any, *, tags: dict[str, Any] | None = None) -> list[str]:
    """Run every check of :func:`yield_learner_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_learner_checks(learner, tags=tags))


class _Run:
    """One learner warmed up on classes 0-4 and then streamed the whole set."""

    def __init__(self, make: Callable[[], Any], data: Dataset) -> None:
        seed_rows = np.flatnonzero(data.y < N_CLASSES // 2)
        X_seed, y_seed = data.X[seed_rows].copy(), data.y[seed_rows].copy()
        X, y = data.X.copy(), data.y.copy()
        given = (X_seed, y_seed, X, y)
        kept = tuple(a.copy() for a in given)
        rng = np.random.default_rng(0)
        self.learner = make()
        self.learner.warm_up(X_seed, y_seed, n_classes=N_CLASSES, rng=rng)
        self.learner.learn(X, y, epochs=_EPOCHS, rng=rng)
        self.predictions = np.asarray(self.learner.predict(X))
        self.mutated = not all(np.array_equal(a, b) for a, b in zip(given, kept, strict=True))


class _Runs:
    """Runs memoised per (dataset, run), so the checks of one learner share their training."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self._memo: dict[tuple[str, int], _Run] = {}

    def get(self, data: Dataset, run: int = 0) -> _Run:
        key = (data.name, run)
        if key not in self._memo:
            self._memo[key] = _Run(self.make, data)
        return self._memo[key]


def _not_fitted(make: Callable[[], Any], data: Dataset) -> None:
    learner = make()
    try:
        learner.predict(data.X[:3])
    except NotFittedError:
        return
    expect(False, "predict() before warm_up() did not raise NotFittedError")


def _labels(runs: _Runs, data: Dataset) -> None:
    pred = runs.get(data).predictions
    expect(pred.shape == (len(data),), f"{pred.shape} predictions for {len(data)} rows")
    expect(np.issubdtype(pred.dtype, np.integer), f"predictions of dtype {pred.dtype}, not class indices")
    expect(
        pred.size == 0 or (pred.min() >= 0 and pred.max() < N_CLASSES),
        f"predictions outside the classes 0..{N_CLASSES - 1}",
    )


def _learns(runs: _Runs, data: Dataset) -> None:
    pred = runs.get(data).predictions
    accuracy = float(np.mean(pred == data.y))
    late = data.y >= N_CLASSES // 2  # classes seen only in the stream, never in the warm-up
    late_accuracy = float(np.mean(pred[late] == data.y[late]))
    expect(accuracy > 0.5, f"accuracy {accuracy:.2f} on a separable 10-class set (chance 0.10)")
    expect(
        late_accuracy > 0.3,
        f"accuracy {late_accuracy:.2f} on the classes only the stream showed: learn() does not learn",
    )


def _deterministic(runs: _Runs, data: Dataset) -> None:
    a, b = runs.get(data).predictions, runs.get(data, run=1).predictions
    expect(np.array_equal(a, b), "two learners built alike, fed the same stream, predict differently")


def _no_mutation(runs: _Runs, data: Dataset) -> None:
    expect(not runs.get(data).mutated, "warm_up(), learn() or predict() wrote into its input")
