"""Conformance checks for detectors (fit → score_samples → auto_flags) and defenses (apply)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from poisonlab.checks._base import Check, expect, run_checks
from poisonlab.checks._data import toy_dataset
from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.errors import DataError, IncompatibleError
from poisonlab.registry import Entry

__all__ = ["check_defense", "check_detector", "planted_case", "yield_defense_checks", "yield_detector_checks"]

N_POISON = 8
#: Classes of the planted case: enough for detectors that compare classes (auto's
#: targeted-relabelling part needs five or more).
N_CLASSES = 6
#: A detector must rank the planted poisons above clean samples at least this well.
MIN_AUROC = 0.6
#: ... and its own rule may flag at most this share of a clean set.
MAX_CLEAN_FLAGS = 0.15


def planted_case(
    task: str, *, poisoned: bool = True, by_source: bool = False, seed: int = 0
) -> tuple[Dataset, Evidence | None, np.ndarray]:
    """A toy set with ``N_POISON`` planted poisons that every family of detector can see.

    Classification: ``N_CLASSES`` classes in a 16-d representation space; each poison
    is a sample of another class relabelled as class 0, moved by a common offset (a
    trigger: its own cluster inside class 0), its out-of-sample probabilities still
    on its true class, its early losses near 0 (a shortcut learned at once), and all
    poisons sent by one source.
    Regression: responses of the poisons moved far off the linear fit. Returns the
    dataset, the evidence (``None`` for regression) and the true poison mask.

    ``by_source``: the case detectors that judge whole sources are built for: one
    source sends only poisons, ``2 × N_POISON`` samples with random wrong labels
    at their true class's place, which costs the other sources' held-out accuracy.
    """
    rng = np.random.default_rng(seed)
    if task == "regression":
        data = toy_dataset("regression", "tabular", seed=seed)
        mask = np.zeros(len(data), dtype=bool)
        if poisoned:
            mask[rng.choice(len(data), N_POISON, replace=False)] = True
        y = data.y + mask * 8.0
        return data.with_arrays(y=y), None, mask
    per = 14
    y_true = np.repeat(np.arange(N_CLASSES), per)
    centres = 6.0 * rng.standard_normal((N_CLASSES, 16))
    reps = centres[y_true] + rng.standard_normal((len(y_true), 16))
    mask = np.zeros(len(y_true), dtype=bool)
    if by_source:
        if poisoned:
            mask[rng.choice(len(y_true), 2 * N_POISON, replace=False)] = True
        wrong = (y_true + rng.integers(1, N_CLASSES, size=len(y_true))) % N_CLASSES
        y = np.where(mask, wrong, y_true)
    else:
        if poisoned:
            mask[rng.choice(np.flatnonzero(y_true != 0), N_POISON, replace=False)] = True
        y = np.where(mask, 0, y_true)
        reps[mask] += 4.0 * np.ones(16)
    probs = np.full((len(y), N_CLASSES), 0.02)
    probs[np.arange(len(y)), y_true] = 1.0 - 0.02 * (N_CLASSES - 1)
    # a flipped label keeps a high loss; a backdoor's shortcut is learned at once (low loss)
    clean_loss = np.abs(rng.normal(0.5, 0.1, size=(len(y), 3)))
    losses = np.where(mask[:, None], 2.0 if by_source else 0.01, clean_loss)
    sources = np.where(mask, "bad", np.array(["a", "b", "c"])[np.arange(len(y)) % 3])
    if not by_source:
        sources[~mask & (np.arange(len(y)) % 7 == 0)] = "bad"  # the bad source also sends clean rows
    X = reps.astype(np.float32)
    data = Dataset.from_arrays(X, y, source=sources, name="planted")
    evidence = Evidence(
        representations=reps,
        early_representations=reps.copy(),
        pred_probs=probs,
        losses=losses,
        inputs=(reps - reps.mean(axis=0)) / reps.std(axis=0),
    )
    return data, evidence, mask


def _auroc(mask: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(mask, scores))


def yield_detector_checks(detector: Detector | Any, *, tags: dict[str, Any] | None = None) -> Iterator[Check]:
    """Every check a detector's tags call for, on each task it declares it scans.

    ``detector`` is a :class:`~poisonlab.defenses.detectors.base.Detector`
    instance, or a registry entry (built with its defaults).
    """
    if isinstance(detector, Entry):
        tags = {**dict(detector.tags), **(tags or {})}
        detector = detector.create()
    keys = ("tasks", "needs", "needs_sources", "min_samples")
    t = {**{k: getattr(detector, k) for k in keys}, **(tags or {})}
    name = type(detector).__name__
    fits = _Fits(detector)
    for task in ("classification", "regression"):
        if task not in t["tasks"]:
            yield Check(f"{name}.refuses_{task}_data", partial(_refuses, detector, task))
            continue
        yield Check(f"{name}.{task}.fit_returns_self_scores_and_flags", partial(_shapes, fits, task))
        yield Check(f"{name}.{task}.ranks_planted_poisons_high", partial(_ranks, fits, task))
        yield Check(f"{name}.{task}.quiet_on_clean_data", partial(_quiet, fits, task))
        yield Check(f"{name}.{task}.same_input_same_scores", partial(_deterministic, fits, task))
        yield Check(f"{name}.{task}.does_not_mutate_input", partial(_no_mutation, fits, task))
        if task == "classification":
            for need in t["needs"]:
                yield Check(f"{name}.refuses_evidence_without_{need}", partial(_needs, detector, need))
    if "link_prediction" in t["tasks"]:
        yield from _graph_detector_checks(detector, name)


def planted_graph(*, poisoned: bool = True) -> tuple[Any, np.ndarray]:
    """The toy graph with six random false facts appended (``poisoned``), and their mask."""
    from poisonlab.checks._data import toy_graph

    graph, _ = toy_graph()
    if not poisoned:
        return graph, np.zeros(len(graph), dtype=bool)
    rng = np.random.default_rng(0)
    planted: list[tuple[int, int, int]] = []
    while len(planted) < 6:
        fact = (int(rng.integers(12)), int(rng.integers(3)), int(rng.integers(12)))
        if fact[0] != fact[2] and not graph.contains(np.array(fact)[None])[0] and fact not in planted:
            planted.append(fact)
    poisoned_graph = graph.with_triples(np.concatenate([graph.triples, np.array(planted)]))
    return poisoned_graph, np.arange(len(poisoned_graph)) >= len(graph)


def _graph_detector_checks(detector: Detector, name: str) -> Iterator[Check]:
    """A knowledge-graph detector ranks planted false facts high and stays quiet on the clean graph."""
    memo: dict[tuple[bool, int], tuple[np.ndarray, np.ndarray, bool, bool]] = {}

    def fit(poisoned: bool = True, run: int = 0) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        if (poisoned, run) not in memo:
            graph, _ = planted_graph(poisoned=poisoned)
            before = graph.triples.copy()
            fitted = detector.fit(graph)
            memo[(poisoned, run)] = (
                np.array(fitted.score_samples()),
                np.array(fitted.auto_flags()),
                fitted is detector,
                not np.array_equal(before, graph.triples),
            )
        return memo[(poisoned, run)]

    def shapes() -> None:
        scores, flags, returned_self, _ = fit()
        n = len(planted_graph()[0])
        expect(returned_self, "fit() does not return the detector itself")
        expect(
            scores.dtype == np.float64 and scores.shape == (n,), f"scores are {scores.dtype} {scores.shape}"
        )
        expect(bool(np.isfinite(scores).all()), "scores are not all finite")
        expect(flags.dtype == bool and flags.shape == (n,), f"flags are {flags.dtype} {flags.shape}")

    def ranks() -> None:
        auroc = _auroc(planted_graph()[1], fit()[0])
        expect(
            auroc >= MIN_AUROC, f"AUROC {auroc:.2f} on the planted facts (higher score = more suspicious?)"
        )

    def quiet() -> None:
        share = float(np.mean(fit(poisoned=False)[1]))
        expect(share <= MAX_CLEAN_FLAGS, f"its own rule flags {share:.0%} of a clean graph")

    def deterministic() -> None:
        expect(np.allclose(fit()[0], fit(run=1)[0]), "two fits on the same graph gave different scores")

    yield Check(f"{name}.graph.fit_returns_self_scores_and_flags", shapes)
    yield Check(f"{name}.graph.ranks_planted_facts_high", ranks)
    yield Check(f"{name}.graph.quiet_on_a_clean_graph", quiet)
    yield Check(f"{name}.graph.same_input_same_scores", deterministic)
    yield Check(
        f"{name}.graph.does_not_mutate_input", lambda: expect(not fit()[3], "fit() wrote into the graph")
    )


def check_detector(detector: Detector | Any, *, tags: dict[str, Any] | None = None) -> list[str]:
    """Run every check of :func:`yield_detector_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_detector_checks(detector, tags=tags))


@dataclass(frozen=True, eq=False)
class _Fit:
    scores: np.ndarray
    flags: np.ndarray
    mask: np.ndarray
    mutated: str  # what fit() wrote into, or ""
    returned_self: bool


class _Fits:
    """Fits one detector once per (task, poisoned, run) and keeps what each fit returned."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self._memo: dict[tuple[str, bool, int], _Fit] = {}

    def get(self, task: str, *, poisoned: bool = True, run: int = 0) -> _Fit:
        key = (task, poisoned, run)
        if key not in self._memo:
            by_source = self.detector.needs_sources
            data, evidence, mask = planted_case(task, poisoned=poisoned, by_source=by_source)
            X, y = data.X.copy(), data.y.copy()
            reps = None if evidence is None else evidence.representations.copy()
            fitted = self.detector.fit(data, evidence)
            mutated = ""
            if not (np.array_equal(X, data.X) and np.array_equal(y, data.y)):
                mutated = "the dataset"
            elif (
                evidence is not None
                and reps is not None
                and not np.array_equal(reps, evidence.representations)
            ):
                mutated = "the evidence"
            scores, flags = np.array(fitted.score_samples()), np.array(fitted.auto_flags())
            self._memo[key] = _Fit(scores, flags, mask, mutated, fitted is self.detector)
        return self._memo[key]


def _shapes(fits: _Fits, task: str) -> None:
    fit = fits.get(task)
    expect(fit.returned_self, "fit() does not return the detector itself")
    expect(fit.scores.dtype == np.float64, f"scores are {fit.scores.dtype}, not float64")
    expect(fit.scores.shape == fit.mask.shape, f"{fit.scores.shape} scores for {fit.mask.shape[0]} samples")
    expect(np.isfinite(fit.scores).all(), "scores are not all finite")
    expect(fit.flags.dtype == bool and fit.flags.shape == fit.mask.shape, f"flags are {fit.flags.dtype}")


def _ranks(fits: _Fits, task: str) -> None:
    fit = fits.get(task)
    auroc = _auroc(fit.mask, fit.scores)
    expect(auroc >= MIN_AUROC, f"AUROC {auroc:.2f} on the planted poisons (higher score = more suspicious?)")


def _quiet(fits: _Fits, task: str) -> None:
    share = float(np.mean(fits.get(task, poisoned=False).flags))
    expect(share <= MAX_CLEAN_FLAGS, f"its own rule flags {share:.0%} of a clean set")


def _deterministic(fits: _Fits, task: str) -> None:
    first, second = fits.get(task).scores, fits.get(task, run=1).scores
    expect(np.allclose(first, second, equal_nan=True), "two fits on the same input gave different scores")


def _no_mutation(fits: _Fits, task: str) -> None:
    fit = fits.get(task)
    expect(not fit.mutated, f"fit() wrote into {fit.mutated}")


def _needs(detector: Detector, need: str) -> None:
    data, evidence, _ = planted_case("classification")
    assert evidence is not None
    fields = {k: getattr(evidence, k) for k in ("early_representations", "pred_probs", "losses", "inputs")}
    fields[need] = None
    try:
        detector.fit(data, Evidence(representations=evidence.representations, **fields))
    except DataError:
        return
    expect(False, f"fitted without {need}, which it declares it needs, and raised no DataError")


def _refuses(detector: Detector, task: str) -> None:
    data, evidence, _ = planted_case(task)
    try:
        detector.fit(data, evidence)
    except IncompatibleError:
        return
    expect(False, f"fitted {task} data, which its tags say it does not scan, without IncompatibleError")


# --------------------------------------------------------------------------- defenses


def yield_defense_checks(defense: Any, *, tags: dict[str, Any] | None = None) -> Iterator[Check]:
    """Every check of the defense contract its ``stage`` tag names.

    ``stage="data"`` (the default): ``apply(train, rng) -> DefenseResult``, applied to
    a toy tabular set of each task its tags take. ``stage="training"``:
    ``train(train, make_model, rng) -> TrainedModel`` on a toy classification set,
    with a torch model where ``needs_torch`` says so; a certifying defense's model
    (``certifies``) must also return a certificate consistent with its predictions.
    """
    if isinstance(defense, Entry):
        tags = {**dict(defense.tags), **(tags or {})}
        defense = defense.create()
    tags = tags or {}
    name = type(defense).__name__
    if tags.get("stage", "data") == "training":
        trained = _Trained(defense, needs_torch=bool(tags.get("needs_torch")))
        yield Check(f"{name}.trains_a_model", partial(_trains_a_model, trained))
        yield Check(f"{name}.same_seed_same_model", partial(_training_deterministic, trained))
        if tags.get("certifies"):
            yield Check(f"{name}.certifies_its_predictions", partial(_certifies, trained))
        return
    tasks = tuple(tags.get("tasks", ("classification", "regression")))
    applied = _Applied(defense)
    for task in tasks:
        yield Check(f"{name}.{task}.returns_kept_rows_and_mask", partial(_defense_result, applied, task))
        yield Check(f"{name}.{task}.same_seed_same_rows", partial(_defense_deterministic, applied, task))


def check_defense(defense: Any, *, tags: dict[str, Any] | None = None) -> list[str]:
    """Run every check of :func:`yield_defense_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_defense_checks(defense, tags=tags))


