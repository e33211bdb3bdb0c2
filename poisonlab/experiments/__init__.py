"""Experiment grids: config schema, the pure run function, the results store and the runner."""

from poisonlab.experiments.config import DEFAULT_CONFIG, Experiment, RunSpec, load_config, parse_config
from poisonlab.experiments.run import RECORD_FIELDS, run_experiment
from poisonlab.experiments.runner import GridOutcome, aggregate, run_grid
from poisonlab.experiments.store import ResultStore

__all__ = [
    "DEFAULT_CONFIG",
    "RECORD_FIELDS",
    "Experiment",
    "GridOutcome",
    "ResultStore",
    "RunSpec",
    "aggregate",
    "load_config",
    "parse_config",
    "run_experiment",
    "run_grid",
]
