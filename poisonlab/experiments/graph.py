"""Graph scenarios in the run config: knowledge-graph poisoning, one target fact per trial.

A config with ``scenario = "graph"`` expands ``datasets × models × defenses ×
attacks × budgets × seeds`` into :class:`GraphSpec` runs. ``datasets`` are knowledge
graphs (``nations``, ``kinships``, ``umls``, a folder of ``train.tsv``, ``valid.tsv``
and ``test.tsv``, or one ``.tsv`` of facts, split 80/10/10 as ``load_graph`` splits it),
``models`` the embedding models (``transe``, ``distmult``, ``complex``), ``attacks``
the graph attacks (``kg_*``), ``budgets`` the facts each attack may change per target,
and ``defenses`` ``"none"`` or a graph detector (``kg_plausibility``: drop what it
flags, then retrain)::

    scenario = "graph"
    datasets = ["umls"]
    models = ["transe", { name = "distmult", epochs = 100 }]
    attacks = ["kg_delete", "kg_direct", { name = "kg_symmetry" }]
    budgets = [10]
    targets = 5            # target facts per run
    defenses = ["none", "kg_plausibility"]
    seeds = [0, 1]

One run, the protocol of ``benchmarks/bench_kg.py``: the seed trains the clean
victim on the graph's training facts and draws ``targets`` test facts that the
clean victim ranks first on both sides (head and tail prediction, filtered): facts it
"knows". For each target the attack reads the clean victim (white box, as both
papers assume), changes at most ``budget`` training facts, the defense scans the
poisoned graph, and the victim is retrained from the same seed. The record
(:class:`~poisonlab.experiments.records.GraphRecord`) holds the targets' MRR after
the attack (before it, 1 by the choice of targets), its relative drop and standard
error over targets, Hits@1 and Hits@10, the MRR of the other test facts and its
change against the clean victim in points (a targeted attack should leave it
alone), the facts changed per target (``n_modified``), and a defense's flags
(``n_removed`` per target, precision and recall against the facts the attack added; deleted
facts are not in the graph, so no scan can find them). The attack-free baseline
(``"none"``, first in each cell unless ``baseline = false``) measures the clean
victim, defended as the cell says, so a defense's cost on a clean graph is in its
``graph_mrr_change``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np

from poisonlab.errors import ConfigError, DataError
from poisonlab.experiments.protocol import OnProgress, Scenario, Spec, data_key, identity
from poisonlab.experiments.records import GraphRecord
from poisonlab.experiments.spec import (
    NONE,
    Component,
    DataRef,
    HashedSpec,
    bounded_int,
    component,
    listed,
    run_options,
)

__all__ = ["GRAPH_KEYS", "GraphScenario", "GraphSpec", "resolve_graph"]

#: Top-level keys a graph config may hold.
GRAPH_KEYS = {
    "scenario",
    "datasets",
    "models",
    "attacks",
    "budgets",
    "targets",
    "defenses",
    "seeds",
    "baseline",
}
#: Most facts an attack may change per target, and most targets per run.
MAX_BUDGET = 10_000
MAX_TARGETS = 1_000


@dataclass(frozen=True, eq=False)
class GraphSpec(HashedSpec):
    """Everything one graph run depends on; its hash is the run's key in the store."""

    scenario: ClassVar[str] = "graph"

    dataset: Component
    model: Component  # a knowledge-graph model (MODELS, task link_prediction)
    attack: Component
    budget: int | None  # None: the attack-free baseline
    targets: int
    defense: Component
    seed: int
    data_digest: str = ""

    @property
    def test_size(self) -> float:
        """A graph's test facts come with it; the protocol's split share does not apply."""
        return 0.0


def resolve_graph(entry: Any, base_dir: Path | None) -> DataRef:
    """A graph entry of a config, loaded once: a built-in name, or ``{ path = ... }``."""
    from poisonlab.data.graph import GRAPHS, load_graph
    from poisonlab.experiments.spec import content_digest

    if isinstance(entry, dict) and "path" in entry:
        unknown = sorted(set(entry) - {"path"})
        if unknown:
            raise ConfigError(f"a graph file entry takes only 'path', got {unknown[0]!r}")
        path = Path(str(entry["path"]))
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        comp = Component(path.stem if path.suffix else path.name, {"path": str(path)})
        split = load_graph(path)
        return DataRef(comp, content_digest(path), cast(Any, split))
    if not isinstance(entry, str):
        raise ConfigError(f"each graph of 'datasets' must be a name or a table with a 'path', got {entry!r}")
    if entry.lower() in GRAPHS and not Path(entry).exists():
        return DataRef(Component(entry), "", cast(Any, load_graph(entry)))
    return resolve_graph({"path": entry}, base_dir)