def _toy_train(task: str) -> Dataset:
    return toy_dataset(task, "tabular", seed=1)


class _Applied:
    """Applies one defense once per (task, run) and keeps the result and the input it saw."""

    def __init__(self, defense: Any) -> None:
        self.defense = defense
        self._memo: dict[tuple[str, int], tuple[Dataset, Any, bool]] = {}

    def get(self, task: str, run: int = 0) -> tuple[Dataset, Any, bool]:
        """(training set, DefenseResult, whether apply wrote into the training set), seed 0."""
        if (task, run) not in self._memo:
            train = _toy_train(task)
            X = train.X.copy()
            result = self.defense.apply(train, np.random.default_rng(0))
            self._memo[task, run] = (train, result, not np.array_equal(X, train.X))
        return self._memo[task, run]


def _defense_result(applied: _Applied, task: str) -> None:
    train, result, mutated = applied.get(task)
    removed = np.asarray(result.removed_mask)
    expect(removed.dtype == bool and removed.shape == (len(train),), f"removed mask is {removed.dtype}")
    expect(len(result.dataset) == len(train) - int(removed.sum()), "kept rows do not match the removed mask")
    expect(np.array_equal(result.dataset.ids, train.ids[~removed]), "kept rows are not the unremoved ones")
    expect(not mutated, "apply() wrote into the training set")
    if result.scores is not None:
        expect(np.shape(result.scores) == (len(train),), "scores are not one per training row")


