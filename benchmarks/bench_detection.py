"""Measure the detection bars: ``scan --detector auto`` with no poison rate, against the true masks.

    python benchmarks/bench_detection.py [--seeds 0 1 2] [--jobs N]

Cases (each seed = another train split and another poison draw):
- digits, BadNets and Blended at 1%, 5%, 10% (bars: F1 >= 0.9 at 5% and 10%;
  recall >= 0.8 at 1%; FPR <= 2% everywhere);
- random label flips at 10% and 20% on digits and breast_cancer (bars: precision
  and recall >= 0.8);
- the unpoisoned training splits (bar: <= 1% flagged);
- a digits set poisoned by a stand-alone NumPy script (a white 2×2 corner patch,
  relabelled to 7), written to ``.npz`` and scanned from the file, to check that
  the scanner works on poisons it did not make itself;
- the defense in the runner: BadNets 5%, drop what ``auto`` flags, retrain (bar:
  ASR < 5% with C-ACC within 1 point of the clean model).
Exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _bars import report_bars  # benchmarks/ is on sys.path when a script runs

CASES = [
    ("digits", "none", None),
    ("digits", "badnets", 0.01),
    ("digits", "badnets", 0.05),
    ("digits", "badnets", 0.1),
    ("digits", "blended", 0.01),
    ("digits", "blended", 0.05),
    ("digits", "blended", 0.1),
    ("digits", "label_flip", 0.1),
    ("digits", "label_flip", 0.2),
    ("breast_cancer", "none", None),
    ("breast_cancer", "label_flip", 0.1),
    ("breast_cancer", "label_flip", 0.2),
    ("digits", "external_patch", 0.05),
]


def external_patch(train, rate: float, seed: int):  # type: ignore[no-untyped-def]
    """Poison with plain NumPy (not poisonlab's attack code), round-trip through an .npz file."""
    from poisonlab.data import load_dataset

    rng = np.random.default_rng(seed)
    X, y = np.array(train.X), np.array(train.y)
    pool = np.flatnonzero(y != 7)
    idx = rng.choice(pool, size=int(rate * len(y)), replace=False)
    X[idx, :, -2:, :2] = 1.0  # white 2×2 patch, bottom-left corner
    y[idx] = 7
    mask = np.zeros(len(y), dtype=bool)
    mask[idx] = True
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "poisoned_elsewhere.npz"
        np.savez(path, X=X, y=y, ids=np.arange(len(y)))
        return load_dataset(str(path)), mask


def run_case(case: tuple[str, str, float | None], seed: int) -> dict:
    import torch

    from poisonlab import metrics
    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset, train_test_split
    from poisonlab.defenses.scan import scan

    torch.set_num_threads(1)
    dataset, attack, rate = case
    train, _ = train_test_split(load_dataset(dataset), random_state=seed)
    if attack == "external_patch":
        data, mask = external_patch(train, rate or 0.05, seed)
    else:
        result = ATTACKS.create(attack).poison(train, rate, seed)
        data, mask = result.dataset, result.poison_mask
    start = time.perf_counter()
    report = scan(data, detector="auto", random_state=seed)
    det = metrics.detection_scores(mask, report.flags, report.scores)
    return {
        "dataset": dataset,
        "attack": attack,
        "rate": rate,
        "seed": seed,
        "n": len(data),
        "n_poison": int(mask.sum()),
        "n_flagged": report.n_flagged,
        "share_flagged": report.n_flagged / len(data),
        "seconds": time.perf_counter() - start,
        **det,
    }


def defense_rows(seeds: list[int], jobs: int) -> list[dict]:
    from poisonlab.experiments import parse_config, run_grid

    exp = parse_config(
        {
            "datasets": ["digits"],
            "models": ["cnn"],
            "attacks": ["badnets"],
            "poison_rates": [0.05],
            "defenses": ["none", "auto"],
            "seeds": seeds,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        return run_grid(exp, tmp, jobs=jobs).records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    work = [(case, seed) for case in CASES for seed in args.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_case, *zip(*work, strict=True)))

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    print(f"scan --detector auto, no rate given; seeds {args.seeds}")
    head = f"{'dataset':<14}{'attack':<15}{'rate':>6}{'seed':>5}{'poison':>7}{'flagged':>8}"
    print(head + f"{'precision':>10}{'recall':>8}{'F1':>7}{'FPR':>7}{'AUROC':>7}{'s':>6}")
    for r in rows:
        rate = "—" if r["rate"] is None else f"{r['rate']:.0%}"
        print(
            f"{r['dataset']:<14}{r['attack']:<15}{rate:>6}{r['seed']:>5}{r['n_poison']:>7}{r['n_flagged']:>8}"
            f"{fmt(r['precision']):>10}{fmt(r['tpr']):>8}{fmt(r['f1']):>7}{fmt(r['fpr']):>7}"
            f"{fmt(r['auroc']):>7}{r['seconds']:>6.0f}"
        )

    def sel(dataset: str, attacks: tuple[str, ...], rates: tuple[float | None, ...]) -> list[dict]:
        return [r for r in rows if r["dataset"] == dataset and r["attack"] in attacks and r["rate"] in rates]

    print("\nper case over seeds: mean (worst seed)")
    print(f"{'dataset':<14}{'attack':<15}{'rate':>6}{'precision':>16}{'recall':>16}{'F1':>16}{'FPR':>16}")
    for dataset, attack, rate in CASES:
        case_rows = sel(dataset, (attack,), (rate,))
        cells = []
        for key, worst in (("precision", min), ("tpr", min), ("f1", min), ("fpr", max)):
            values = [r[key] for r in case_rows if r[key] is not None]
            cells.append(f"{np.mean(values):.3f} ({worst(values):.3f})" if values else "—")
        label = "—" if rate is None else f"{rate:.0%}"
        print(f"{dataset:<14}{attack:<15}{label:>6}" + "".join(f"{c:>16}" for c in cells))

    def worst(key: str, pick, cases: list[dict]) -> float:  # type: ignore[no-untyped-def]
        return float(pick(r[key] or 0.0 for r in cases))

    def worst_mean(key: str, datasets: tuple[str, ...], attack: str, rates: tuple[float, ...]) -> float:
        """The lowest per-case mean over seeds."""
        return min(
            float(np.mean([r[key] or 0.0 for r in sel(d, (attack,), (rate,))]))
            for d in datasets
            for rate in rates
        )

    backdoors = ("badnets", "blended")
    flips = ("digits", "breast_cancer")
    flip_rows = [r for d in flips for r in sel(d, ("label_flip",), (0.1, 0.2))]
    bars = [
        (
            "backdoor 5%/10%: F1 >= 0.9 (worst seed)",
            worst("f1", min, sel("digits", backdoors, (0.05, 0.1))),
            lambda v: v >= 0.9,
        ),
        (
            "backdoor 1%: recall >= 0.8 (worst seed)",
            worst("tpr", min, sel("digits", backdoors, (0.01,))),
            lambda v: v >= 0.8,
        ),
        (
            "backdoor: FPR <= 2% (worst seed)",
            worst("fpr", max, sel("digits", backdoors, (0.01, 0.05, 0.1))),
            lambda v: v <= 0.02,
        ),
        (
            "label flips: precision >= 0.8 (worst seed)",
            worst("precision", min, flip_rows),
            lambda v: v >= 0.8,
        ),
        ("label flips: recall >= 0.8 (worst seed)", worst("tpr", min, flip_rows), lambda v: v >= 0.8),
        (
            "label flips: recall >= 0.8 (worst case mean over seeds)",
            worst_mean("tpr", flips, "label_flip", (0.1, 0.2)),
            lambda v: v >= 0.8 - 1e-9,  # a mean of fractions may land a rounding error below an exact 0.8
        ),
        (
            "clean data: <= 1% flagged (worst seed)",
            max(r["share_flagged"] for d in flips for r in sel(d, ("none",), (None,))),
            lambda v: v <= 0.01,
        ),
        (
            "external npz: F1 >= 0.9 (worst seed)",
            worst("f1", min, sel("digits", ("external_patch",), (0.05,))),
            lambda v: v >= 0.9,
        ),
    ]

    records = defense_rows(args.seeds, args.jobs)
    clean = {r["seed"]: r["clean_acc"] for r in records if r["attack"] == "none" and r["defense"] == "none"}
    defended = [r for r in records if r["attack"] == "badnets" and r["defense"] == "auto"]
    undefended = [r for r in records if r["attack"] == "badnets" and r["defense"] == "none"]
    print("\nBadNets 5%, digits, CNN: drop what auto flags, retrain")
    print(f"{'defense':<9}{'seed':>5}{'C-ACC':>8}{'clean':>8}{'ASR':>8}{'removed':>9}{'det F1':>8}{'DER':>7}")
    for r in undefended + defended:
        print(
            f"{r['defense']:<9}{r['seed']:>5}{r['clean_acc']:>8.3f}{clean[r['seed']]:>8.3f}{r['asr']:>8.3f}"
            f"{r['n_removed'] or 0:>9}{fmt(r['det_f1']):>8}{fmt(r['der']):>7}"
        )
    bars += [
        ("defended BadNets 5%: ASR < 5% (worst seed)", max(r["asr"] for r in defended), lambda v: v < 0.05),
        (
            "defended: C-ACC within 1 pt of clean (worst seed)",
            max(clean[r["seed"]] - r["clean_acc"] for r in defended),
            lambda v: v <= 0.01,
        ),
    ]
    return 1 if report_bars(bars) else 0


if __name__ == "__main__":
    sys.exit(main())
