"""Conformance checks for models (fit → predict) and datasets (what a built-in loads as)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from poisonlab.checks._base import Check, expect, run_checks
from poisonlab.checks._data import accepted_data
from poisonlab.data.dataset import Dataset
from poisonlab.registry import Entry

__all__ = [
    "check_dataset",
    "check_model",
    "check_sklearn_estimator",
    "yield_dataset_checks",
    "yield_model_checks",
]


def yield_model_checks(model: Any, *, tags: dict[str, Any] | None = None) -> Iterator[Check]:
    """Every check a model's tags call for, on each modality it declares it takes.

    ``model`` is a registry entry, or a zero-argument factory of fresh models plus
    ``tags`` (``task``, ``modalities``, ``torch``). Models are built with
    ``random_state=0`` where the factory takes one.
    """
    if isinstance(model, Entry):
        entry = model
        tags = {**dict(entry.tags), **(tags or {})}
        seeded = "random_state" in entry.parameters()

        def make() -> Any:
            return entry.create(**({"random_state": 0} if seeded else {}))
    else:
        make = model
    t = {"task": "classification", "modalities": ("image", "tabular"), "torch": False, **(tags or {})}
    name = str(getattr(model, "name", getattr(make, "__name__", "model")))
    if "graph" in t["modalities"]:
        yield from _graph_model_checks(make, name)
        return
    datasets = accepted_data((t["task"],), tuple(t["modalities"]))
    fits = _Fits(make)
    yield Check(f"{name}.declares_data_it_takes", lambda: expect(datasets, "its tags accept no data at all"))
    for data in datasets:
        where = f"{name}.{data.name}"
        yield Check(f"{where}.fit_returns_self_and_predicts", partial(_fit_predict, fits, data))
        yield Check(f"{where}.learns_a_separable_set", partial(_learns, fits, data))
        yield Check(f"{where}.same_seed_same_predictions", partial(_deterministic, fits, data))
        yield Check(f"{where}.does_not_mutate_input", partial(_no_mutation, fits, data))
        if t["task"] == "classification" and t["torch"]:
            yield Check(f"{where}.probabilities_and_representations", partial(_torch_outputs, fits, data))


def _graph_model_checks(make: Callable[[], Any], name: str) -> Iterator[Check]:
    """A link-prediction model trains on a graph and ranks the fact its structure implies."""
    from poisonlab.checks._data import toy_graph
    from poisonlab.models.kge import filtered_ranks

    graph, target = toy_graph()
    fitted: list[Any] = []

    def fit() -> Any:
        if not fitted:
            fitted.append(make().fit(graph))
        return fitted[0]

    def returns_self() -> None:
        model = make()
        expect(model.fit(graph) is model, "fit(graph) did not return the model")

    def learns() -> None:
        ranks = filtered_ranks(fit(), graph.triples, graph.triples)
        mrr = float(np.mean(1.0 / ranks))
        expect(mrr >= 0.5, f"training-fact MRR {mrr:.2f} < 0.5 on a regular toy graph")
        held_out = filtered_ranks(fit(), target[None], graph.triples)[0]
        expect(float(held_out.mean()) <= graph.n_entities / 2, f"the implied fact ranks {held_out} of 12")

    def deterministic() -> None:
        a, b = make().fit(graph), make().fit(graph)
        expect(
            np.allclose(a.score(graph.triples), b.score(graph.triples)), "the same seed scored differently"
        )

    def unmutated() -> None:
        before = graph.triples.copy()
        make().fit(graph)
        expect(np.array_equal(before, graph.triples), "fit() wrote into the graph")

    yield Check(f"{name}.fit_returns_self", returns_self)
    yield Check(f"{name}.learns_a_regular_graph", learns)
    yield Check(f"{name}.same_seed_same_scores", deterministic)
    yield Check(f"{name}.does_not_mutate_input", unmutated)
    yield Check(f"{name}.refuses_a_table", lambda: _refuses_table(make))


def _refuses_table(make: Callable[[], Any]) -> None:
    from poisonlab.checks._data import toy_dataset
    from poisonlab.errors import ConfigError

    data = toy_dataset("classification", "tabular")
    try:
        make().fit(data)
    except (ConfigError, TypeError):
        return
    expect(False, "a graph model trained on a table")


def check_model(model: Any, *, tags: dict[str, Any] | None = None) -> list[str]:
    """Run every check of :func:`yield_model_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_model_checks(model, tags=tags))


class _Fits:
    """Builds and fits one model per (dataset, run); keeps it and what fitting wrote into."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self._memo: dict[tuple[str, int], tuple[Any, Any, np.ndarray, bool]] = {}

    def get(self, data: Dataset, run: int = 0) -> tuple[Any, Any, np.ndarray, bool]:
        """(model, what fit returned, predictions on the training set, whether input was mutated)."""
        key = (data.name, run)
        if key not in self._memo:
            X, y = data.X.copy(), data.y.copy()
            model = self.make()
            returned = model.fit(data.X, data.y)
            pred = np.asarray(model.predict(data.X))
            mutated = not (np.array_equal(X, data.X) and np.array_equal(y, data.y))
            self._memo[key] = (model, returned, pred, mutated)
        return self._memo[key]


def _fit_predict(fits: _Fits, data: Dataset) -> None:
    model, returned, pred, _ = fits.get(data)
    expect(returned is model, "fit() does not return the model itself")
    expect(pred.shape == (len(data),), f"{pred.shape} predictions for {len(data)} rows")
    if not data.is_regression:
        expect(set(np.unique(pred)) <= set(np.unique(data.y)), "predicts labels it was never trained on")
    else:
        expect(np.isfinite(pred).all(), "predictions are not all finite")


def _learns(fits: _Fits, data: Dataset) -> None:
    pred = fits.get(data)[2]
    if data.is_regression:
        r2 = 1 - np.mean((data.y - pred) ** 2) / np.var(data.y)
        expect(r2 > 0.5, f"training R² {r2:.2f} on a near-linear set")
    else:
        acc = float(np.mean(pred == data.y))
        expect(acc > 0.8, f"training accuracy {acc:.2f} on a separable 3-class set (chance 0.33)")


def _deterministic(fits: _Fits, data: Dataset) -> None:
    a, b = fits.get(data)[2], fits.get(data, run=1)[2]
    expect(np.array_equal(a, b), "two models built alike, fitted alike, predict differently")


def _no_mutation(fits: _Fits, data: Dataset) -> None:
    expect(not fits.get(data)[3], "fit() or predict() wrote into its input")


def _torch_outputs(fits: _Fits, data: Dataset) -> None:
    model = fits.get(data)[0]
    proba = np.asarray(model.predict_proba(data.X))
    expect(proba.shape == (len(data), data.n_classes), f"predict_proba has shape {proba.shape}")
    expect(np.allclose(proba.sum(axis=1), 1.0, atol=1e-4), "probabilities do not sum to 1")
    reps = np.asarray(model.representations(data.X))
    expect(reps.ndim == 2 and reps.shape[0] == len(data), f"representations have shape {reps.shape}")


def check_sklearn_estimator(estimator: Any) -> None:
    """scikit-learn's own ``check_estimator``, for estimators that claim its compatibility."""
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(estimator)


# --------------------------------------------------------------------------- datasets


def yield_dataset_checks(entry: Any) -> Iterator[Check]:
    """A registered dataset loads as its tags say: task, modality, the one Dataset contract."""
    name = entry.name
    yield Check(f"{name}.loads_as_its_tags_say", lambda: _dataset_tags(entry))
    yield Check(f"{name}.arrays_are_valid_and_read_only", lambda: _dataset_arrays(entry.create()))


def check_dataset(entry: Any) -> list[str]:
    """Run every check of :func:`yield_dataset_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_dataset_checks(entry))


