"""Stream scenarios in the run config: a grid of online-learning streams, gated or not, one run each.

A config with ``scenario = "stream"`` expands ``datasets × models × attacks ×
poison_rates × gates × seeds`` into :class:`StreamSpec` runs of
:func:`poisonlab.stream.simulate_stream`, with the shared stream settings in a
``[stream]`` table (simulate_stream's own defaults where absent)::

    scenario = "stream"
    datasets = ["digits"]
    models = ["sgd", "mlp"]          # stream learners (LEARNERS names)
    attacks = ["badnets"]            # backdoors (ATTACKS tagged backdoor=True), or "none"
    poison_rates = [0.1]             # poisoned share of the whole stream
    gates = ["on", "off"]            # with and without the gate
    seeds = [0, 1]

    [stream]
    batch_size = 50
    trusted = 200

The attack-free baseline (``"none"``, added first in each cell unless ``baseline =
false``) streams clean data: no poison rate, one run per (dataset, model, gate,
seed). Its records (:class:`~poisonlab.experiments.records.StreamRecord`) go to
the same results store and summary as every other run: ``poison_rate``, ``gate``,
``clean_acc``/``asr`` (the learner after the last batch), ``n_poison`` (poisons
streamed), ``n_admitted_poison`` (poisons the learner was given), ``n_removed``
(samples the gate quarantined, poisons and clean ones) and ``acc_drop`` against
the baseline.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np

from poisonlab.attacks import ATTACKS
from poisonlab.data.dataset import Dataset, train_test_split
from poisonlab.errors import ConfigError
from poisonlab.experiments.protocol import OnProgress, Scenario, Spec, data_key, identity
from poisonlab.experiments.records import StreamRecord
from poisonlab.experiments.spec import NONE, Component, DataRef, HashedSpec, component, listed, run_options
from poisonlab.stream.learners import LEARNERS, Learner
from poisonlab.validation import positive_int

__all__ = ["GATES", "SETTINGS", "STREAM_KEYS", "StreamScenario", "StreamSpec"]

#: Keys of the ``[stream]`` table and their defaults (simulate_stream's own defaults).
SETTINGS: dict[str, Any] = {
    "batch_size": 50,
    "sources": ("vendor-a", "vendor-b", "crowd"),
    "poisoned_sources": ("crowd",),
    "target": 0,
    "trusted": 200,
    "epochs_per_batch": 5,
    "eval_every": 5,
}
#: Values of ``gates``: the stream with its default gate, and without one.
GATES = ("on", "off")
#: Top-level keys a stream config may hold.
STREAM_KEYS = {
    "scenario",
    "datasets",
    "models",
    "attacks",
    "poison_rates",
    "gates",
    "seeds",
    "test_size",
    "baseline",
    "stream",
}


@dataclass(frozen=True, eq=False)
class StreamSpec(HashedSpec):
    """Everything one stream run depends on; its hash is the run's key in the store."""

    scenario: ClassVar[str] = "stream"

    dataset: Component
    model: Component  # a LEARNERS entry
    attack: Component
    poison_rate: float | None  # None: the attack-free baseline
    gate: str  # "on" or "off"
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    test_size: float = 0.25
    data_digest: str = ""

    def stream_kwargs(self) -> dict[str, Any]:
        """The stream settings as :func:`~poisonlab.stream.simulate_stream` takes them."""
        s = {**SETTINGS, **self.settings}
        # TOML gives lists; simulate_stream takes tuples of source names
        return {**s, "sources": tuple(s["sources"]), "poisoned_sources": tuple(s["poisoned_sources"])}


