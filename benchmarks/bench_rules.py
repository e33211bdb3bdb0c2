"""Measure rule-learner corruption (``rule_implant``) on breast_cancer and wine; print a table.

Each trial draws its own split (the seed), subgroup (a feature, uniformly, and one of
its 10 quantile bins, uniformly, cut on the training split) and attacker's class (the
subgroup's second most frequent class), poisons 3% of the training split, and fits
RIPPER and a decision tree on the clean and on the poisoned split.

Columns: ``implant``: share of trials whose learned rules contain the implanted rule
(:func:`poisonlab.attacks.rules.implanted_rules`: a rule for the attacker's class with a
condition on the feature that, on the training inputs, selects subgroup members only);
``alone``: of those, a rule made of that condition alone; ``subgroup→c``: share of the
held-out test split's subgroup members predicted as the attacker's class (mean over
trials); ``acc rest``: test accuracy outside the subgroup. Clean and poisoned each.

Blue team: ``poisonlab scan`` (detector ``auto``, no rate given) on each poisoned
split, against the relabelled rows: precision, recall and the share of clean rows
flagged (a scan that flags nothing while poisons exist has precision 0), and how many
trials' learned rule sets still contain the implanted rule after RIPPER is refitted
without the flagged rows.

Defaults (how poisons are chosen, 10 bins, the draw) were chosen on the development
seeds only; the held-out seeds were run once, to report.

Bar: RIPPER contains the implanted rule in >= 80% of held-out trials at 3%, on each dataset.

    python benchmarks/bench_rules.py [--jobs N] [--only development|held-out]

Exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _bars import report_bars  # benchmarks/ is on sys.path when a script runs

from poisonlab.attacks.rules import RuleImplant, implanted_rules, quantile_bins, subgroup_decisions
from poisonlab.data import load_dataset, train_test_split
from poisonlab.models import MODELS
from poisonlab.models.rules import learned_rules

DATASETS = ("breast_cancer", "wine")
VICTIMS = ("ripper", "decision_tree")
RATE = 0.03
N_BINS = 10
SEEDS = {"development": range(100, 120), "held-out": range(1000, 1020)}


def trial(name: str, seed: int) -> dict[str, dict[str, float]]:
    """One split, subgroup and class; per victim: implant, alone, subgroup share, accuracy, clean/poisoned."""
    train, test = train_test_split(load_dataset(name), random_state=seed)
    rng = np.random.default_rng(seed)
    feature = int(rng.integers(train.X.shape[1]))
    n_bins = len(quantile_bins(train.X[:, feature], N_BINS))
    attack = RuleImplant(feature=feature, bin=int(rng.integers(n_bins)), n_bins=N_BINS)
    result = attack.poison(train, RATE, seed)
    group, target = result.subpopulation, int(result.target_class or 0)
    rest = ~group.contains(test.X)
    out: dict[str, dict[str, float]] = {"scan": _scan(result, group, target, seed)}
    for victim in VICTIMS:
        row: dict[str, float] = {"n_poison": result.n_poison}
        for state, data in (("clean", train), ("poisoned", result.dataset)):
            model = MODELS.create(victim, random_state=0).fit(data.X, data.y)
            found = implanted_rules(learned_rules(model), group, target, train.X)
            row[f"implant_{state}"] = float(bool(found))
            row[f"alone_{state}"] = float(any(len(r.conditions) == 1 for r in found))
            row[f"share_{state}"] = subgroup_decisions(model, test.X, group, target)
            row[f"acc_{state}"] = float(np.mean(model.predict(test.X[rest]) == test.y[rest]))
        out[victim] = row
    return out


def _scan(result, group, target: int, seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """``scan``'s flags against the relabelled rows, and RIPPER refitted without them."""
    from poisonlab import metrics
    from poisonlab.defenses.scan import scan

    report = scan(result.dataset, detector="auto", random_state=seed)
    det = metrics.detection_scores(result.poison_mask, report.flags, report.scores)
    kept = result.dataset.subset(~report.flags)
    model = MODELS.create("ripper", random_state=0).fit(kept.X, kept.y)
    found = implanted_rules(learned_rules(model), group, target, result.dataset.X)
    return {
        "precision": float(det["precision"]),
        "recall": float(det["tpr"]),
        "fpr": float(det["fpr"]),
        "implant_after": float(bool(found)),
    }


def _mean(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if not math.isnan(r[key])]
    return float(np.mean(values)) if values else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", choices=list(SEEDS), help="run one split only (development while tuning)")
    args = parser.parse_args()
    splits = [args.only] if args.only else list(SEEDS)
    start = time.perf_counter()
    jobs = [(split, name, seed) for split in splits for name in DATASETS for seed in SEEDS[split]]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(trial, name, seed) for _, name, seed in jobs]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - start
    print(f"rule_implant at {RATE:.0%} · {len(jobs)} trials in {wall:.0f} s ({args.jobs} processes)")
    header = (
        f"{'split':<12}{'dataset':<15}{'victim':<15}{'trials':>7}{'poisons':>8}"
        f"{'implant c→p':>14}{'alone c→p':>12}{'subgroup→c c→p':>17}{'acc rest c→p':>15}"
    )
    print(header)
    held_out: dict[str, float] = {}
    for split in splits:
        for name in DATASETS:
            for victim in VICTIMS:
                rows = [
                    r[victim] for (s, n, _), r in zip(jobs, results, strict=True) if (s, n) == (split, name)
                ]

                def pair(key: str, rows: list[dict[str, float]] = rows) -> str:
                    return f"{_mean(rows, key + '_clean'):.2f}→{_mean(rows, key + '_poisoned'):.2f}"

                print(
                    f"{split:<12}{name:<15}{victim:<15}{len(rows):>7}{_mean(rows, 'n_poison'):>8.1f}"
                    f"{pair('implant'):>14}{pair('alone'):>12}{pair('share'):>17}{pair('acc'):>15}"
                )
                if split == "held-out" and victim == "ripper":
                    held_out[name] = _mean(rows, "implant_poisoned")
    print(
        f"\nscan (auto, no rate) on the poisoned splits{'':<4}{'precision':>10}{'recall':>8}{'FPR %':>7}"
        f"{'RIPPER implant after removal':>30}"
    )
    for split in splits:
        for name in DATASETS:
            rows = [r["scan"] for (s, n, _), r in zip(jobs, results, strict=True) if (s, n) == (split, name)]
            print(
                f"{split:<12}{name:<31}{_mean(rows, 'precision'):>10.2f}{_mean(rows, 'recall'):>8.2f}"
                f"{100 * _mean(rows, 'fpr'):>7.2f}{_mean(rows, 'implant_after'):>30.2f}"
            )
    bars = [
        (f"held-out {name}: RIPPER contains the implanted rule (>= 0.80)", rate, lambda v: v >= 0.8)
        for name, rate in held_out.items()
    ]
    return 1 if report_bars(bars) else 0


if __name__ == "__main__":
    sys.exit(main())
