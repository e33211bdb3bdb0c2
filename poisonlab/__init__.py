"""poisonlab: red-team and defend machine-learning training pipelines against data poisoning.

The flow: a :class:`Dataset` goes through an attack (``ATTACKS``) to a
:class:`PoisonResult`, through a defense (``DEFENSES``) to a model (``MODELS``), and
the runner (:func:`run_grid`) measures C-ACC, ASR and RA for every cell of a grid.
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
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'poisonlab' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ATTACKS",
    "DATASETS",
    "DEFENSES",
    "MODELS",
    "Attack",
    "ConfigError",
    "DataError",
    "Dataset",
    "PoisonResult",
    "PoisonlabError",
    "Trigger",
    "UnknownNameError",
    "__version__",
    "load_config",
    "load_dataset",
    "parse_config",
    "run_experiment",
    "run_grid",
    "train_test_split",
]
