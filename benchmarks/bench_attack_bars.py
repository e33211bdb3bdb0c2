"""Measure the foundation's attack bars on digits with the CNN (3 seeds) and print a table.

Bars: BadNets at 5% reaches ASR >= 90% with C-ACC within 2 points of the clean model;
Blended at 10% reaches ASR >= 80%; random label flipping at 20% lowers C-ACC.

    python benchmarks/bench_attack_bars.py [--jobs N] [--out DIR]

Exits 1 if a bar is missed. Runs go through the same runner and store as ``poisonlab run``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _bars import report_bars  # benchmarks/ is on sys.path when a script runs

from poisonlab.experiments import aggregate, load_config, run_grid

CONFIG = Path(__file__).with_name("configs") / "bars.toml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="poisonlab-bars-"))

    start = time.perf_counter()
    outcome = run_grid(load_config(CONFIG), out, jobs=args.jobs, resume=True)
    wall = time.perf_counter() - start
    rows = {(r["attack"], r["poison_rate"]): r for r in aggregate(outcome.records)}

    print(
        f"digits · cnn · {len(outcome.records)} runs ({outcome.n_failed} failed) in {wall:.0f} s, out: {out}"
    )
    print(f"{'attack':<14}{'rate':>6}{'C-ACC %':>14}{'ASR %':>14}{'RA %':>14}{'ΔACC pts':>14}")
    for (attack, rate), r in rows.items():
        print(
            f"{attack:<14}{'—' if rate is None else f'{rate:.0%}':>6}"
            + "".join(f"{_pm(r[m]):>14}" for m in ("clean_acc", "asr", "ra", "acc_drop"))
        )

    def per_seed(attack: str, rate: float | None, metric: str) -> np.ndarray:
        return np.array(
            [r[metric] for r in outcome.records if r["attack"] == attack and r["poison_rate"] == rate]
        )

    clean = per_seed("none", None, "clean_acc").mean()
    bars = [
        ("BadNets 5%: ASR >= 90%", per_seed("badnets", 0.05, "asr").mean(), lambda v: v >= 0.90),
        (
            "BadNets 5%: C-ACC within 2 pts of clean",
            clean - per_seed("badnets", 0.05, "clean_acc").mean(),
            lambda v: v <= 0.02,
        ),
        ("Blended 10%: ASR >= 80%", per_seed("blended", 0.1, "asr").mean(), lambda v: v >= 0.80),
        (
            "Random flip 20%: C-ACC drop > 0 in every seed",
            per_seed("label_flip", 0.2, "acc_drop").min(),
            lambda v: v > 0,
        ),
    ]
    missed = report_bars(bars, scale=100, width=48)
    return 1 if missed or outcome.n_failed else 0


def _pm(value: tuple[float, float] | None) -> str:
    return "—" if value is None else f"{100 * value[0]:.1f}±{100 * value[1]:.1f}"


if __name__ == "__main__":
    sys.exit(main())
