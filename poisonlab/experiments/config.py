"""Experiment configs: a TOML grid expanded into independent, hashable run specs."""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonlab.attacks import ATTACKS
from poisonlab.data.dataset import Dataset
from poisonlab.data.readers import load_dataset
from poisonlab.defenses import DEFENSES
from poisonlab.errors import ConfigError
from poisonlab.experiments.federated import FederatedSpec, parse_federated
from poisonlab.experiments.spec import HashedSpec
from poisonlab.models import MODELS

TOP_LEVEL_KEYS = {
    "datasets",
    "models",
    "attacks",
    "defenses",
    "poison_rates",
    "seeds",
    "test_size",
    "baseline",
    "scenario",
}
SCENARIOS = ("centralised", "federated")
DATASET_FILE_KEYS = {"path", "label_col", "id_col", "source_col", "task"}


@dataclass(frozen=True, eq=False)
class Component:
    """A registry name with its parameters, as written in the config."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        # where a data file is and how it is read do not name the dataset
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()) if k not in DATASET_FILE_KEYS)
        return f"{self.name}[{inner}]" if inner else self.name


@dataclass(frozen=True, eq=False)
class RunSpec(HashedSpec):
    """Everything one run depends on; its hash is the run's key in the results store."""

    dataset: Component
    model: Component
    attack: Component
    poison_rate: float | None
    defense: Component
    seed: int
    test_size: float = 0.25
    data_digest: str = ""  # content hash of a user data file, so edited data reruns

    @property
    def scenario(self) -> str:
        return "centralised"


@dataclass(frozen=True)
class Experiment:
    """A parsed config: the ordered list of run specs it expands to."""

    runs: tuple[RunSpec | FederatedSpec, ...]


DEFAULT_CONFIG: dict[str, Any] = {
    "datasets": ["digits"],
    "models": ["cnn"],
    "attacks": ["none", "label_flip", "badnets", "blended"],
    "defenses": ["none"],
    "poison_rates": [0.01, 0.05, 0.1],
    "seeds": [0, 1, 2],
}


def load_config(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    return parse_config(raw, base_dir=path.parent)


def parse_config(raw: dict[str, Any], *, base_dir: Path | None = None) -> Experiment:
    """Validate a config mapping and expand it into run specs (baseline first per cell).

    ``scenario = "federated"`` makes a grid of federated simulations instead
    (:mod:`poisonlab.experiments.federated`).
    """
    scenario = raw.get("scenario", "centralised")
    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    if scenario == "federated":
        datasets = [_dataset(e, base_dir) for e in _list(raw, "datasets")]
        return Experiment(tuple(parse_federated(raw, datasets)))
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; known: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    datasets = [_dataset(e, base_dir) for e in _list(raw, "datasets")]
    models = [_component(e, "models") for e in _list(raw, "models")]
    attacks = [_component(e, "attacks") for e in _list(raw, "attacks")]
    defenses = [_component(e, "defenses") for e in _list(raw, "defenses", ["none"])]
    rates = [_rate(r) for r in _list(raw, "poison_rates", [0.05])]
    seeds, test_size, baseline = _run_options(raw)

    for comp, registry in [(m, MODELS) for m in models] + [(d, DEFENSES) for d in defenses]:
        registry.create(comp.name, **comp.params)  # fail fast on unknown names or parameters
    if baseline and not any(a.name == "none" for a in attacks):
        attacks.insert(0, Component("none"))
    for attack in attacks:
        ATTACKS.create(attack.name, **attack.params)  # fail fast on unknown names or parameters

    runs: list[RunSpec] = []
    for data_comp, digest, modality, task in datasets:
        what = f"dataset {data_comp.label!r} ({modality} {task})"
        for attack in attacks:
            ATTACKS.require(attack.name, what, tasks=task, modalities=modality)
        for model in models:
            MODELS.require(model.name, what, task=task, modalities=modality)
        for defense in defenses:
            DEFENSES.require(defense.name, what, tasks=task)
        for model, defense, attack in itertools.product(models, defenses, attacks):
            # The clean baseline has no rate: one run per seed, not one per rate.
            attack_rates: list[float | None] = [None] if attack.name == "none" else list(rates)
            runs += [
                RunSpec(data_comp, model, attack, rate, defense, seed, float(test_size), digest)
                for rate, seed in itertools.product(attack_rates, seeds)
            ]
    return Experiment(tuple(runs))


def _run_options(raw: dict[str, Any]) -> tuple[list[int], float, bool]:
    """``seeds``, ``test_size`` and ``baseline``, checked; every scenario takes them."""
    seeds = _list(raw, "seeds", [0])
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds must be integers, got {seeds}")
    test_size = raw.get("test_size", 0.25)
    if isinstance(test_size, bool) or not isinstance(test_size, int | float) or not 0 < test_size < 1:
        raise ConfigError(f"test_size must lie in (0, 1), got {test_size!r}")
    baseline = raw.get("baseline", True)
    if not isinstance(baseline, bool):
        raise ConfigError(f"baseline must be true or false, got {baseline!r}")
    return seeds, float(test_size), baseline


def _list(raw: dict[str, Any], key: str, default: list[Any] | None = None) -> list[Any]:
    value = raw.get(key, default)
    if value is None:
        raise ConfigError(f"config needs {key!r} (a list)")
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key!r} must be a non-empty list, got {value!r}")
    return value


def _component(entry: Any, key: str) -> Component:
    if isinstance(entry, str):
        return Component(entry)
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        params = {k: v for k, v in entry.items() if k != "name"}
        return Component(entry["name"], params)
    raise ConfigError(f"each entry of {key!r} must be a name or a table with a 'name', got {entry!r}")


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"poison rate must lie in (0, 1], got {value!r}")
    return float(value)


def _dataset(entry: Any, base_dir: Path | None) -> tuple[Component, str, str, str]:
    """Resolve a dataset entry; loads it once to validate and learn its modality and task."""
    if isinstance(entry, dict) and "path" in entry:
        unknown = sorted(set(entry) - DATASET_FILE_KEYS)
        if unknown:
            raise ConfigError(f"dataset file entry has unknown key {unknown[0]!r}")
        path = Path(entry["path"])
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        comp = Component(path.stem if path.suffix else path.name, {**entry, "path": str(path)})
    else:
        comp = _component(entry, "datasets")
    data = load_dataset_component(comp)
    digest = _digest(Path(comp.params["path"])) if "path" in comp.params else ""
    return comp, digest, data.modality, data.task


def load_dataset_component(comp: Component) -> Dataset:
    params = dict(comp.params)
    spec = params.pop("path", comp.name)
    return load_dataset(spec, **params)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
