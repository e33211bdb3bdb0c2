"""Experiment configs: a TOML mapping parsed by its scenario into independent, hashable run specs.

``scenario`` (default ``"centralised"``) names an entry of
:data:`~poisonlab.experiments.scenarios.SCENARIOS`; the scenario reads the other
keys. Datasets are loaded once here, every spec is planned against them before any
run starts, and the loaded data travel with the :class:`Experiment` to the runs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError, IncompatibleError, UnknownNameError
from poisonlab.experiments.protocol import Scenario, Spec, data_key
from poisonlab.experiments.scenarios import SCENARIOS
from poisonlab.experiments.spec import listed

__all__ = ["DEFAULT_CONFIG", "INCOMPATIBLE", "Experiment", "load_config", "parse_config"]


@dataclass(frozen=True, eq=False)
class Experiment:
    """A parsed config: the ordered run specs it expands to, and the datasets they run on."""

    runs: tuple[Spec, ...]
    data: Mapping[str, Dataset] = field(default_factory=dict)
    #: the config mapping as written (recorded with the results, for the report's provenance)
    config: Mapping[str, Any] = field(default_factory=dict)
    #: with ``incompatible = "skip"``: one line per reason a cell was left out, with its run count
    skipped: tuple[str, ...] = ()

    def dataset_of(self, spec: Spec) -> Dataset:
        """The loaded dataset ``spec`` runs on."""
        return self.data[data_key(spec.dataset, spec.data_digest)]


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


def parse_config(raw: Mapping[str, Any], *, base_dir: Path | None = None) -> Experiment:
    """Validate a config mapping, load its datasets once, expand it into planned run specs."""
    name = raw.get("scenario", "centralised")
    try:
        scenario = SCENARIOS.create(name)
    except UnknownNameError:
        raise ConfigError(f"scenario must be one of {', '.join(SCENARIOS.names())}, got {name!r}") from None
    known = scenario.keys | {"incompatible"}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = "" if name == "centralised" else f" in a {name} config"
        raise ConfigError(f"unknown config key {unknown[0]!r}{where}; known: {', '.join(sorted(known))}")
    policy = raw.get("incompatible", "error")
    if policy not in INCOMPATIBLE:
        raise ConfigError(f"incompatible must be one of {', '.join(INCOMPATIBLE)}, got {policy!r}")
    refs = [scenario.resolve(e, base_dir) for e in listed(raw, "datasets")]
    runs = scenario.parse(raw, refs)
    data = {data_key(r.component, r.digest): r.data for r in refs}
    skipped: tuple[str, ...] = ()
    if policy == "error":
        scenario.plan(runs, data)
    else:
        runs, skipped = _skip_incompatible(scenario, runs, data)
    return Experiment(tuple(runs), data, dict(raw), skipped)


#: What a grid does with a cell whose components cannot work on its dataset (``incompatible``):
#: refuse the whole config (the default), or leave the cell out with one line saying why.
INCOMPATIBLE = ("error", "skip")


def _skip_incompatible(
    scenario: Scenario, runs: list[Spec], data: Mapping[str, Dataset]
) -> tuple[list[Spec], tuple[str, ...]]:
    """The runs that can work on their data, and one line per reason the others cannot.

    Only :class:`IncompatibleError` (a component for another kind of data, a class or
    patch the dataset does not have) is skipped; a parameter that is wrong for every
    dataset still fails the config.
    """
    kept: list[Spec] = []
    reasons: dict[str, int] = {}
    for spec in runs:
        try:
            scenario.plan([spec], data)
        except IncompatibleError as exc:
            reasons[str(exc)] = reasons.get(str(exc), 0) + 1
            continue
        kept.append(spec)
    if not kept:
        raise IncompatibleError(f"no run of this grid can work on its data: {next(iter(reasons))}")
    lines = tuple(f"skipped {n} run{'s' if n > 1 else ''}: {reason}" for reason, n in reasons.items())
    return kept, lines
