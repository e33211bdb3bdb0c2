"""One run: a pure function of its spec and its dataset, through the spec's scenario."""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import traceback

from poisonlab.data.dataset import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.experiments.protocol import OnProgress, Spec
from poisonlab.experiments.records import COLUMNS, RunRecord
from poisonlab.experiments.scenarios import SCENARIOS

__all__ = ["COLUMNS", "run_experiment", "run_record_stub"]


def run_experiment(
    spec: Spec, data: Dataset | None = None, on_progress: OnProgress | None = None
) -> RunRecord:
    """Execute one run and return its record; never raises for a failed run.

    ``data`` is the spec's dataset, loaded once for the whole grid (it is loaded
    from the spec when not given). A failed run is recorded with its error and
    traceback and the grid goes on. ``on_progress`` receives progress records
    (a federated run's rounds) as they finish.
    """
    start = time.perf_counter()
    scenario = SCENARIOS.create(spec.scenario)
    try:
        record = scenario.execute(
            spec, data if data is not None else scenario.load(spec.dataset), on_progress
        )
    except Exception as exc:  # a failed run is recorded and the grid goes on
        failure = "user" if isinstance(exc, PoisonlabError) else "bug"
        # a user mistake's message is its one line; a bug's names its type
        message = str(exc) if failure == "user" else f"{type(exc).__name__}: {exc}"
        record = scenario.stub(spec).failed(message, failure=failure, traceback=traceback.format_exc())
    return _timed(record, time.perf_counter() - start)


def run_record_stub(spec: Spec) -> RunRecord:
    """The identifying fields of a run's record, with every figure still empty."""
    return SCENARIOS.create(spec.scenario).stub(spec)


def _timed(record: RunRecord, seconds: float) -> RunRecord:
    """The record with how long it took and what computed it (versions, PyTorch threads)."""
    torch = sys.modules.get("torch")  # loaded only by runs that train a torch model
    threads = int(torch.get_num_threads()) if torch is not None else None
    return dataclasses.replace(record, seconds=round(seconds, 3), torch_threads=threads, versions=versions())


@functools.cache
def versions() -> str:
    """The versions of poisonlab and the libraries its figures depend on, as one line."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("poisonlab", "numpy", "scikit-learn", "torch"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)
