"""Schedules runs, stores each result as soon as it finishes, resumes, and writes the summary."""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab import metrics
from poisonlab.errors import ConfigError
from poisonlab.experiments.config import Experiment, RunSpec
from poisonlab.experiments.federated import FederatedSpec
from poisonlab.experiments.run import RECORD_FIELDS, run_experiment, run_record_stub
from poisonlab.experiments.store import ResultStore

STORE_NAME = "results.sqlite"
Spec = RunSpec | FederatedSpec
OnResult = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class GridOutcome:
    """What a grid left behind: one record per run of the grid, and where files went."""

    records: list[dict[str, Any]]
    n_skipped: int
    out_dir: Path

    @property
    def n_failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.records)


def pending_runs(experiment: Experiment, out_dir: Path, *, resume: bool) -> tuple[list[Spec], int]:
    """Runs still to do; refuses to mix a new grid into a folder with results unless resuming."""
    unique = list({spec.run_id: spec for spec in experiment.runs}.values())
    store_path = out_dir / STORE_NAME
    if not store_path.exists():
        return unique, 0
    with ResultStore(store_path) as store:
        if not resume and store.count():
            raise ConfigError(
                f"{out_dir} already holds {store.count()} stored runs; "
                "pass --resume to continue, or choose another --out"
            )
        done = store.finished_ids()
    todo = [s for s in unique if s.run_id not in done]
    return todo, len(unique) - len(todo)


def run_grid(
    experiment: Experiment,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    resume: bool = False,
    on_result: OnResult | None = None,
    on_round: OnResult | None = None,
) -> GridOutcome:
    """Run every pending run of ``experiment`` and write ``summary.json`` / ``results.csv``.

    ``on_round`` receives each federated round's record as it finishes (``jobs=1`` only).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    out_dir = Path(out_dir)
    todo, n_skipped = pending_runs(experiment, out_dir, resume=resume)
    with ResultStore(out_dir / STORE_NAME) as store:
        for spec, record in _execute(todo, jobs, on_round):
            store.put(spec.to_json(), record)
            if on_result is not None:
                on_result(record)
        records = store.records([s.run_id for s in experiment.runs])
    records = _dedupe(add_defense_rating(add_accuracy_drop(records)))
    write_summary(records, out_dir)
    return GridOutcome(records, n_skipped, out_dir)


def _execute(
    todo: list[Spec], jobs: int, on_round: OnResult | None = None
) -> Iterator[tuple[Spec, dict[str, Any]]]:
    """Yield (spec, record) as runs finish; a worker that dies fails only its own run."""
    if jobs == 1 or len(todo) <= 1:
        for spec in todo:
            yield spec, run_experiment(spec, on_round)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # safe with torch's thread pools
    queue = iter(todo)
    while True:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures: dict[Future[dict[str, Any]], Spec] = {}
            broken = False
            try:
                _submit(pool, futures, queue, 2 * jobs)
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
                        _submit(pool, futures, queue, 2 * jobs - len(futures))
            finally:
                for future in futures:
                    future.cancel()
        if not broken:
            return
        # The pool is unusable: runs still in flight are retried in a fresh pool.
        queue = itertools.chain(list(futures.values()), queue)


def _died(spec: Spec) -> dict[str, Any]:
    record = run_record_stub(spec)
    record.update(status="failed", error="worker process died (out of memory or killed)", seconds=None)
    return record


def _submit(
    pool: ProcessPoolExecutor,
    futures: dict[Future[dict[str, Any]], Spec],
    queue: Iterator[Spec],
    n: int,
) -> None:
    for _ in range(max(0, n)):
        spec = next(queue, None)
        if spec is None:
            return
        futures[pool.submit(run_experiment, spec)] = spec


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _cell(record: dict[str, Any]) -> tuple[Any, ...]:
    scenario = record.get("scenario", "centralised")
    return (scenario, record["dataset"], record["model"], record["defense"], record["seed"])


def add_accuracy_drop(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``acc_drop`` and, for regression, ``mse_ratio``, from the clean baseline runs.

    ``acc_drop`` = the clean baseline's C-ACC − this run's, per (dataset, model,
    defense, seed). ``mse_ratio`` = this run's test MSE / the test MSE of the
    unpoisoned, *undefended* model of (dataset, model, seed), so a defense's cost
    on clean data shows as a ratio above 1.
    """
    baselines = {_cell(r): r for r in records if r["attack"] == "none" and r["status"] == "ok"}
    out = []
    for r in records:
        base = baselines.get(_cell(r), {})
        clean_mse = baselines.get(("centralised", r["dataset"], r["model"], "none", r["seed"]), {}).get(
            "test_mse"
        )
        acc = base.get("clean_acc")
        drop = None if acc is None or r["clean_acc"] is None else round(acc - r["clean_acc"], 6)
        ratio = None if not clean_mse or r.get("test_mse") is None else round(r["test_mse"] / clean_mse, 6)
        out.append({**r, "acc_drop": drop, "mse_ratio": ratio})
    return out


def add_defense_rating(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill BackdoorBench's DER for defended backdoor runs, against the undefended run of the same cell."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["dataset"], r["model"], r["attack"], r["poison_rate"], r["seed"])

    undefended = {key(r): r for r in records if r["defense"] == "none" and r["status"] == "ok"}
    out = []
    for r in records:
        base = undefended.get(key(r))
        der = None
        if r["defense"] != "none" and base is not None and r["asr"] is not None and base["asr"] is not None:
            der = metrics.defense_effectiveness_rating(
                base["asr"], r["asr"], base["clean_acc"], r["clean_acc"]
            )
        out.append({**r, "der": der})
    return out


def _dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        seen.setdefault(r["run_id"], r)
    return list(seen.values())


def write_summary(records: list[dict[str, Any]], out_dir: Path) -> None:
    """``summary.json`` and ``results.csv``: the same columns, one row per run."""
    rows = [{k: r.get(k) for k in RECORD_FIELDS} for r in records]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(out_dir / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


AGG_METRICS = (
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
)


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each grid cell's metrics (finished runs only)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        if r["status"] == "ok":
            scenario = r.get("scenario", "centralised")
            key = (scenario, r["dataset"], r["model"], r["attack"], r["poison_rate"], r["defense"])
            groups.setdefault(key, []).append(r)
    rows = []
    for (scenario, dataset, model, attack, rate, defense), group in groups.items():
        row: dict[str, Any] = {
            "scenario": scenario,
            "dataset": dataset,
            "model": model,
            "attack": attack,
            "poison_rate": rate,
            "defense": defense,
            "n_seeds": len(group),
            "n_poison": float(np.mean([g["n_poison"] for g in group])),
        }
        for metric in AGG_METRICS:
            values = [g[metric] for g in group if g.get(metric) is not None]
            row[metric] = (float(np.mean(values)), float(np.std(values))) if values else None
        rows.append(row)
    return rows
