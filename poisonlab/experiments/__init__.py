"""Experiment grids: scenarios, config parsing, the pure run function, the results store, the runner.

A config names a scenario (:data:`SCENARIOS`); the scenario parses it into run
specs, plans them against datasets loaded once, and executes each into a frozen
run record (:mod:`poisonlab.experiments.records`); the runner schedules runs and
alone writes the SQLite store, ``summary.json`` and ``results.csv``.
"""

from poisonlab.experiments.centralised import RunSpec
from poisonlab.experiments.config import DEFAULT_CONFIG, Experiment, load_config, parse_config
from poisonlab.experiments.federated import FederatedSpec
from poisonlab.experiments.graph import GraphSpec
from poisonlab.experiments.privacy import PrivacySpec
from poisonlab.experiments.protocol import Scenario
from poisonlab.experiments.records import (
    COLUMNS,
    CentralisedRecord,
    FederatedRecord,
    GraphRecord,
    PrivacyRecord,
    RunRecord,
)
from poisonlab.experiments.run import run_experiment
from poisonlab.experiments.runner import GridOutcome, aggregate, run_grid
from poisonlab.experiments.scenarios import SCENARIOS
from poisonlab.experiments.store import ResultStore
from poisonlab.experiments.stream import StreamSpec

__all__ = [
    "COLUMNS",
    "DEFAULT_CONFIG",
    "SCENARIOS",
    "CentralisedRecord",
    "Experiment",
    "FederatedRecord",
    "FederatedSpec",
    "GraphRecord",
    "GraphSpec",
    "GridOutcome",
    "PrivacyRecord",
    "PrivacySpec",
    "ResultStore",
    "RunRecord",
    "RunSpec",
    "Scenario",
    "StreamSpec",
    "aggregate",
    "load_config",
    "parse_config",
    "run_experiment",
    "run_grid",
]