class GraphScenario(Scenario):
    """``scenario = "graph"``: knowledge-graph poisoning, target by target (see the module docstring)."""

    keys = frozenset(GRAPH_KEYS)
    example: ClassVar[dict[str, Any]] = {
        "scenario": "graph",
        "datasets": ["nations"],
        "models": [{"name": "transe", "dim": 16, "epochs": 30}],
        "attacks": ["kg_delete"],
        "budgets": [5],
        "targets": 1,
    }

    def resolve(self, entry: Any, base_dir: Path | None) -> DataRef:
        return resolve_graph(entry, base_dir)

    def load(self, dataset: Component) -> Any:
        return resolve_graph(dataset.params or dataset.name, None).data

    def parse(self, raw: Mapping[str, Any], datasets: Sequence[DataRef]) -> list[Spec]:
        models = [component(e, "models") for e in listed(raw, "models", ["transe"])]
        attacks = [component(e, "attacks") for e in listed(raw, "attacks")]
        defenses = [component(e, "defenses") for e in listed(raw, "defenses", [NONE])]
        budgets = [
            bounded_int(b, "each budget (facts changed per target)", 1, MAX_BUDGET)
            for b in listed(raw, "budgets", [10])
        ]
        targets = bounded_int(raw.get("targets", 5), "targets (target facts per run)", 1, MAX_TARGETS)
        if "test_size" in raw:  # run_options reads it; a graph brings its own test facts
            raise ConfigError("a graph config takes no test_size: a graph brings its own test facts")
        seeds, _, baseline = run_options(raw)
        for model in models:
            if "random_state" in model.params:
                raise ConfigError(f"model {model.name!r}: the run's seed sets random_state, not the config")
        if baseline and not any(a.name == NONE for a in attacks):
            attacks.insert(0, Component(NONE))
        runs: list[Spec] = []
        for ref in datasets:
            for model, defense, attack in itertools.product(models, defenses, attacks):
                run_budgets: list[int | None] = [None] if attack.name == NONE else list(budgets)
                runs += [
                    GraphSpec(ref.component, model, attack, budget, targets, defense, seed, ref.digest)
                    for budget, seed in itertools.product(run_budgets, seeds)
                ]
        return runs

    def plan(self, specs: Sequence[Spec], data: Mapping[str, Any]) -> None:
        """Every model, attack and defense is for knowledge graphs, and takes its parameters."""
        from poisonlab.attacks import ATTACKS
        from poisonlab.defenses import DETECTORS
        from poisonlab.models import MODELS

        checked: set[tuple[str, str]] = set()
        for spec in cast(Sequence[GraphSpec], specs):
            split = data[data_key(spec.dataset, spec.data_digest)]  # a GraphSplit: resolve_graph loaded it
            what = f"graph {spec.dataset.label!r}"
            if ("model", spec.model.label) not in checked:
                checked.add(("model", spec.model.label))
                model: Any = MODELS.require(spec.model.name, what, task="link_prediction").create(
                    random_state=0, **spec.model.params
                )
                model._check()  # a bad dimension, epoch count or rate fails here, not in a run
            if spec.attack.name != NONE and ("attack", spec.attack.label) not in checked:
                checked.add(("attack", spec.attack.label))
                attack = ATTACKS.require(spec.attack.name, what, modalities="graph", tasks="link_prediction")
                attack.create(**spec.attack.params).check(split.train)
            if spec.defense.name != NONE and ("defense", spec.defense.label) not in checked:
                checked.add(("defense", spec.defense.label))
                if "random_state" in spec.defense.params:
                    raise ConfigError(
                        f"defense {spec.defense.name!r}: the run's seed sets random_state, not the config"
                    )
                DETECTORS.require(spec.defense.name, what, tasks="link_prediction").create(
                    **_detector_params(spec)
                )

    def execute(self, spec: Spec, data: Any, on_progress: OnProgress | None = None) -> GraphRecord:
        """One run: the clean victim, then attack → defend → retrain for each target."""
        from poisonlab.attacks import ATTACKS
        from poisonlab.models import MODELS
        from poisonlab.models.kge import filtered_ranks, link_metrics

        run = cast(GraphSpec, spec)
        split = data
        train, known = split.train, split.known()

        def victim(graph: Any) -> Any:
            model: Any = MODELS.create(run.model.name, random_state=run.seed, **run.model.params)
            return model.fit(graph)

        clean = victim(train)
        ranks = filtered_ranks(clean, split.test.triples, known)
        pool = np.flatnonzero(ranks.max(axis=1) <= 1)
        if pool.size == 0:
            raise DataError(
                f"the clean {run.model.label} model ranks none of {split.name}'s test facts first on both "
                "sides, so there is no fact it knows to attack; train it longer (epochs) or use another model"
            )
        rng = np.random.default_rng(run.seed)
        chosen = np.sort(rng.choice(pool, size=min(run.targets, pool.size), replace=False))
        rest = np.delete(split.test.triples, chosen, axis=0)
        clean_rest = link_metrics(filtered_ranks(clean, rest, known))["mrr"] if len(rest) else None

        def defended(graph: Any) -> tuple[Any, np.ndarray]:
            """The model trained on what the defense keeps of ``graph``, and what it flagged."""
            if run.defense.name == NONE:
                return (clean if graph is train else victim(graph)), np.zeros(len(graph), dtype=bool)
            flags = self._flags(run, graph)
            return victim(graph.with_triples(graph.triples[~flags])), flags

        # without an attack every target sees the same graph: scan and train once
        baseline = defended(train) if run.attack.name == NONE else None
        trials: list[dict[str, Any]] = []
        for number, index in enumerate(chosen):
            fact = split.test.triples[index]
            added, changed = np.zeros(len(train), dtype=bool), 0
            if baseline is None:
                attack = ATTACKS.create(run.attack.name, **run.attack.params).surrogate(clean).aim(fact)
                result = attack.poison(train, run.budget, run.seed)
                added, changed = result.poison_mask, result.n_poison
                model, flags = defended(result.dataset)
            else:
                model, flags = baseline
            after = filtered_ranks(model, fact[None], known)[0]
            trial = {
                "rr": float(np.mean(1.0 / after)),
                "hits1": float(np.mean(after <= 1)),
                "hits10": float(np.mean(after <= 10)),
                "rest": link_metrics(filtered_ranks(model, rest, known))["mrr"] if len(rest) else None,
                "changed": changed,
                "removed": int(flags.sum()),
                "found": int((flags & added).sum()),
                "added": int(added.sum()),
            }
            trials.append(trial)
            if on_progress is not None:
                on_progress({"target": number, **trial})
        return self._record(run, train, split, trials, clean_rest)

    def _flags(self, run: GraphSpec, graph: Any) -> np.ndarray:
        from poisonlab.defenses import DETECTORS

        detector = DETECTORS.create(run.defense.name, **_detector_params(run))
        return np.asarray(detector.fit(graph).auto_flags(), dtype=bool)

    @staticmethod
    def _record(
        run: GraphSpec, train: Any, split: Any, trials: list[dict[str, Any]], clean_rest: float | None
    ) -> GraphRecord:
        rr = np.array([t["rr"] for t in trials])
        rests = [t["rest"] for t in trials if t["rest"] is not None]
        graph_mrr = float(np.mean(rests)) if rests else None
        has_defense = run.defense.name != NONE
        removed = sum(t["removed"] for t in trials)
        found = sum(t["found"] for t in trials)
        added = sum(t["added"] for t in trials)
        return GraphRecord(
            **_identity(run),
            n_train=len(train),
            n_test=len(split.test),
            n_targets=len(trials),
            n_modified=float(np.mean([t["changed"] for t in trials])),
            # before the attack every target ranks first on both sides: MRR 1
            target_mrr=float(rr.mean()),
            target_mrr_drop=float(1.0 - rr.mean()),
            target_mrr_se=float(rr.std(ddof=1) / np.sqrt(rr.size)) if rr.size > 1 else None,
            hits_at_1=float(np.mean([t["hits1"] for t in trials])),
            hits_at_10=float(np.mean([t["hits10"] for t in trials])),
            graph_mrr=graph_mrr,
            graph_mrr_change=None
            if graph_mrr is None or clean_rest is None
            else round(graph_mrr - clean_rest, 6),
            n_removed=removed / len(trials) if has_defense else None,
            det_precision=(found / removed if removed else 0.0) if has_defense and added else None,
            det_tpr=found / added if has_defense and added else None,
        )

    def stub(self, spec: Spec) -> GraphRecord:
        return GraphRecord(**_identity(cast(GraphSpec, spec)))


def _identity(spec: GraphSpec) -> dict[str, Any]:
    return {**identity(spec), "budget": spec.budget, "defense": spec.defense.label}


def _detector_params(spec: GraphSpec) -> dict[str, Any]:
    """A graph detector's parameters: the config's, its embedding model the victim's where it has one."""
    from poisonlab.defenses import DETECTORS

    params = {"random_state": spec.seed, **spec.defense.params}
    accepted = DETECTORS.get(spec.defense.name).parameters()
    if "interaction" in accepted and "interaction" not in params:
        params["interaction"] = spec.model.name
    return params
