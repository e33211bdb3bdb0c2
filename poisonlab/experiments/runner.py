"""Schedules runs, stores each result as soon as it finishes, resumes, and writes the summary."""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.evidence_cache import evidence_cache
from poisonlab.errors import ConfigError
from poisonlab.experiments.config import Experiment
from poisonlab.experiments.protocol import OnProgress, Spec
from poisonlab.experiments.records import COLUMNS, RunRecord, derive
from poisonlab.experiments.run import run_experiment, run_record_stub
from poisonlab.experiments.store import ResultStore

STORE_NAME = "results.sqlite"
#: Where a grid's runs execute: this machine's process pool, or Ray (local or a cluster).
EXECUTORS = ("process", "ray")
OnResult = Callable[[RunRecord], None]


@dataclass(frozen=True)
class GridOutcome:
    """What a grid left behind: one record per run of the grid, and where files went."""

    records: list[RunRecord]
    n_skipped: int
    out_dir: Path

    @property
    def n_failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.records)


def pending_runs(experiment: Experiment, out_dir: Path, *, resume: bool) -> tuple[list[Spec], int]:
    """Runs still to do; refuses to mix a new grid into a folder with results unless resuming."""
    unique = list({spec.run_id: spec for spec in experiment.runs}.values())
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; name a folder for the results")
    store_path = out_dir / STORE_NAME
    # summary.json and results.csv are rewritten at the end of a grid: never over files
    # of another grid (or of the user) unless resuming that grid from its store
    held = [name for name in (STORE_NAME, "summary.json", "results.csv") if (out_dir / name).exists()]
    if held and not resume:
        raise ConfigError(
            f"{out_dir} already holds {', '.join(held)}; pass --resume to continue that grid, "
            "or choose another --out"
        )
    if not store_path.exists():
        if held:
            raise ConfigError(
                f"{out_dir} holds {', '.join(held)} but no results store to resume; choose another --out"
            )
        _check_can_create(out_dir)
        return unique, 0
    with ResultStore(store_path) as store:
        if not resume and store.count():
            raise ConfigError(
                f"{out_dir} already holds {store.count()} stored runs; "
                "pass --resume to continue, or choose another --out"
            )
        done = store.finished_ids()
        store.records()  # every stored record must read back: a damaged one is refused before any run
    todo = [s for s in unique if s.run_id not in done]
    return todo, len(unique) - len(todo)


def _check_can_create(out_dir: Path) -> None:
    """Refuse a results folder that cannot be made, before any run (and any progress bar) starts.

    A probe folder is made and removed in the nearest existing ancestor: that is the
    one test that holds for permissions, read-only mounts and special file systems alike.
    """
    ancestor = out_dir.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"--out {out_dir}: {ancestor} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".poisonlab-probe-"))
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create a folder in {ancestor} ({exc.strerror})") from None


def run_grid(
    experiment: Experiment,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    resume: bool = False,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
    command: Sequence[str] | None = None,
    executor: str = "process",
    address: str | None = None,
) -> GridOutcome:
    """Run every pending run of ``experiment`` and write ``summary.json`` / ``results.csv``.

    Only this driver writes the store: each record is committed as soon as its run
    finishes. ``on_progress`` receives progress records from inside a run (a
    federated run's rounds) as they finish (``jobs=1`` only). The store also records
    each start: ``command`` (the command line; ``sys.argv`` when not given) and the
    experiment's config, which ``poisonlab report`` shows as the results' provenance.

    ``executor="ray"`` runs each run as a Ray task (:mod:`poisonlab.experiments.ray_executor`)
    on a local instance, or on the cluster at ``address``; ``jobs`` then does not apply.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    check_executor(executor, address)
    out_dir = Path(out_dir)
    todo, n_skipped = pending_runs(experiment, out_dir, resume=resume)
    with ResultStore(out_dir / STORE_NAME) as store, evidence_cache(out_dir) as cache:
        store.add_invocation(list(sys.argv if command is None else command), experiment.config)
        if executor == "ray":
            from poisonlab.experiments.ray_executor import execute_on_ray

            finished = execute_on_ray(experiment, todo, address=address, cache=cache)
        else:
            finished = _execute(experiment, todo, jobs, on_progress, cache)
        for spec, record in finished:
            store.put(spec.to_json(), record)
            if on_result is not None:
                on_result(record)
        records = store.records([s.run_id for s in experiment.runs])
    records = derive(_dedupe(records))
    write_summary(records, out_dir)
    return GridOutcome(records, n_skipped, out_dir)


def check_executor(executor: str, address: str | None) -> None:
    """Refuse an executor that cannot run, before anything is written: Ray missing, nothing at ``address``."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if address is not None and executor != "ray":
        raise ConfigError("--address names a Ray cluster; it goes with --executor ray")
    if executor == "ray":
        from poisonlab.experiments.ray_executor import check_address, require_ray

        require_ray()
        if address is not None:
            check_address(address)


