"""Time the default ``poisonlab run`` end to end, and one 30-epoch CNN fit on digits.

Bar: the default run (digits, CNN, 30 runs) finishes in <= 90 s wall on a 2-core machine.

    python benchmarks/bench_default_run.py [--repeats N]

Prints medians over repeats. The default run is timed as a user sees it: a fresh
process (``python -m poisonlab run``) into an empty output folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from poisonlab.data import load_dataset, train_test_split
from poisonlab.models import MODELS


def time_default_run() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "poisonlab", "run", "--out", str(Path(tmp) / "out")],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def time_cnn_fit(threads: int) -> float:
    torch.set_num_threads(threads)
    train, _ = train_test_split(load_dataset("digits"), random_state=0)
    start = time.perf_counter()
    MODELS.create("cnn", random_state=0).fit(train.X, train.y)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    fits = [time_cnn_fit(cores) for _ in range(args.repeats)]
    runs = [time_default_run() for _ in range(args.repeats)]
    run_median = statistics.median(runs)

    print(f"machine: {cores} cores, torch {torch.__version__}, {args.repeats} repeats (median [min–max])")
    print(f"{'measurement':<52}{'seconds':>24}")
    print(f"{'CNN, 30 epochs, digits training split (1,347 images)':<52}{_fmt(fits):>24}")
    print(f"{'poisonlab run (default grid, 30 runs, --jobs ' + str(cores) + ')':<52}{_fmt(runs):>24}")
    print()
    ok = run_median <= 90
    print(f"{'PASS' if ok else 'MISS'}  default run <= 90 s: median {run_median:.1f} s")
    return 0 if ok else 1


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}–{max(values):.1f}]"


if __name__ == "__main__":
    sys.exit(main())
