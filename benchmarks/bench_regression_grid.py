"""Regression bars through poisonlab's own runner: the registered attacks and defenses, end to end.

    python benchmarks/bench_regression_grid.py [--seeds 0 1 2 3 4] [--jobs N]

The grid is what a user gets from ``poisonlab run``: diabetes, ridge, OptP and
StatP at 20% (the attacker overwrites 20% of the training rows), and the
defenses none, trim (poison rate estimated: the runner never tells it), ransac,
huber and residual. ``mse_ratio`` is the test MSE over that of the clean,
undefended ridge model of the same seed. Bars (median over seeds):
- OptP 20% raises ridge MSE at least 3×;
- TRIM on OptP 20% stays within 10% of clean and beats RANSAC and Huber;
- TRIM on clean data costs at most 5%.
Exits 1 if a bar is missed. ``benchmarks/bench_regression.py`` measures the same
algorithms at array level in the paper's own setting (poison points added, a
validation split for the attacker).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
from _bars import report_bars  # benchmarks/ is on sys.path when a script runs

DEFENSES = ["none", "trim", "ransac", "huber", "residual"]


def main() -> int:
    from poisonlab.experiments import parse_config, run_grid

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    experiment = parse_config(
        {
            "datasets": ["diabetes"],
            "models": ["ridge"],
            "attacks": ["optp", "statp"],
            "poison_rates": [0.2],
            "defenses": DEFENSES,
            "seeds": args.seeds,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_grid(experiment, tmp, jobs=args.jobs)
    if outcome.n_failed:
        print([r["error"] for r in outcome.records if r["status"] != "ok"])
        return 1

    def ratios(attack: str, defense: str) -> list[float]:
        return [r["mse_ratio"] for r in outcome.records if r["attack"] == attack and r["defense"] == defense]

    print(f"diabetes, ridge, 20% of training rows poisoned; test MSE / clean ridge MSE, seeds {args.seeds}")
    print(f"{'attack':<8}" + "".join(f"{d:>22}" for d in DEFENSES))
    for attack in ("none", "optp", "statp"):
        cells = []
        for defense in DEFENSES:
            values = ratios(attack, defense)
            cells.append(f"{np.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]")
        print(f"{attack:<8}" + "".join(f"{c:>22}" for c in cells))

    def med(attack: str, defense: str) -> float:
        return float(np.median(ratios(attack, defense)))

    bars = [
        ("OptP 20%: ridge MSE ratio >= 3 (median)", med("optp", "none"), lambda v: v >= 3.0),
        ("OptP 20%: TRIM (rate estimated) ratio <= 1.10", med("optp", "trim"), lambda v: v <= 1.10),
        ("OptP 20%: TRIM / RANSAC MSE < 1", med("optp", "trim") / med("optp", "ransac"), lambda v: v < 1.0),
        ("OptP 20%: TRIM / Huber MSE < 1", med("optp", "trim") / med("optp", "huber"), lambda v: v < 1.0),
        ("clean data: TRIM ratio <= 1.05", med("none", "trim"), lambda v: v <= 1.05),
    ]
    return 1 if report_bars(bars) else 0


if __name__ == "__main__":
    sys.exit(main())
