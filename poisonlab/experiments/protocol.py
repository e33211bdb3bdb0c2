"""The scenario protocol: parse a config, plan its runs, execute one run.

A scenario turns the top-level keys of a run config into frozen, hashable run
specs (:meth:`Scenario.parse`), checks every spec against the data and the
components' tags before any run starts (:meth:`Scenario.plan`, datasets already
loaded once), and executes one spec into a frozen, typed run record
(:meth:`Scenario.execute`). The config parser, the runner and the CLI dispatch
through :data:`~poisonlab.experiments.scenarios.SCENARIOS` by the spec's
``scenario`` name, never on its type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from poisonlab.data.dataset import Dataset
from poisonlab.experiments.records import RunRecord
from poisonlab.experiments.spec import Component, DataRef, load_dataset_component, resolve_dataset

__all__ = ["OnProgress", "Scenario", "Spec", "data_key", "identity"]

OnProgress = Callable[[dict[str, Any]], None]


class Spec(Protocol):
    """What the runner needs of every scenario's run spec."""

    scenario: ClassVar[str]

    @property
    def dataset(self) -> Component: ...

    @property
    def model(self) -> Component: ...

    @property
    def attack(self) -> Component: ...

    @property
    def seed(self) -> int: ...

    @property
    def test_size(self) -> float: ...

    @property
    def data_digest(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    def to_json(self) -> str: ...


def identity(spec: Spec) -> dict[str, Any]:
    """The record fields that name a run in every scenario (each adds its own)."""
    return {
        "run_id": spec.run_id,
        "dataset": spec.dataset.label,
        "model": spec.model.label,
        "attack": spec.attack.label,
        "seed": spec.seed,
    }


def data_key(component: Component, digest: str) -> str:
    """Which loaded dataset a spec runs on: its entry and the file's content digest."""
    return f"{component.name}|{sorted(component.params.items())}|{digest}"


class Scenario(ABC):
    """One way a poisoned training pipeline runs: centralised, federated, a stream, a knowledge graph."""

    #: Top-level config keys the scenario reads (``scenario`` included).
    keys: ClassVar[frozenset[str]]
    #: A small config of this scenario that runs in seconds (docs and the conformance checks).
    example: ClassVar[dict[str, Any]]

    def resolve(self, entry: Any, base_dir: Path | None) -> DataRef:
        """One entry of the config's ``datasets``, loaded once (a table's or an image set's by default)."""
        return resolve_dataset(entry, base_dir)

    def load(self, dataset: Component) -> Any:
        """A spec's data, loaded from its component (where the grid did not pass it loaded)."""
        return load_dataset_component(dataset)

    @abstractmethod
    def parse(self, raw: Mapping[str, Any], datasets: Sequence[DataRef]) -> list[Spec]:
        """Expand a config's keys into run specs (baseline runs first in each cell)."""

    @abstractmethod
    def plan(self, specs: Sequence[Spec], data: Mapping[str, Dataset]) -> None:
        """Refuse, with one line, any spec that cannot run on its data, before any run starts."""

    @abstractmethod
    def execute(self, spec: Spec, data: Dataset, on_progress: OnProgress | None = None) -> RunRecord:
        """Run one spec on its (already loaded) dataset; raise for a failed run."""

    @abstractmethod
    def stub(self, spec: Spec) -> RunRecord:
        """The spec's record with every figure empty (what a failed run records)."""
