"""Time the provenance ledger on a million samples: ``add`` one batch, then ``verify`` the ledger.

    python benchmarks/bench_ledger.py [--n 1000000] [--d 32] [--add-repeats 1] [--verify-repeats 3]
                                      [--dir PATH]

Builds ``n`` seeded float32 samples of ``d`` features with int64 labels and int64
ids (128 MB of features at the defaults), adds them as one batch to a fresh
ledger (each add repeat uses a fresh ledger in a temporary folder, or under
``--dir``) and verifies the last ledger. Also times the two building blocks,
``sample_hashes`` and ``merkle_root``, on the same data. Then the same through the
command line, as a user runs it: the batch saved as an ``.npz``, ``poisonlab ledger
add`` (reading and validating the file included) and ``poisonlab ledger verify``,
each a fresh process. Prints the median seconds [min–max] over the repeats.

Bars: ``add`` of 1,000,000 × 32 float32 in <= 30 s and ``verify`` in <= 20 s
(median over repeats) on 2 cores. Exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _bars import report_bars, timed  # benchmarks/ is on sys.path when a script runs

from poisonlab.provenance import Ledger, merkle_root, sample_hashes

ADD_BAR_SECONDS = 30.0
VERIFY_BAR_SECONDS = 20.0


def row(name: str, times: list[float]) -> None:
    print(f"{name:<32}{statistics.median(times):>10.3f}  [{min(times):.3f}–{max(times):.3f}]", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples in the batch")
    parser.add_argument("--d", type=int, default=32, help="float32 features per sample")
    parser.add_argument("--add-repeats", type=int, default=1)
    parser.add_argument("--verify-repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to build the ledgers (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.n, args.d), dtype=np.float32)
    y = rng.integers(0, 10, args.n)
    ids = np.arange(args.n, dtype=np.int64)
    print(
        f"{args.n:,} samples × {args.d} float32 ({X.nbytes / 2**20:.0f} MiB), int64 labels and ids; "
        f"{os.cpu_count()} cores; median [min–max] seconds"
    )
    print(f"\n{'step':<32}{'seconds':>10}  {'[min–max]':<18}")
    hashes: list[np.ndarray] = []
    row("sample_hashes", timed(lambda: hashes.append(sample_hashes(X, y, ids)), 1))
    row("merkle_root", timed(lambda: merkle_root(hashes[0]), 1))

    base = Path(tempfile.mkdtemp(prefix="bench-ledger-", dir=args.dir))
    try:
        folders = iter(base / f"ledger-{k}" for k in range(args.add_repeats))
        last: list[Path] = []

        def add_once() -> None:
            folder = next(folders)
            with Ledger.init(folder) as ledger:
                ledger.add(X, y, ids, source="bench")
            if last:
                shutil.rmtree(last.pop())
            last.append(folder)

        add_times = timed(add_once, args.add_repeats)
        row(f"add ({args.add_repeats} fresh ledgers)", add_times)
        with Ledger.open(last[0]) as ledger:
            reports = []
            verify_times = timed(lambda: reports.append(ledger.verify()), args.verify_repeats)
        row(f"verify ({args.verify_repeats} runs)", verify_times)
        size = sum(p.stat().st_size for p in last[0].rglob("*") if p.is_file())
        print(f"\nledger size {size / 2**20:.0f} MiB; verify ok: {all(r.ok for r in reports)}")
        shutil.rmtree(last.pop())

        data = base / "batch.npz"
        np.savez(data, X=X, y=y, ids=ids)
        cli = [sys.executable, "-m", "poisonlab", "ledger"]
        folder = base / "ledger-cli"
        subprocess.run([*cli, "init", str(folder)], check=True, capture_output=True)
        add = [*cli, "add", str(data), "--source", "bench", "--ledger", str(folder)]
        cli_add = timed(lambda: subprocess.run(add, check=True, capture_output=True), 1)
        row("poisonlab ledger add (process)", cli_add)
        verify = [*cli, "verify", "--ledger", str(folder)]
        cli_verify = timed(lambda: subprocess.run(verify, check=True, capture_output=True), 1)
        row("poisonlab ledger verify (process)", cli_verify)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")

    size_text = f"{args.n:,} × {args.d} float32"
    bars = [
        (
            f"add, {size_text} in <= {ADD_BAR_SECONDS:g} s",
            statistics.median(add_times),
            lambda v: v <= ADD_BAR_SECONDS,
        ),
        (
            f"verify, {size_text} in <= {VERIFY_BAR_SECONDS:g} s",
            statistics.median(verify_times),
            lambda v: v <= VERIFY_BAR_SECONDS,
        ),
        ("verify reports the ledger intact (1 = yes)", float(all(r.ok for r in reports)), lambda v: v == 1.0),
        (
            f"`poisonlab ledger add` of the .npz in <= {ADD_BAR_SECONDS:g} s",
            cli_add[0],
            lambda v: v <= ADD_BAR_SECONDS,
        ),
        (
            f"`poisonlab ledger verify` in <= {VERIFY_BAR_SECONDS:g} s",
            cli_verify[0],
            lambda v: v <= VERIFY_BAR_SECONDS,
        ),
    ]
    missed = report_bars(bars, width=48)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
