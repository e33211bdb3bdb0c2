"""Federated scenarios in the run config: a grid of federated simulations, one run each.

A config with ``scenario = "federated"`` expands ``datasets × models × attacks ×
aggregators × malicious × seeds`` into :class:`FederatedSpec` runs, with the
shared simulation settings in a ``[federated]`` table::

    scenario = "federated"
    datasets = ["digits"]
    models = ["mlp"]                      # mlp, cnn or logreg
    attacks = ["none", "sign_flip", { name = "alie", z = 1.0 }]
    aggregators = ["fedavg", "median", "krum", { name = "trimmed_mean", beta = 0.2 }]
    malicious = [0.2]                     # shares of malicious clients (or counts)
    seeds = [0, 1, 2]

    [federated]
    clients = 20
    rounds = 20

Their records (:class:`~poisonlab.experiments.records.FederatedRecord`) go to the
same results store and summary as every other run, with columns of their own:
``aggregator`` (the server's rule), ``malicious_share`` and ``n_malicious`` (the
malicious clients), ``clean_acc``/``asr`` (the global model after the last
round), ``malicious_selected`` (the mean share of malicious updates a selection
rule accepted); the stored record keeps the per-round history.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from poisonlab.data.dataset import Dataset, train_test_split
from poisonlab.errors import ConfigError
from poisonlab.experiments.protocol import OnProgress, Scenario, Spec, data_key, identity
from poisonlab.experiments.records import FederatedRecord
from poisonlab.experiments.spec import NONE, Component, DataRef, HashedSpec, component, listed, run_options

__all__ = ["FEDERATED_KEYS", "SETTINGS", "FederatedScenario", "FederatedSpec"]

#: Keys of the ``[federated]`` table and their defaults (simulate's own defaults).
SETTINGS: dict[str, Any] = {
    "clients": 20,
    "rounds": 20,
    "fraction": 1.0,
    "local_epochs": 2,
    "lr": 0.2,
    "batch_size": 16,
    "alpha": None,
}
#: Top-level keys a federated config may hold.
FEDERATED_KEYS = {
    "scenario",
    "datasets",
    "models",
    "attacks",
    "aggregators",
    "malicious",
    "seeds",
    "test_size",
    "baseline",
    "federated",
}


@dataclass(frozen=True, eq=False)
class FederatedSpec(HashedSpec):
    """Everything one federated run depends on; its hash is the run's key in the store."""

    scenario: ClassVar[str] = "federated"

    dataset: Component
    model: Component
    attack: Component
    malicious: float | int | None  # None: the attack-free baseline
    aggregator: Component
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    test_size: float = 0.25
    data_digest: str = ""

    @property
    def malicious_share(self) -> float | None:
        """The share of malicious clients (a count in the config is divided by the clients)."""
        if self.malicious is None or isinstance(self.malicious, float):
            return self.malicious
        return self.malicious / {**SETTINGS, **self.settings}["clients"]

    def simulate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`poisonlab.federated.simulation.simulate`."""
        s = {**SETTINGS, **self.settings}
        return {
            "model": self.model.name,
            "n_clients": s["clients"],
            "malicious": 0 if self.malicious is None else self.malicious,
            "attack": self.attack.name,
            "aggregator": self.aggregator.name,
            "rounds": s["rounds"],
            "fraction": s["fraction"],
            "local_epochs": s["local_epochs"],
            "lr": s["lr"],
            "batch_size": s["batch_size"],
            "alpha": s["alpha"],
            "seed": self.seed,
            "attack_params": dict(self.attack.params),
            "aggregator_params": dict(self.aggregator.params),
        }


class FederatedScenario(Scenario):
    """``scenario = "federated"``: a grid of federated simulations (see the module docstring)."""

    keys = frozenset(FEDERATED_KEYS)
    example: ClassVar[dict[str, Any]] = {
        "scenario": "federated",
        "datasets": ["wine"],
        "models": ["linear"],
        "attacks": ["sign_flip"],
        "aggregators": ["median"],
        "malicious": [0.2],
        "federated": {"clients": 5, "rounds": 2},
    }

    def parse(self, raw: Mapping[str, Any], datasets: Sequence[DataRef]) -> list[Spec]:
        table = raw.get("federated", {})
        if not isinstance(table, dict):
            raise ConfigError(f"'federated' must be a table of settings, got {table!r}")
        bad = sorted(set(table) - set(SETTINGS))
        if bad:
            raise ConfigError(f"unknown [federated] setting {bad[0]!r}; known: {', '.join(SETTINGS)}")
        models = [component(e, "models") for e in listed(raw, "models", ["mlp"])]
        attacks = [component(e, "attacks") for e in listed(raw, "attacks")]
        aggregators = [component(e, "aggregators") for e in listed(raw, "aggregators", ["fedavg"])]
        shares = listed(raw, "malicious", [0.2])
        seeds, test_size, baseline = run_options(raw)
        for comp in models:
            if comp.params:
                raise ConfigError(f"federated models take no parameters, got {comp.label!r}")
        if baseline and not any(a.name == NONE for a in attacks):
            attacks.insert(0, Component(NONE))
        settings = {**SETTINGS, **table}
        runs: list[Spec] = []
        for ref in datasets:
            for model, attack, aggregator in itertools.product(models, attacks, aggregators):
                # The attack-free baseline has no malicious clients: one run per seed.
                run_shares: list[Any] = [None] if attack.name == NONE else list(shares)
                runs += [
                    FederatedSpec(
                        ref.component, model, attack, share, aggregator, seed, settings, test_size, ref.digest
                    )
                    for share, seed in itertools.product(run_shares, seeds)
                ]
        return runs

    def plan(self, specs: Sequence[Spec], data: Mapping[str, Dataset]) -> None:
        """Every cell's simulation settings checked once against its data (seeds share a plan)."""
        from poisonlab.federated.simulation import plan_simulation

        planned: set[str] = set()
        for spec in cast(Sequence[FederatedSpec], specs):
            dataset = data[data_key(spec.dataset, spec.data_digest)]
            if dataset.task != "classification":
                label = spec.dataset.label
                raise ConfigError(
                    f"federated simulation needs classification data; {label!r} is {dataset.task}"
                )
            kwargs = spec.simulate_kwargs()
            kwargs.pop("seed")
            cell = repr(sorted(kwargs.items(), key=str)) + data_key(spec.dataset, spec.data_digest)
            if cell in planned:
                continue
            planned.add(cell)
            n_train = len(train_test_split(dataset, test_size=spec.test_size, random_state=0)[0])
            plan_simulation(
                n_train=n_train, n_classes=dataset.n_classes, sample_shape=dataset.X.shape[1:], **kwargs
            )

    def execute(self, spec: Spec, data: Dataset, on_progress: OnProgress | None = None) -> FederatedRecord:
        """One simulation; ``on_progress`` gets each round's record as it finishes."""
        from poisonlab.federated.simulation import malicious_count, simulate

        run = cast(FederatedSpec, spec)
        train, test = train_test_split(data, test_size=run.test_size, random_state=run.seed)
        kwargs = run.simulate_kwargs()
        rounds = simulate(train, test, on_round=on_progress, **kwargs)  # plans the run once, itself
        n_malicious = malicious_count(kwargs["malicious"], kwargs["n_clients"])
        last = rounds[-1]
        shares = [r["malicious_selected"] for r in rounds if r["malicious_selected"] is not None]
        return FederatedRecord(
            **_identity(run),
            n_train=len(train),
            n_test=len(test),
            n_malicious=n_malicious,
            clean_acc=last["accuracy"],
            asr=last["asr"],
            malicious_selected=sum(shares) / len(shares) if shares else None,
            diverged_round=next((r["round"] for r in rounds if r.get("diverged")), None),
            rounds=tuple(rounds),
        )

    def stub(self, spec: Spec) -> FederatedRecord:
        return FederatedRecord(**_identity(cast(FederatedSpec, spec)))


def _identity(spec: FederatedSpec) -> dict[str, Any]:
    return {
        **identity(spec),
        "aggregator": spec.aggregator.label,
        "malicious_share": spec.malicious_share,
    }