class StreamScenario(Scenario):
    """``scenario = "stream"``: a grid of online-learning streams (see the module docstring)."""

    keys = frozenset(STREAM_KEYS)
    example: ClassVar[dict[str, Any]] = {
        "scenario": "stream",
        "datasets": ["wine"],
        "models": ["sgd"],
        "attacks": ["feature_trigger"],
        "poison_rates": [0.1],
        "gates": ["on"],
        "stream": {"trusted": 40, "batch_size": 20, "epochs_per_batch": 1},
    }

    def parse(self, raw: Mapping[str, Any], datasets: Sequence[DataRef]) -> list[Spec]:
        table = raw.get("stream", {})
        if not isinstance(table, dict):
            raise ConfigError(f"'stream' must be a table of settings, got {table!r}")
        bad = sorted(set(table) - set(SETTINGS))
        if bad:
            raise ConfigError(f"unknown [stream] setting {bad[0]!r}; known: {', '.join(SETTINGS)}")
        for key in ("sources", "poisoned_sources"):
            names = table.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"[stream] {key} must be a list of names, got {names!r}")
        models = [component(e, "models") for e in listed(raw, "models", ["sgd"])]
        attacks = [component(e, "attacks") for e in listed(raw, "attacks")]
        rates = [_rate(r) for r in listed(raw, "poison_rates", [0.1])]
        gates = listed(raw, "gates", list(GATES))
        seeds, test_size, baseline = run_options(raw)
        for gate in gates:
            if gate not in GATES:
                raise ConfigError(f"each gate must be 'on' or 'off', got {gate!r}")
        for model in models:
            if "random_state" in model.params:
                raise ConfigError(f"learner {model.name!r}: the run's seed sets random_state, not the config")
            LEARNERS.get(model.name).check_params(model.params)  # names first, then the data
        for attack in attacks:
            ATTACKS.get(attack.name)
            if attack.params:
                # simulate_stream builds the backdoor with its defaults and the [stream] target
                raise ConfigError(
                    f"stream attacks take no parameters, got {attack.label!r}; "
                    "set the target class in [stream]"
                )
        if baseline and not any(a.name == NONE for a in attacks):
            attacks.insert(0, Component(NONE))
        settings = {**SETTINGS, **table}
        runs: list[Spec] = []
        for ref in datasets:
            for model, gate, attack in itertools.product(models, gates, attacks):
                # The clean stream has no rate: one run per seed, not one per rate.
                run_rates: list[float | None] = [None] if attack.name == NONE else list(rates)
                runs += [
                    StreamSpec(
                        ref.component, model, attack, rate, gate, seed, settings, test_size, ref.digest
                    )
                    for rate, seed in itertools.product(run_rates, seeds)
                ]
        return runs

    def plan(self, specs: Sequence[Spec], data: Mapping[str, Dataset]) -> None:
        """Every learner and backdoor fits its data, every setting is one simulate_stream takes.

        Components come first (a learner or attack that cannot work on the data is
        the more basic mistake), then the settings; each is checked once per dataset.
        The poison budget (the poisoned sources must send enough non-target samples)
        depends on the seed's split and shuffle, so it is checked per seed, on the
        labels only.
        """
        runs = cast(Sequence[StreamSpec], specs)
        checked: set[tuple[Any, ...]] = set()
        for spec in runs:
            key = data_key(spec.dataset, spec.data_digest)
            dataset = data[key]
            what = f"dataset {spec.dataset.label!r} ({dataset.modality} {dataset.task})"
            if dataset.task != "classification":
                raise ConfigError(f"the stream simulation needs classification data; {what} is not")
            if ("learner", spec.model.label, key) not in checked:
                checked.add(("learner", spec.model.label, key))
                entry = LEARNERS.require(spec.model.name, what, modalities=dataset.modality)
                entry.create(random_state=0, **spec.model.params)  # a bad value fails here, not in a run
            if spec.attack.name != NONE and ("attack", spec.attack.name, key) not in checked:
                checked.add(("attack", spec.attack.name, key))
                ATTACKS.require(
                    spec.attack.name,
                    f"the stream on {what}, which plants a backdoor",
                    backdoor=True,
                    modalities=dataset.modality,
                    tasks="classification",
                )
        labels: dict[tuple[str, float, int], np.ndarray] = {}
        for spec in runs:
            key = data_key(spec.dataset, spec.data_digest)
            dataset = data[key]
            kwargs = spec.stream_kwargs()
            cell = ("settings", repr(sorted(kwargs.items())), key, spec.test_size)
            if cell not in checked:
                checked.add(cell)
                n_train = len(train_test_split(_labels_only(dataset), test_size=spec.test_size)[0])
                _check_settings(kwargs, dataset, n_train)
            budget = ("budget", cell, spec.poison_rate, spec.seed)
            if spec.poison_rate is not None and budget not in checked:
                checked.add(budget)
                split = (key, spec.test_size, spec.seed)
                if split not in labels:
                    train = train_test_split(
                        _labels_only(dataset), test_size=spec.test_size, random_state=spec.seed
                    )[0]
                    labels[split] = train.y
                _check_budget(kwargs, spec.poison_rate, labels[split], dataset, spec.seed)

    def execute(self, spec: Spec, data: Dataset, on_progress: OnProgress | None = None) -> StreamRecord:
        """One stream; ``on_progress`` gets each batch's record (a dict) as it finishes."""
        from poisonlab.stream.simulation import simulate_stream

        run = cast(StreamSpec, spec)
        train, test = train_test_split(data, test_size=run.test_size, random_state=run.seed)
        clean = run.attack.name == NONE
        # simulate_stream builds a backdoor even for a clean stream (its trigger decides
        # the ASR, which the baseline does not report, and its crafting draws from the
        # stream's generator), so the baseline always takes the modality's first one.
        attack = _clean_trigger(train) if clean else run.attack.name
        # A learner with parameters is built here, seeded as simulate_stream seeds a name.
        learner: str | Learner = run.model.name
        if run.model.params:
            learner = LEARNERS.create(run.model.name, random_state=run.seed, **run.model.params)
        result = simulate_stream(
            train,
            test,
            learner=learner,
            attack=attack,
            poison_share=0.0 if clean else cast(float, run.poison_rate),
            gate=run.gate == "on",
            seed=run.seed,
            on_batch=None if on_progress is None else lambda r: on_progress(dataclasses.asdict(r)),
            **run.stream_kwargs(),
        )
        return StreamRecord(
            **_identity(run),
            n_train=len(train),
            n_test=len(test),
            clean_acc=result.accuracy,
            asr=None if clean else result.asr,
            n_poison=result.n_poison,
            n_admitted_poison=result.n_poison_admitted,
            n_removed=len(result.quarantined),
            timeline=tuple(
                {"step": r.step, "accuracy": r.accuracy, "asr": None if clean else r.asr}
                for r in result.records
                if r.accuracy is not None
            ),
        )

    def stub(self, spec: Spec) -> StreamRecord:
        return StreamRecord(**_identity(cast(StreamSpec, spec)))


