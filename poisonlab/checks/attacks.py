"""Conformance checks for attacks: the ``poison(dataset, budget, rng)`` contract and the tags."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, cast

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, resolve_budget
from poisonlab.checks._base import Check, expect, run_checks
from poisonlab.checks._data import accepted_data, other_data, toy_dataset, toy_graph
from poisonlab.data.dataset import Dataset
from poisonlab.data.graph import KnowledgeGraph
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.registry import Entry

__all__ = ["check_attack", "yield_attack_checks"]

RATE = 0.1


def _tags(attack: Attack, tags: dict[str, Any] | None) -> dict[str, Any]:
    keys = (
        "tasks",
        "modalities",
        "backdoor",
        "keeps_labels",
        "keeps_features",
        "needs_model",
        "targets_instance",
        "phase",
    )
    return {**{k: getattr(attack, k) for k in keys}, **(tags or {})}


def yield_attack_checks(attack: Attack | Any, *, tags: dict[str, Any] | None = None) -> Iterator[Check]:
    """Every check an attack's tags call for, on each kind of data it declares it takes.

    ``attack`` is an :class:`~poisonlab.attacks.base.Attack` instance, or a registry
    entry (built with its defaults, its tags taken from the entry).
    """
    if isinstance(attack, Entry):
        tags = {**dict(attack.tags), **(tags or {})}
        attack = attack.create()
    t = _tags(attack, tags)
    name = type(attack).__name__
    datasets = accepted_data(tuple(t["tasks"]), tuple(t["modalities"]))
    if t["phase"] == "inference":
        yield from _inference_checks(attack, name, datasets)
        return
    if "graph" in t["modalities"]:
        yield from _graph_checks(attack, name, t)
        return

    def for_each(fn: Callable[[Dataset], None]) -> Callable[[], None]:
        def run() -> None:
            for dataset in datasets:
                fn(dataset)

        return run

    yield Check(f"{name}.declares_data_it_takes", lambda: expect(datasets, "its tags accept no data at all"))
    yield Check(f"{name}.returns_exact_mask_within_budget", for_each(lambda d: _mask_and_budget(attack, d)))
    yield Check(f"{name}.does_not_mutate_input", for_each(lambda d: _no_mutation(attack, d)))
    yield Check(f"{name}.same_seed_same_poisons", for_each(lambda d: _deterministic(attack, d)))
    yield Check(f"{name}.keeps_ids_and_order", for_each(lambda d: _keeps_ids(attack, d)))
    if t["keeps_labels"]:
        yield Check(f"{name}.keeps_labels", for_each(lambda d: _keeps(attack, d, "y")))
    if t["keeps_features"]:
        yield Check(f"{name}.keeps_features", for_each(lambda d: _keeps(attack, d, "X")))
    if t["keeps_labels"] and hasattr(attack, "eps"):
        yield Check(f"{name}.stays_within_eps", for_each(lambda d: _within_eps(attack, d)))
    if t["targets_instance"]:
        yield Check(f"{name}.refuses_without_a_target", for_each(lambda d: _needs_aim(attack, d)))
    if t["backdoor"]:
        yield Check(f"{name}.plants_a_trigger", for_each(lambda d: _trigger(attack, d)))
    for other in other_data(tuple(t["tasks"]), tuple(t["modalities"])):
        yield Check(f"{name}.refuses_{other.name}", partial(_refuses, attack, other))


def _inference_checks(attack: Any, name: str, datasets: list[Dataset]) -> Iterator[Check]:
    """The contract of an inference-time attack: ``perturb(model, X, y, rng) -> X_adv``."""
    images = [d for d in datasets if d.modality == "image"]
    yield Check(f"{name}.declares_data_it_takes", lambda: expect(images, "its tags accept no image data"))
    victim = _Victim()
    yield Check(f"{name}.stays_in_its_ball_and_the_box", lambda: _in_ball(attack, victim))
    yield Check(f"{name}.lowers_true_class_probability", lambda: _lowers_confidence(attack, victim))
    yield Check(f"{name}.does_not_mutate_input", lambda: _perturb_no_mutation(attack, victim))
    yield Check(f"{name}.same_seed_same_inputs", lambda: _perturb_deterministic(attack, victim))
    yield Check(f"{name}.refuses_a_model_without_gradients", lambda: _refuses_sklearn(attack, victim))


class _Victim:
    """A small CNN trained once on the toy image set, with the inputs an attack perturbs."""

    def __init__(self) -> None:
        self._model: Any = None

    def get(self) -> tuple[Any, Dataset]:
        data = toy_dataset("classification", "image", seed=0)
        if self._model is None:
            from poisonlab.models import MODELS

            # few epochs: a victim with small margins, which every attack can move
            self._model = MODELS.create("cnn", epochs=3, random_state=0).fit(data.X, data.y)
        return self._model, data


def _in_ball(attack: Any, victim: _Victim) -> None:
    model, data = victim.get()
    X_adv = attack.perturb(model, data.X, data.y, 0)
    expect(X_adv.shape == data.X.shape, f"perturbed inputs have shape {X_adv.shape}")
    expect(X_adv.min() >= 0.0 and X_adv.max() <= 1.0, "perturbed images left [0, 1]")
    eps = getattr(attack, "eps", None)
    if eps is not None:
        delta = (X_adv - data.X).reshape(len(data), -1)
        size = (
            np.abs(delta).max(axis=1)
            if getattr(attack, "norm", "inf") == "inf"
            else np.linalg.norm(delta, axis=1)
        )
        expect(float(size.max()) <= eps + 1e-5, f"a perturbation of {size.max():.6f} exceeds eps={eps}")


def _lowers_confidence(attack: Any, victim: _Victim) -> None:
    model, data = victim.get()
    rows = np.arange(len(data))
    clean = float(np.mean(model.predict_proba(data.X)[rows, data.y]))
    attacked = float(np.mean(model.predict_proba(attack.perturb(model, data.X, data.y, 0))[rows, data.y]))
    expect(attacked < clean, f"true-class probability {attacked:.4f} under attack, not below {clean:.4f}")


def _perturb_no_mutation(attack: Any, victim: _Victim) -> None:
    model, data = victim.get()
    X = data.X.copy()
    attack.perturb(model, data.X, data.y, 0)
    expect(np.array_equal(X, data.X), "perturb() wrote into its inputs")


def _perturb_deterministic(attack: Any, victim: _Victim) -> None:
    model, data = victim.get()
    first, again = (attack.perturb(model, data.X, data.y, 3) for _ in range(2))
    expect(np.array_equal(first, again), "the same seed gave other perturbed inputs")


def _refuses_sklearn(attack: Any, victim: _Victim) -> None:
    from poisonlab.models import MODELS

    _, data = victim.get()
    model = MODELS.create("logreg").fit(data.X, data.y)
    try:
        attack.perturb(model, data.X, data.y, 0)
    except IncompatibleError:
        return
    expect(False, "attacked a scikit-learn model, which has no gradients, without IncompatibleError")


#: Facts a graph attack may change on the toy graph.
GRAPH_BUDGET = 4


def _graph_checks(attack: Any, name: str, t: dict[str, Any]) -> Iterator[Check]:
    """The contract on a knowledge graph: facts added or deleted, exactly reported, within budget."""
    graph, target = toy_graph()
    aimed = attack.aim(target) if t["targets_instance"] else attack

    def poison(seed: int = 0) -> PoisonResult:
        return aimed.poison(graph, GRAPH_BUDGET, np.random.default_rng(seed))

    def exact() -> None:
        result = poison()
        out = cast(KnowledgeGraph, result.dataset)
        removed = np.zeros((0, 3), dtype=np.int64) if result.removed is None else result.removed
        mask = np.asarray(result.poison_mask)
        expect(mask.dtype == bool and mask.shape == (len(out),), f"mask has {mask.dtype} {mask.shape}")
        expect(out.entities == graph.entities and out.relations == graph.relations, "the vocabulary changed")
        expect(
            result.n_poison <= GRAPH_BUDGET,
            f"changed {result.n_poison} facts with a budget of {GRAPH_BUDGET}",
        )
        expect(result.n_poison > 0, "changed no fact at all")
        new = ~graph.contains(out.triples)
        expect(
            np.array_equal(new, mask), "the mask does not mark exactly the facts that were not in the input"
        )
        expect(bool(graph.contains(removed).all()), "a removed fact was not in the input")
        expect(not out.contains(removed).any(), "a removed fact is still in the poisoned graph")
        kept = graph.triples[~np.isin(graph.keys(), graph.keys(removed))]
        expect(bool(out.contains(kept).all()), "a fact left the graph without being reported as removed")
        expect(not out.contains(target[None])[0], "the attack added its own target fact")

    def unmutated() -> None:
        before = graph.triples.copy()
        poison()
        expect(np.array_equal(before, graph.triples), "poison() wrote into its input")

    def deterministic() -> None:
        a, b = poison(3), poison(3)
        same = np.array_equal(
            cast(KnowledgeGraph, a.dataset).triples, cast(KnowledgeGraph, b.dataset).triples
        )
        expect(same, "the same seed gave different facts")

    def needs_aim() -> None:
        try:
            attack.poison(graph, GRAPH_BUDGET, np.random.default_rng(0))
        except ConfigError:
            return
        expect(False, "poisoned without a target fact (aim(fact) was never called)")

    def refuses(other: Dataset) -> None:
        try:
            aimed.poison(other, RATE, np.random.default_rng(0))
        except IncompatibleError:
            return
        expect(
            False, f"poisoned {other.name}, which its tags say it does not take, without IncompatibleError"
        )

    yield Check(f"{name}.changes_exactly_what_it_reports_within_budget", exact)
    yield Check(f"{name}.does_not_mutate_input", unmutated)
    yield Check(f"{name}.same_seed_same_poisons", deterministic)
    if t["targets_instance"]:
        yield Check(f"{name}.refuses_without_a_target", needs_aim)
    for other in other_data(tuple(t["tasks"]), tuple(t["modalities"])):
        yield Check(f"{name}.refuses_{other.name}", partial(refuses, other))


def check_attack(attack: Attack | Any, *, tags: dict[str, Any] | None = None) -> list[str]:
    """Run every check of :func:`yield_attack_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_attack_checks(attack, tags=tags))


def _poison(attack: Attack, dataset: Dataset, seed: int = 0) -> PoisonResult:
    if attack.targets_instance:  # aimed at an input that is not a training row
        other = toy_dataset(dataset.task, dataset.modality, seed=1)
        attack = attack.aim(other.X[0])  # type: ignore[attr-defined]
    return attack.poison(dataset, RATE, np.random.default_rng(seed))


def _within_eps(attack: Attack, dataset: Dataset) -> None:
    result = _poison(attack, dataset)
    eps = float(attack.eps)  # type: ignore[attr-defined]
    moved = float(np.max(np.abs(result.dataset.X - dataset.X), initial=0.0))
    expect(moved <= eps + 1e-6, f"a poison moved {moved:.6f} from its original, more than eps={eps}")
    if dataset.modality == "image":
        X = result.dataset.X
        expect(X.min() >= 0.0 and X.max() <= 1.0, "poisoned images left [0, 1]")


def _needs_aim(attack: Attack, dataset: Dataset) -> None:
    try:
        attack.poison(dataset, RATE, np.random.default_rng(0))
    except ConfigError:
        return
    expect(False, "poisoned without a target input (aim(x) was never called)")


def _changed_rows(before: Dataset, after: Dataset) -> np.ndarray:
    n = len(before)
    X_changed = np.any(before.X.reshape(n, -1) != after.X.reshape(n, -1), axis=1)
    return X_changed | (before.y != after.y)


def _mask_and_budget(attack: Attack, dataset: Dataset) -> None:
    result = _poison(attack, dataset)
    mask = np.asarray(result.poison_mask)
    expect(mask.dtype == bool and mask.shape == (len(dataset),), f"mask has {mask.dtype} {mask.shape}")
    expect(len(result.dataset) == len(dataset), f"{len(result.dataset)} rows returned for {len(dataset)}")
    expect(
        result.dataset.X.shape == dataset.X.shape and result.dataset.X.dtype == dataset.X.dtype,
        f"features changed shape or dtype: {result.dataset.X.shape} {result.dataset.X.dtype}",
    )
    budget = resolve_budget(RATE, len(dataset))
    expect(result.n_poison <= budget, f"poisoned {result.n_poison} rows with a budget of {budget}")
    changed = _changed_rows(dataset, result.dataset)
    expect(not (changed & ~mask).any(), f"{int((changed & ~mask).sum())} changed rows are not in the mask")
    expect(not (mask & ~changed).any(), f"{int((mask & ~changed).sum())} rows in the mask are unchanged")


def _no_mutation(attack: Attack, dataset: Dataset) -> None:
    X, y = dataset.X.copy(), dataset.y.copy()
    _poison(attack, dataset)
    expect(np.array_equal(X, dataset.X) and np.array_equal(y, dataset.y), "poison() wrote into its input")


def _deterministic(attack: Attack, dataset: Dataset) -> None:
    a, b = _poison(attack, dataset, 3), _poison(attack, dataset, 3)
    expect(np.array_equal(a.poison_mask, b.poison_mask), "the same seed chose different rows")
    expect(np.array_equal(a.dataset.X, b.dataset.X), "the same seed gave different features")
    expect(np.array_equal(a.dataset.y, b.dataset.y), "the same seed gave different labels")


def _keeps_ids(attack: Attack, dataset: Dataset) -> None:
    result = _poison(attack, dataset)
    expect(np.array_equal(result.dataset.ids, dataset.ids), "sample ids changed or were reordered")


def _keeps(attack: Attack, dataset: Dataset, field: str) -> None:
    result = _poison(attack, dataset)
    what = "labels" if field == "y" else "features"
    expect(np.array_equal(getattr(result.dataset, field), getattr(dataset, field)), f"{what} changed")


def _trigger(attack: Attack, dataset: Dataset) -> None:
    result = _poison(attack, dataset)
    expect(result.trigger is not None and result.target_class is not None, "no trigger or target class")
    assert result.trigger is not None  # narrowed for the type checker
    expect(0 <= int(result.target_class or 0) < max(dataset.n_classes, 1), "target class out of range")
    X = dataset.X[:5].copy()
    triggered = result.trigger.apply(X)
    expect(np.array_equal(X, dataset.X[:5]), "Trigger.apply wrote into its input")
    expect(
        triggered.shape == X.shape and triggered.dtype == X.dtype, "triggered inputs changed shape or dtype"
    )
    expect(not np.array_equal(triggered, X), "the trigger changes nothing")


def _refuses(attack: Attack, other: Dataset) -> None:
    try:
        _poison(attack, other)
    except IncompatibleError:
        return
    expect(False, f"poisoned {other.name}, which its tags say it does not take, without IncompatibleError")
