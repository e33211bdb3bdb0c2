"""poisonlab: red-team and defend machine-learning training pipelines against data poisoning.

The flow: a :class:`Dataset` goes through an attack (``ATTACKS``) to a
:class:`PoisonResult`, through a defense (``DEFENSES``) to a model (``MODELS``), and
the runner (:func:`run_grid`) measures C-ACC, ASR and RA for every cell of a grid.
From a notebook: :func:`scan`, :func:`poison`, :func:`run`, :func:`load_results` and
:func:`write_report`; :func:`simulate_federated`, :func:`simulate_stream` and
:class:`Ledger` are what ``poisonlab fl``, ``stream`` and ``ledger`` call
(:mod:`poisonlab.api`) take arrays, names or a config dict.
"""

from importlib import import_module
from typing import Any

# Public names and the module each lives in. Imported on first use, so that the
# command line starts without loading PyTorch until a command needs it.
_EXPORTS = {
    "ATTACKS": "poisonlab.attacks",
    "Attack": "poisonlab.attacks",
    "PoisonResult": "poisonlab.attacks",
    "Trigger": "poisonlab.attacks",
    "DATASETS": "poisonlab.data",
    "Dataset": "poisonlab.data",
    "load_dataset": "poisonlab.data",
    "train_test_split": "poisonlab.data",
    "DEFENSES": "poisonlab.defenses",
    "MODELS": "poisonlab.models",
    "ConfigError": "poisonlab.errors",
    "DataError": "poisonlab.errors",
    "PoisonlabError": "poisonlab.errors",
    "UnknownNameError": "poisonlab.errors",
    "load_config": "poisonlab.experiments",
    "parse_config": "poisonlab.experiments",
    "run_experiment": "poisonlab.experiments",
    "run_grid": "poisonlab.experiments",
    "scan": "poisonlab.api",
    "poison": "poisonlab.api",
    "run": "poisonlab.api",
    "load_results": "poisonlab.api",
    "write_report": "poisonlab.api",
    "ScanReport": "poisonlab.defenses.scan",
    # the federated, stream and ledger entry points, as `poisonlab fl`, `stream` and `ledger` use them
    "simulate_federated": "poisonlab.federated",
    "simulate_stream": "poisonlab.stream",
    "Ledger": "poisonlab.provenance",
    # knowledge graphs and membership inference
    "GRAPHS": "poisonlab.data",
    "KnowledgeGraph": "poisonlab.data",
    "load_graph": "poisonlab.data",
    "membership_audit": "poisonlab.privacy",
}

#: Top-level names that differ from the name in their module.
_RENAMED = {"simulate_federated": "simulate"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'poisonlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "ATTACKS",
    "DATASETS",
    "DEFENSES",
    "GRAPHS",
    "MODELS",
    "Attack",
    "ConfigError",
    "DataError",
    "Dataset",
    "KnowledgeGraph",
    "Ledger",
    "PoisonResult",
    "PoisonlabError",
    "ScanReport",
    "Trigger",
    "UnknownNameError",
    "__version__",
    "load_config",
    "load_dataset",
    "load_graph",
    "load_results",
    "membership_audit",
    "parse_config",
    "poison",
    "run",
    "run_experiment",
    "run_grid",
    "scan",
    "simulate_federated",
    "simulate_stream",
    "train_test_split",
    "write_report",
]