def _identity(spec: StreamSpec) -> dict[str, Any]:
    return {
        **identity(spec),
        "poison_rate": spec.poison_rate,
        "gate": spec.gate,
    }


def _rate(value: Any) -> float:
    # simulate_stream's poison_share lies in [0, 1); 0 is the baseline's, written "none"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(f"stream poison rate must lie in (0, 1), got {value!r}")
    return float(value)


def _clean_trigger(train: Dataset) -> str:
    """The first backdoor for ``train``'s modality: the attack a clean stream is built with."""
    fits = ATTACKS.where(backdoor=True, modalities=train.modality, tasks="classification")
    if not fits:
        raise ConfigError(f"no backdoor attack works on {train.modality} data, so no stream can run on it")
    return fits[0].name


def _labels_only(dataset: Dataset) -> Dataset:
    """``dataset`` with one zero feature: splitting and counting labels without copying the features."""
    return dataset.with_arrays(X=np.zeros((len(dataset), 1), dtype=np.float32))


def _check_settings(s: Mapping[str, Any], dataset: Dataset, n_train: int) -> None:
    """The checks simulate_stream makes of its settings before any training, made before any run."""
    for name in ("batch_size", "epochs_per_batch", "eval_every", "trusted"):
        positive_int(s[name], f"[stream] {name}")
    if s["trusted"] >= n_train:
        raise ConfigError(
            f"[stream] trusted ({s['trusted']}) must be smaller than the {n_train} training samples "
            f"of {dataset.name!r}"
        )
    sources = s["sources"]
    if not sources or not all(isinstance(x, str) for x in sources) or len(set(sources)) != len(sources):
        raise ConfigError(f"[stream] sources must be distinct names, at least one, got {list(sources)}")
    unknown = [x for x in s["poisoned_sources"] if x not in sources]
    if unknown:
        raise ConfigError(
            f"[stream] poisoned source {unknown[0]!r} is not one of the sources {list(sources)}"
        )
    target = s["target"]
    if isinstance(target, bool) or not isinstance(target, numbers.Integral) or target not in dataset.classes:
        raise ConfigError(
            f"[stream] target class {target!r} does not exist in {dataset.name!r} "
            f"(labels: {list(dataset.classes)})"
        )


def _check_budget(
    s: Mapping[str, Any], rate: float, y_train: np.ndarray, dataset: Dataset, seed: int
) -> None:
    """simulate_stream's poison budget for one seed: its shuffle, batches and sources, on labels only."""
    # mirrors simulate_stream's layout: seeded permutation, trusted seed first, round-robin sources
    order = np.random.default_rng(seed).permutation(len(y_train))
    stream = order[s["trusted"] :]
    sources, batch = s["sources"], s["batch_size"]
    batches = [stream[i : i + batch] for i in range(0, len(stream), batch)]
    rows = [b for i, b in enumerate(batches) if sources[i % len(sources)] in s["poisoned_sources"]]
    target = dataset.classes.index(int(s["target"]))
    eligible = int(np.sum(y_train[np.concatenate(rows)] != target)) if rows else 0
    n_poison = round(rate * len(stream))
    if n_poison > eligible:
        raise ConfigError(
            f"poison rate {rate} needs {n_poison} poisoned samples but the poisoned sources send only "
            f"{eligible} non-target samples (seed {seed}); lower it or add poisoned sources in [stream]"
        )
