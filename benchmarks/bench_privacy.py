"""Truth Serum against LiRA: how much wrong-label copies of a target reveal its membership.

    python benchmarks/bench_privacy.py [--dev-seeds 100 101] [--held-out-seeds 0 1 2] [--jobs 2] [--no-dp]

Bar (judged on held-out seeds and targets only; a miss exits 1): Truth Serum (Tramèr et
al., CCS 2022) multiplies LiRA's (Carlini et al., S&P 2022) true-positive rate at 1%
false-positive rate on the targets by ≥ 3× with ≤ 8 poisons per target, on digits and on
breast_cancer.

Protocol (:func:`poisonlab.privacy.membership_audit`): a population of models, each trained
on a random half of the dataset, every model in turn the victim of all the others
(online LiRA; one variance per side pooled over targets, as the paper advises below 64
shadows). The poisoned run adds the copies to every model's training set. Digits: 16
models, 50 targets (400 non-member pairs a run); breast_cancer: 32 models, 20 targets
(320 a run). A ratio's clean figure is floored at one non-member pair (the ROC's step)
so a clean TPR of 0 does not divide by zero.

Development seeds choose, per dataset, the model (logreg or mlp) and the copies per
target (1, 2, 4 or 8) with the highest development ratio; held-out seeds report every
model at its development-chosen copies and judge the bar on the development-chosen
model. The dataset's rows are split once (seed 12345) into development and held-out
target candidates, so held-out targets played no part in the choice. DP-SGD (poisonlab's
``dp_sgd``, Opacus, noise multiplier 1.0, clipping norm 1.0) trains the mlp at its chosen
copies on the first held-out seed (printed; no threshold). Torch and BLAS use one thread
per job.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _bars import report_bars

SETTINGS = {"digits": {"n_models": 16, "targets": 50}, "breast_cancer": {"n_models": 32, "targets": 20}}
MODELS = ("logreg", "mlp")
COPIES = (1, 2, 4, 8)
DP = {"noise_multiplier": 1.0, "max_grad_norm": 1.0}
SPLIT_SEED = 12345
BAR = 3.0


def audit(job: dict[str, Any]) -> dict[str, Any]:
    """One membership audit, in a worker: the figures the tables print."""
    import torch
    from threadpoolctl import threadpool_limits

    from poisonlab.data import load_dataset
    from poisonlab.defenses import DEFENSES
    from poisonlab.privacy import membership_audit

    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_dataset(job["dataset"])
    setting = SETTINGS[job["dataset"]]
    candidates = np.random.default_rng(SPLIT_SEED).permutation(len(data))
    side = candidates[: len(data) // 2] if job["phase"] == "dev" else candidates[len(data) // 2 :]
    targets = np.random.default_rng(job["seed"]).choice(side, size=setting["targets"], replace=False)
    defense = DEFENSES.create("dp_sgd", **DP) if job.get("dp") else None
    with threadpool_limits(limits=1):
        result = membership_audit(
            data,
            model=job["model"],
            n_models=setting["n_models"],
            targets=targets,
            copies=job["copies"],
            defense=defense,
            random_state=job["seed"],
        )
        offline = result.rescore(online=False)
    figures: dict[str, Any] = {**job, "seconds": time.perf_counter() - start, "epsilon": result.epsilon}
    floor = 1.0 / int((~result.membership).sum())
    for name, clean, poisoned in (("", result.clean, result.poisoned), ("offline ", *offline)):
        figures[f"{name}tpr01"] = (clean.tpr_at_0_1pct_fpr, poisoned.tpr_at_0_1pct_fpr)
        figures[f"{name}tpr1"] = (max(clean.tpr_at_1pct_fpr, floor), poisoned.tpr_at_1pct_fpr)
        figures[f"{name}auc"] = (clean.auc, poisoned.auc)
    figures["accuracy"] = (result.clean_accuracy, result.poisoned_accuracy)
    return figures


def mean_of(runs: list[dict[str, Any]], key: str) -> tuple[float, float]:
    pairs = np.asarray([run[key] for run in runs], dtype=float)
    return float(pairs[:, 0].mean()), float(pairs[:, 1].mean())


def ratio(runs: list[dict[str, Any]], key: str = "tpr1") -> float:
    clean, poisoned = mean_of(runs, key)
    return poisoned / clean


def table(title: str, groups: dict[tuple[str, str, int], list[dict[str, Any]]], prefix: str = "") -> None:
    print(f"\n{title}")
    head = (
        f"{'dataset':<14}{'model':<7}{'r':>2} {'seeds':>5}  {'TPR@0.1%FPR':>13}  {'TPR@1%FPR':>13}"
        f"  {'×':>5}  {'AUC':>11}  {'accuracy':>11}  {'ε':>5}  {'s/run':>5}"
    )
    print(head)
    print("-" * len(head))
    for (dataset, model, copies), runs in groups.items():
        cells = []
        for key in ("tpr01", "tpr1"):
            clean, poisoned = mean_of(runs, prefix + key)
            cells.append(f"{clean:.3f} → {poisoned:.3f}")
        auc = mean_of(runs, prefix + "auc")
        accuracy = mean_of(runs, "accuracy")
        eps = [run["epsilon"] for run in runs if run["epsilon"] is not None]
        print(
            f"{dataset:<14}{model:<7}{copies:>2} {len(runs):>5}  {cells[0]:>13}  {cells[1]:>13}"
            f"  {ratio(runs, prefix + 'tpr1'):>5.1f}  {auc[0]:.2f} → {auc[1]:.2f}"
            f"  {accuracy[0]:.2f} → {accuracy[1]:.2f}  {np.mean(eps) if eps else float('nan'):>5.1f}"
            f"  {np.mean([run['seconds'] for run in runs]):>5.1f}"
        )


def run_all(jobs: list[dict[str, Any]], workers: int) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(audit, jobs))
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["dataset"], result["model"], result["copies"]), []).append(result)
    return groups


def cnn_only(args: argparse.Namespace) -> int:
    """LiRA against the small CNN on digits: copies chosen on development seeds, held-out seeds reported."""
    start = time.perf_counter()
    dev_jobs = [
        {"phase": "dev", "dataset": "digits", "model": "cnn", "copies": r, "seed": s}
        for r in COPIES
        for s in args.dev_seeds
    ]
    dev = run_all(dev_jobs, args.jobs)
    table(f"DEVELOPMENT (seeds {args.dev_seeds}): choose copies for the CNN", dev)
    copies = max(COPIES, key=lambda r: ratio(dev[("digits", "cnn", r)]))
    held_jobs = [
        {"phase": "held-out", "dataset": "digits", "model": "cnn", "copies": copies, "seed": s}
        for s in args.held_out_seeds
    ]
    held = run_all(held_jobs, args.jobs)
    table(f"HELD-OUT (seeds {args.held_out_seeds}), online LiRA", held)
    missed = report_bars(
        [
            (
                f"digits: held-out TPR@1%FPR ×{BAR:g} with cnn, r={copies}",
                ratio(held[("digits", "cnn", copies)]),
                lambda v: v >= BAR,
            )
        ],
        width=62,
    )
    print(f"\n{time.perf_counter() - start:.0f} s in all, {args.jobs} jobs")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--held-out-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--no-dp", action="store_true", help="skip the DP-SGD rows")
    parser.add_argument(
        "--cnn",
        action="store_true",
        help="instead: the CNN on digits alone (copies chosen on development seeds, as for the others)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    if args.cnn:
        return cnn_only(args)
    print("clean → poisoned; × = poisoned / clean TPR@1%FPR (clean floored at one non-member pair)")

    dev_jobs = [
        {"phase": "dev", "dataset": d, "model": m, "copies": r, "seed": s}
        for d in SETTINGS
        for m in MODELS
        for r in COPIES
        for s in args.dev_seeds
    ]
    dev = run_all(dev_jobs, args.jobs)
    table(f"DEVELOPMENT (seeds {args.dev_seeds}): choose copies per model, and the model, per dataset", dev)
    chosen_copies = {
        (d, m): max(COPIES, key=lambda r, d=d, m=m: ratio(dev[(d, m, r)])) for d in SETTINGS for m in MODELS
    }
    chosen_model = {
        d: max(MODELS, key=lambda m, d=d: ratio(dev[(d, m, chosen_copies[(d, m)])])) for d in SETTINGS
    }
    for d, m in chosen_model.items():
        print(f"chosen on development seeds for {d}: {m}, r = {chosen_copies[(d, m)]}")

    held_jobs = [
        {"phase": "held-out", "dataset": d, "model": m, "copies": chosen_copies[(d, m)], "seed": s}
        for d in SETTINGS
        for m in MODELS
        for s in args.held_out_seeds
    ]
    if not args.no_dp:
        held_jobs += [
            {
                "phase": "held-out",
                "dataset": d,
                "model": "mlp",
                "copies": chosen_copies[(d, "mlp")],
                "seed": s,
                "dp": True,
            }
            for d in SETTINGS
            for s in args.held_out_seeds[:1]
        ]
    held = run_all(held_jobs, args.jobs)
    plain = {key: [r for r in runs if not r.get("dp")] for key, runs in held.items()}
    title = f"HELD-OUT (seeds {args.held_out_seeds}, targets disjoint from development's), online LiRA"
    table(title, plain)
    table("HELD-OUT, offline LiRA (out-shadows only), same models", plain, prefix="offline ")
    private = {key: [r for r in runs if r.get("dp")] for key, runs in held.items()}
    private = {key: runs for key, runs in private.items() if runs}
    if private:
        table(f"HELD-OUT seed {args.held_out_seeds[0]}, mlp trained with DP-SGD ({DP}), online LiRA", private)

    bars = [
        (
            f"{d}: held-out TPR@1%FPR ×{BAR:g} with {m}, r={chosen_copies[(d, m)]} ≤ 8 (dev-chosen)",
            ratio(plain[(d, m, chosen_copies[(d, m)])]),
            lambda v: v >= BAR,
        )
        for d, m in chosen_model.items()
    ]
    missed = report_bars(bars, width=62)
    print(f"\n{time.perf_counter() - start:.0f} s in all, {args.jobs} jobs")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