class _Trained:
    """Trains with one training defense once per run (seed 0) and keeps what it saw and returned."""

    def __init__(self, defense: Any, *, needs_torch: bool) -> None:
        self.defense = defense
        self.needs_torch = needs_torch
        # enough rows for ensembles of 50–100 base models; the test rows come from the same classes
        both = toy_dataset("classification", "tabular", seed=1, per_class=220)
        order = np.arange(len(both))
        self.train, self.test = both.subset(order[:600]), both.subset(order[600:])
        self._memo: dict[int, tuple[Any, bool]] = {}

    def make_model(self, seed: int) -> Any:
        from poisonlab.models import MODELS

        if self.needs_torch:
            return MODELS.create("mlp", epochs=10, random_state=seed)
        return MODELS.create("logreg", random_state=seed)

    def get(self, run: int = 0) -> tuple[Any, bool]:
        """(TrainedModel, whether train wrote into the training set)."""
        if run not in self._memo:
            X = self.train.X.copy()
            trained = self.defense.train(self.train, self.make_model, np.random.default_rng(0))
            self._memo[run] = (trained, not np.array_equal(X, self.train.X))
        return self._memo[run]


def _trains_a_model(trained: _Trained) -> None:
    result, mutated = trained.get()
    expect(not mutated, "train() wrote into the training set")
    predicted = np.asarray(result.model.predict(trained.test.X))
    expect(predicted.shape == (len(trained.test),), f"predict gave shape {predicted.shape}")
    expect(set(np.unique(predicted)) <= set(np.unique(trained.train.y)), "predicted a class it never saw")
    accuracy = float(np.mean(predicted == trained.test.y))
    expect(accuracy >= 0.8, f"accuracy {accuracy:.2f} on well-separated toy classes (want ≥ 0.8)")
    removed = result.removed_mask
    if removed is not None:
        removed = np.asarray(removed)
        expect(removed.dtype == bool and removed.shape == (len(trained.train),), "bad removed mask")
    expect(isinstance(result.extras, dict), "extras is not a dict")


def _training_deterministic(trained: _Trained) -> None:
    first = trained.get()[0].model.predict(trained.test.X)
    again = trained.get(run=1)[0].model.predict(trained.test.X)
    expect(np.array_equal(first, again), "the same seed trained a model with other predictions")


def _certifies(trained: _Trained) -> None:
    model = trained.get()[0].model
    certificate = model.certify(trained.test.X)
    radius = np.asarray(certificate.radius)
    expect(radius.shape == (len(trained.test),), f"radius has shape {radius.shape}")
    expect(radius.dtype.kind == "i" and bool(np.all(radius >= -1)), "radii must be integers ≥ -1")
    expect(
        np.array_equal(certificate.prediction, model.predict(trained.test.X)), "certify and predict disagree"
    )
    expect(bool(np.any(radius >= 1)), "nothing certified at radius 1 on well-separated toy classes")
    expect(0 < certificate.confidence <= 1, f"confidence {certificate.confidence} outside (0, 1]")


def _defense_deterministic(applied: _Applied, task: str) -> None:
    first = applied.get(task)[1].removed_mask
    again = applied.get(task, run=1)[1].removed_mask
    expect(np.array_equal(first, again), "the same seed removed different rows")
