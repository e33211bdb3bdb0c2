"""poisonlab: red-team and defend machine-learning training pipelines against data poisoning.

The flow: a :class:`Dataset` goes through an attack (``ATTACKS``) to a
:class:`PoisonResult`, through a defense (``DEFENSES``) to a model (``MODELS``), and
the runner (:func:`run_grid`) measures C-ACC, ASR and RA for every cell of a grid.
"""

from poisonlab.attacks import ATTACKS, Attack, PoisonResult, Trigger
from poisonlab.data import DATASETS, Dataset, load_dataset, train_test_split
from poisonlab.defenses import DEFENSES
from poisonlab.errors import ConfigError, DataError, PoisonlabError, UnknownNameError
from poisonlab.experiments import load_config, parse_config, run_experiment, run_grid
from poisonlab.models import MODELS

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