def _execute(
    experiment: Experiment,
    todo: list[Spec],
    jobs: int,
    on_progress: OnProgress | None = None,
    cache: Path | None = None,
) -> Iterator[tuple[Spec, RunRecord]]:
    """Yield (spec, record) as runs finish; a worker that dies fails only its own run.

    Workers share the grid's evidence ``cache`` folder with this process (see
    :mod:`poisonlab.defenses.evidence_cache`).
    """
    if jobs == 1 or len(todo) <= 1:
        for spec in todo:
            yield spec, run_experiment(spec, experiment.dataset_of(spec), on_progress)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # safe with torch's thread pools
    queue = iter(todo)
    while True:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(threads, cache)
        ) as pool:
            futures: dict[Future[RunRecord], Spec] = {}
            broken = False
            try:
                _submit(pool, futures, queue, 2 * jobs, experiment)
                while futures and not broken:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        spec = futures.pop(future)
                        try:
                            yield spec, future.result()
                        except BrokenProcessPool:
                            broken = True
                            yield spec, _died(spec)
                    if not broken:
                        _submit(pool, futures, queue, 2 * jobs - len(futures), experiment)
            except BaseException:  # Ctrl-C, SIGTERM (see the CLI), a bug: no worker outlives the grid
                _end_workers(pool)
                raise
            finally:
                for future in futures:
                    future.cancel()
        if not broken:
            return
        # The pool is unusable: runs still in flight are retried in a fresh pool.
        queue = itertools.chain(list(futures.values()), queue)


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's worker processes now, not after their runs: their results would be thrown away.

    ``ProcessPoolExecutor`` has no public way to do this before Python 3.14
    (``terminate_workers``); its ``_processes`` map is the documented-by-source route.
    """
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _died(spec: Spec) -> RunRecord:
    return run_record_stub(spec).failed("worker process died (out of memory or killed)", failure="bug")


def _submit(
    pool: ProcessPoolExecutor,
    futures: dict[Future[RunRecord], Spec],
    queue: Iterator[Spec],
    n: int,
    experiment: Experiment,
) -> None:
    for _ in range(max(0, n)):
        spec = next(queue, None)
        if spec is None:
            return
        data: Dataset = experiment.dataset_of(spec)
        futures[pool.submit(run_experiment, spec, data)] = spec


def _init_worker(threads: int, cache: Path | None) -> None:
    import torch

    from poisonlab.defenses.evidence_cache import use_evidence_cache

    torch.set_num_threads(threads)
    use_evidence_cache(cache)


def _dedupe(records: Iterable[RunRecord]) -> list[RunRecord]:
    seen: dict[str, RunRecord] = {}
    for r in records:
        seen.setdefault(r.run_id, r)
    return list(seen.values())


def load_records(out_dir: str | os.PathLike[str]) -> list[RunRecord]:
    """Every run stored in a results folder, with its comparative figures derived.

    Raises
    ------
    ConfigError
        If ``out_dir`` holds no results store (nothing is created there).
    """
    store_path = Path(out_dir) / STORE_NAME
    if not store_path.is_file():
        raise ConfigError(f"{out_dir} is not a poisonlab results folder (it holds no {STORE_NAME})")
    with ResultStore(store_path) as store:
        return derive(_dedupe(store.records()))


def write_summary(records: list[RunRecord], out_dir: Path) -> None:
    """``results.csv``: one row per run; ``summary.json``: the same rows under ``runs`` and,
    under ``aggregate``, each grid cell's mean and standard deviation over seeds
    (:func:`aggregate`: ``[mean, std]`` per metric, ``n_seeds`` beside them)."""
    rows = [r.row() for r in records]
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"runs": rows, "aggregate": aggregate(records)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_plain_number) + "\n")
    with open(out_dir / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _plain_number(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to summary.json")


AGG_METRICS = (
    "persistence",
    "subpop_acc",
    "subpop_drop",
    "rest_acc",
    "rest_drop",
    "certified_acc",
    "dp_epsilon",
    "clean_acc",
    "asr",
    "ra",
    "acc_drop",
    "test_mse",
    "mse_ratio",
    "det_precision",
    "det_tpr",
    "det_fpr",
    "det_f1",
    "der",
    "malicious_selected",
    "n_admitted_poison",
    "target_mrr",
    "target_mrr_drop",
    "hits_at_1",
    "hits_at_10",
    "graph_mrr",
    "graph_mrr_change",
    "lira_tpr_01",
    "lira_tpr_1",
    "lira_auc",
    "lira_tpr_01_clean",
    "lira_tpr_1_clean",
    "lira_auc_clean",
)


def aggregate(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each grid cell's metrics (finished runs only).

    Each row names its cell by the scenario's own columns: ``defense`` and
    ``poison_rate`` for a centralised run, ``aggregator`` and ``malicious_share`` for a
    federated one (see :meth:`~poisonlab.experiments.records.RunRecord.cell`).
    """
    groups: dict[tuple[Any, ...], list[RunRecord]] = {}
    for r in records:
        if r.status == "ok":
            groups.setdefault(r.cell(), []).append(r)
    rows = []
    for group in groups.values():
        first = group[0]
        (by, defended), (condition, rate) = first.defended_by(), first.condition()
        row: dict[str, Any] = {
            "scenario": first.scenario,
            "dataset": first.dataset,
            "model": first.model,
            "attack": first.attack,
            by: defended,
            condition: rate,
            "defended_by": by,  # which column names the cell's defense, and which its condition
            "condition": condition,
            "n_seeds": len(group),
        }
        counts = [g["n_poison"] if g["n_poison"] is not None else g["n_malicious"] for g in group]
        known = [c for c in counts if c is not None]
        row["n_poison"] = float(np.mean(known)) if known else 0.0
        # the threat model: when the attacker acted and what it changed (the same for every seed)
        row["phase"] = first["phase"]
        modified = [g["n_modified"] for g in group if g["n_modified"] is not None]
        row["n_modified"] = float(np.mean(modified)) if modified else None
        row["perturbation"] = first["perturbation"]
        for metric in AGG_METRICS:
            values = [g[metric] for g in group if g[metric] is not None]
            row[metric] = (float(np.mean(values)), float(np.std(values))) if values else None
        rows.append(row)
    return rows
