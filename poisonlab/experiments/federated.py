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

Their records go to the same results store and summary as every other run:
``defense`` holds the aggregation rule (the server's defense), ``poison_rate`` the
share of malicious clients, ``clean_acc``/``asr`` the global model's last-round
figures, ``malicious_selected`` the mean share of malicious updates a selection
rule accepted, and the stored record keeps the per-round history.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from poisonlab.errors import ConfigError
from poisonlab.experiments.spec import HashedSpec

if TYPE_CHECKING:  # config imports this module; the types only are needed here
    from poisonlab.experiments.config import Component

__all__ = ["FEDERATED_KEYS", "SETTINGS", "FederatedSpec", "federated_record", "parse_federated"]

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
    def scenario(self) -> str:
        return "federated"

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


def parse_federated(raw: dict[str, Any], datasets: list[tuple[Any, str, str, str]]) -> list[FederatedSpec]:
    """Expand a federated config into run specs, checking every run's settings first.

    ``datasets`` are the resolved entries of the config (component, digest, modality,
    task), as :func:`poisonlab.experiments.config.parse_config` resolves them.
    """
    from poisonlab.data.dataset import train_test_split
    from poisonlab.experiments.config import _component, _list, _run_options, load_dataset_component
    from poisonlab.federated.simulation import plan_simulation

    unknown = sorted(set(raw) - FEDERATED_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in a federated config; known: {', '.join(sorted(FEDERATED_KEYS))}"
        )
    table = raw.get("federated", {})
    if not isinstance(table, dict):
        raise ConfigError(f"'federated' must be a table of settings, got {table!r}")
    bad = sorted(set(table) - set(SETTINGS))
    if bad:
        raise ConfigError(f"unknown [federated] setting {bad[0]!r}; known: {', '.join(SETTINGS)}")

    models = [_component(e, "models") for e in _list(raw, "models", ["mlp"])]
    attacks = [_component(e, "attacks") for e in _list(raw, "attacks")]
    aggregators = [_component(e, "aggregators") for e in _list(raw, "aggregators", ["fedavg"])]
    shares = _list(raw, "malicious", [0.2])
    seeds, test_size, baseline = _run_options(raw)
    for comp in models:
        if comp.params:
            raise ConfigError(f"federated models take no parameters, got {comp.label!r}")
    if baseline and not any(a.name == "none" for a in attacks):
        attacks.insert(0, _component("none", "attacks"))

    runs: list[FederatedSpec] = []
    for data_comp, digest, _modality, task in datasets:
        if task != "classification":
            raise ConfigError(
                f"federated simulation needs classification data; {data_comp.label!r} is {task}"
            )
        data = load_dataset_component(data_comp)
        n_train = len(train_test_split(data, test_size=float(test_size), random_state=0)[0])
        for model, attack, aggregator in itertools.product(models, attacks, aggregators):
            # The attack-free baseline has no malicious clients: one run per seed.
            run_shares: list[Any] = [None] if attack.name == "none" else list(shares)
            for share in run_shares:
                spec = FederatedSpec(
                    data_comp,
                    model,
                    attack,
                    share,
                    aggregator,
                    0,
                    {**SETTINGS, **table},
                    float(test_size),
                    digest,
                )
                kwargs = spec.simulate_kwargs()
                kwargs.pop("seed")
                plan_simulation(  # fail fast
                    n_train=n_train, n_classes=data.n_classes, sample_shape=data.X.shape[1:], **kwargs
                )
                runs += [
                    FederatedSpec(
                        data_comp,
                        model,
                        attack,
                        share,
                        aggregator,
                        seed,
                        {**SETTINGS, **table},
                        float(test_size),
                        digest,
                    )
                    for seed in seeds
                ]
    return runs


def federated_record(rounds: list[dict[str, Any]], n_malicious: int) -> dict[str, Any]:
    """A run's summary fields from the simulation's per-round records."""
    last = rounds[-1]
    shares = [r["malicious_selected"] for r in rounds if r["malicious_selected"] is not None]
    return {
        "clean_acc": last["accuracy"],
        "asr": last["asr"],
        "malicious_selected": sum(shares) / len(shares) if shares else None,
        "n_poison": n_malicious,
        "diverged_round": next((r["round"] for r in rounds if r.get("diverged")), None),
        "rounds": rounds,
    }