def _dataset_tags(entry: Any) -> None:
    data = entry.create()
    expect(data.task == entry.tag("task"), f"loads as {data.task}, tagged {entry.tag('task')}")
    expect(
        data.modality == entry.tag("modality"), f"loads as {data.modality}, tagged {entry.tag('modality')}"
    )


def _dataset_arrays(data: Dataset) -> None:
    n = len(data)
    expect(data.X.dtype == np.float32 and data.X.shape[0] == n, f"X is {data.X.dtype} {data.X.shape}")
    expect(np.isfinite(data.X).all(), "X holds NaN or inf")
    expect(data.ids.shape == (n,) and np.unique(data.ids).size == n, "ids are not one unique id per row")
    if data.modality == "image":
        expect(
            data.X.ndim == 4 and 0 <= data.X.min() and data.X.max() <= 1, "images are not N×C×H×W in [0, 1]"
        )
    if not data.is_regression:
        expect(
            data.y.dtype.kind == "i" and set(np.unique(data.y)) == set(range(data.n_classes)), "bad labels"
        )
        expect(len(data.classes) == data.n_classes >= 2, f"{len(data.classes)} classes")
    for array in (data.X, data.y, data.ids):
        expect(not array.flags.writeable, "a dataset array is writeable (datasets are immutable)")
