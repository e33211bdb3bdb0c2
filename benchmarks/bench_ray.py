"""The same grid of 40 short runs through the process pool and through Ray, on this machine.

Bars (issue 18): the Ray executor gives the same records as the process pool (same
run ids and figures) and its wall-clock overhead on 40 short runs is <= 20%.

    python benchmarks/bench_ray.py [--repeats N]

Each repeat runs the grid (digits, the torch MLP, random label flips at 4 rates ×
8 seeds, with the 8 clean baselines: 40 runs of about a second) once per executor
into a fresh folder, end to end as ``run_grid`` does it: the pool's worker start-up
and Ray's local instance start-up and shutdown count. Medians over repeats; both
executors give each run one PyTorch thread (pool: ``--jobs`` = cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bars import report_bars

from poisonlab.experiments import parse_config, run_grid

GRID = {
    "datasets": ["digits"],
    "models": ["mlp"],
    "attacks": ["label_flip"],
    "poison_rates": [0.05, 0.1, 0.2, 0.3],
    "seeds": list(range(8)),
}


def timed_grid(executor: str, out: Path) -> tuple[float, dict[str, tuple[object, ...]]]:
    experiment = parse_config(GRID)
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    outcome = run_grid(experiment, out, jobs=cores, executor=executor)
    seconds = time.perf_counter() - start
    figures = {r.run_id: (r.status, r.clean_acc, r.acc_drop) for r in outcome.records}
    return seconds, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pool, on_ray = [], []
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seconds, pool_figures = timed_grid("process", Path(tmp) / f"pool{i}")
            pool.append(seconds)
            seconds, ray_figures = timed_grid("ray", Path(tmp) / f"ray{i}")
            on_ray.append(seconds)
            same &= pool_figures == ray_figures and len(pool_figures) == 40
    ratio = statistics.median(on_ray) / statistics.median(pool)
    print(f"machine: {os.cpu_count()} cores; 40 runs per grid; {args.repeats} repeats (median [min–max])")
    for name, times in (("process pool", pool), ("Ray (local instance)", on_ray)):
        print(f"  {name:<24} {statistics.median(times):6.1f} s [{min(times):.1f}–{max(times):.1f}]")
    print(f"  Ray / pool: {ratio:.2f}; identical records: {same}")
    missed = report_bars(
        [
            ("Ray's wall time / the process pool's <= 1.20", ratio, lambda v: v <= 1.2),
            ("identical records (run ids, C-ACC, ΔACC) == 1", float(same), lambda v: v == 1),
        ]
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
