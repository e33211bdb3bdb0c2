"""poisonlab from Python: thin wrappers over what the command line calls.

Each function takes what a notebook has at hand (arrays, a dataset name or path,
a config dict or file) and returns poisonlab's own result objects or pandas
DataFrames::

    import poisonlab
    report = poisonlab.scan(X, y)                 # NumPy arrays: images N×C×H×W or rows N×d
    report.flagged                                # row indices flagged as poisoned
    report.to_frame()                             # one row per sample: label, prediction, score, flags
    poisoned = poisonlab.poison("digits", "badnets", 0.05, target=0)
    results = poisonlab.run({"datasets": ["wine"], "models": ["logreg"], "attacks": ["label_flip"]}, "out")
    results = poisonlab.load_results("out")       # one row per run
    poisonlab.write_report("out")                 # out/report.html: figures, results, provenance
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonlab.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from poisonlab.attacks.base import PoisonResult
    from poisonlab.data.dataset import Dataset
    from poisonlab.defenses.scan import ScanReport
    from poisonlab.experiments.config import Experiment

__all__ = ["load_results", "poison", "run", "scan"]

DataLike = Any  # a Dataset, a built-in name or path, or an array X (with y)


def as_dataset(data: DataLike, y: Any = None) -> Dataset:
    """A :class:`~poisonlab.data.Dataset` from a dataset, a name or path, or arrays ``X`` and ``y``."""
    from poisonlab.data import Dataset, load_dataset

    if isinstance(data, Dataset):
        if y is not None:
            raise ConfigError("give y only with an array X, not with a Dataset")
        return data
    if isinstance(data, str | os.PathLike):
        if y is not None:
            raise ConfigError("give y only with an array X, not with a dataset name or path")
        return load_dataset(str(data))
    if y is None:
        raise ConfigError("an array X needs its labels: scan(X, y)")
    return Dataset.from_arrays(np.asarray(data), np.asarray(y), name="arrays")


def scan(
    data: DataLike,
    y: Any = None,
    *,
    detector: str = "auto",
    contamination: float | None = None,
    features: np.ndarray | None = None,
    random_state: int = 0,
    **params: Any,
) -> ScanReport:
    """Find the rows most likely to be poisoned, without knowing the rate (``poisonlab scan``).

    ``params`` are the detector's own parameters (``epsilon=0.05`` for ``spectral``).
    The report's ``flagged`` holds the flagged row indices; ``to_frame()`` one row per sample.
    """
    from poisonlab.defenses.scan import scan as run_scan

    return run_scan(
        as_dataset(data, y),
        detector=detector,
        contamination=contamination,
        features=features,
        random_state=random_state,
        params=params,
    )


def poison(data: DataLike, attack: str, rate: float | None, *, seed: int = 0, **params: Any) -> PoisonResult:
    """Poison a copy of ``data`` with a registered attack (``poisonlab attack``).

    ``params`` are the attack's parameters (``target=3``); the result holds the
    poisoned dataset and the exact ``poison_mask``.
    """
    from poisonlab.attacks import ATTACKS

    dataset = as_dataset(data)
    what = f"dataset {dataset.name!r} ({dataset.modality} {dataset.task})"
    entry = ATTACKS.require(attack, what, tasks=dataset.task, modalities=dataset.modality, phase="training")
    return entry.create(**params).poison(dataset, rate, np.random.default_rng(seed))


def run(
    config: Mapping[str, Any] | str | os.PathLike[str] | Experiment,
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    resume: bool = False,
) -> pd.DataFrame:
    """Run a grid (``poisonlab run``) into the folder ``out``; one row per run, as ``results.csv``."""
    from poisonlab.experiments import load_config, parse_config, run_grid
    from poisonlab.experiments.config import Experiment

    if isinstance(config, Experiment):
        experiment = config
    elif isinstance(config, Mapping):
        experiment = parse_config(dict(config), base_dir=Path.cwd())
    else:
        experiment = load_config(Path(config))
    run_grid(experiment, Path(out), jobs=jobs, resume=resume)
    return load_results(out)


def load_results(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Every run of a results folder (``run``, ``fl``, a stream grid) as a DataFrame, one row per run."""
    import pandas as pd

    from poisonlab.experiments.records import COLUMNS
    from poisonlab.experiments.runner import load_records

    return pd.DataFrame([record.row() for record in load_records(run_dir)], columns=list(COLUMNS))


def write_report(
    result: ScanReport | str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write a self-contained HTML report (``poisonlab report``) and return its path.

    ``result`` is a results folder (:func:`run`, ``poisonlab run`` or ``fl``; ``out``
    defaults to ``report.html`` inside it) or a :class:`~poisonlab.defenses.scan.ScanReport`
    from :func:`scan` (``out`` required).
    """
    from poisonlab.defenses.scan import ScanReport
    from poisonlab.report import write_run_report, write_scan_report

    if isinstance(result, ScanReport):
        if out is None:
            raise ConfigError("give the scan report's HTML file: write_report(report, 'scan.html')")
        return write_scan_report(result, out, source=result.dataset.name)
    return write_run_report(result, out)
