"""What every scenario's specs share: components, resolved datasets, config helpers, the run id."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from poisonlab.data.dataset import Dataset
from poisonlab.data.readers import load_dataset
from poisonlab.errors import ConfigError

#: The name of the clean baseline in every kind that has one: the attack that poisons
#: nothing, the defense that removes nothing, the honest client. A grid compares each
#: run with the run of its cell that has this attack (``acc_drop``) or defense (``der``).
NONE = "none"


class HashedSpec:
    """Mixin for frozen dataclass run specs: ``run_id`` is a hash of every field."""

    def to_json(self) -> str:
        fields: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return json.dumps(fields, sort_keys=True, default=str)

    @property
    def run_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


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


#: Keys of a dataset entry that names a file.
DATASET_FILE_KEYS = {"path", "label_col", "id_col", "source_col", "task"}


@dataclass(frozen=True, eq=False)
class DataRef:
    """A config's dataset entry, resolved: the component, its content digest, the data loaded once."""

    component: Component
    digest: str
    data: Dataset

    @property
    def label(self) -> str:
        return self.component.label

    @property
    def what(self) -> str:
        """How messages name it: ``dataset 'digits' (image classification)``."""
        return f"dataset {self.label!r} ({self.data.modality} {self.data.task})"


def listed(raw: Mapping[str, Any], key: str, default: list[Any] | None = None) -> list[Any]:
    """``raw[key]`` as a non-empty list (``default`` when absent)."""
    value = raw.get(key, default)
    if value is None:
        raise ConfigError(f"config needs {key!r} (a list)")
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key!r} must be a non-empty list, got {value!r}")
    return value


def component(entry: Any, key: str) -> Component:
    """A config entry written as a name or as a table with a ``name``."""
    if isinstance(entry, str):
        return Component(entry)
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        params = {k: v for k, v in entry.items() if k != "name"}
        for k, v in params.items():  # TOML has nan and inf; no parameter means them
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{entry['name']}: parameter {k} = {v} is not a finite number")
        return Component(entry["name"], params)
    raise ConfigError(f"each entry of {key!r} must be a name or a table with a 'name', got {entry!r}")


def bounded_int(value: Any, what: str, least: int, most: int) -> int:
    """``value`` when it is an integer in ``least..most``; one line naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ConfigError(f"{what} must be an integer in {least}..{most}, got {value!r}")
    return value


#: The largest seed NumPy's legacy generator and scikit-learn's ``random_state`` take.
MAX_SEED = 2**32 - 1


def run_options(raw: Mapping[str, Any]) -> tuple[list[int], float, bool]:
    """``seeds``, ``test_size`` and ``baseline``, checked; every scenario takes them."""
    seeds = listed(raw, "seeds", [0])
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds must be integers, got {seeds}")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:  # NumPy and scikit-learn take seeds in [0, 2**32 - 1]
        raise ConfigError(f"seeds must lie in 0..{MAX_SEED}, got {bad[0]}")
    test_size = raw.get("test_size", 0.25)
    if isinstance(test_size, bool) or not isinstance(test_size, int | float) or not 0 < test_size < 1:
        raise ConfigError(f"test_size must lie in (0, 1), got {test_size!r}")
    baseline = raw.get("baseline", True)
    if not isinstance(baseline, bool):
        raise ConfigError(f"baseline must be true or false, got {baseline!r}")
    return seeds, float(test_size), baseline


def resolve_dataset(entry: Any, base_dir: Path | None) -> DataRef:
    """A dataset entry of a config, loaded (once) to validate it and learn its task and modality."""
    if isinstance(entry, dict) and "path" in entry:
        unknown = sorted(set(entry) - DATASET_FILE_KEYS)
        if unknown:
            raise ConfigError(f"dataset file entry has unknown key {unknown[0]!r}")
        path = Path(entry["path"])
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        comp = Component(path.stem if path.suffix else path.name, {**entry, "path": str(path)})
    else:
        comp = component(entry, "datasets")
    data = load_dataset_component(comp)
    digest = content_digest(Path(comp.params["path"])) if "path" in comp.params else ""
    return DataRef(comp, digest, data)


def load_dataset_component(comp: Component) -> Dataset:
    params = dict(comp.params)
    spec = params.pop("path", comp.name)
    return load_dataset(spec, **params)


def content_digest(path: Path) -> str:
    """A short hash of a data file's (or a folder's files') names and bytes: part of a run's id."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
