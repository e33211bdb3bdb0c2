"""Robust and certified training (issue 15): DPA's certified-accuracy curve, ABL, DP-SGD, synthesised poisons.

    python benchmarks/bench_robust_training.py [--dev-seeds 100 101] [--held-out-seeds 0 1 2 3 4]
                                               [--jobs 2] [--parts dpa abl dp synth]
                                               [--parts abl_oracle]

Bars (judged on held-out seeds only; a miss exits 1):
- DPA on digits, k = 50 partitions: certified accuracy ≥ 50% at radius 5 (every held-out split).
- Anti-Backdoor Learning: BadNets at 10% on digits, ASR < 10% with C-ACC within 3 points of the
  clean model (mean over held-out seeds).
- DP-SGD: ASR and C-ACC at four noise levels, each with the ε it spent (printed; no threshold).
- Synthesised poisons: ASR of a trigger family the defense never synthesised, against plain
  training at the same poison rate (printed; the README states whether it helps).

``--parts abl_oracle`` (not in the default parts; about 90 s a seed) bounds what ABL's
unlearning stage can do at all on the held-out seeds: it is handed the true poisons as its
isolated 1% (a perfect isolator), trains on the rest, and then unlearns under every schedule
of a grid (Adam at three rates, the paper's SGD at three; plain gradient ascent on the
isolated set, or the paper's joint objective ``w·ℓ(D_c) − ℓ(D_b)`` at w = 1 or 3; the
ascended loss capped at 2.3, 5 or not), with the epoch picked *on the test set*: the best
clean accuracy among epochs whose ASR is below 10%. No real ABL has either oracle, so where
this bound misses the bar, ABL cannot meet it.

Development seeds choose nothing for DPA (k is the issue's) and DP-SGD (the noise levels are the
grid); for ABL they chose the second configuration printed (``abl[dev-chosen]``), and the
defaults are the paper's. The grid parts run through ``poisonlab run``'s runner, so each figure
is what a user's grid records. Torch uses ``cores / jobs`` threads per run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _bars import report_bars

RADII = (0, 1, 2, 3, 5, 7, 10, 15, 20)
ABL_DEV = {"name": "abl", "gamma": 0.1, "isolation_epochs": 10, "unlearning_epochs": 40}
DP_NOISE = (0.3, 0.6, 1.0, 2.0)


def dpa_curves(seeds: list[int]) -> tuple[dict[str, list[np.ndarray]], dict[str, list[float]]]:
    from poisonlab.data import load_dataset
    from poisonlab.data.dataset import train_test_split
    from poisonlab.defenses.training import certified_accuracy
    from poisonlab.models import MODELS

    data = load_dataset("digits")
    curves: dict[str, list[np.ndarray]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    for seed in seeds:
        train, test = train_test_split(data, test_size=0.25, random_state=seed)
        for label, build in (
            ("dpa k=50, logreg", _dpa(seed)),
            ("dpa k=50, cnn", _dpa(seed)),
            ("fa k=50 d=4, logreg", _fa(seed)),
            ("bagging 100×50, logreg", _bagging(seed)),
        ):
            name = label.rsplit(", ", 1)[1]
            start = time.perf_counter()
            model = build(lambda s, name=name: MODELS.create(name, random_state=s)).fit(train.X, train.y)
            certificate = model.certify(test.X)
            seconds[label].append(time.perf_counter() - start)
            curves[label].append(certified_accuracy(test.y, certificate, RADII))
    return curves, seconds


def _dpa(seed: int) -> Any:
    from poisonlab.defenses.training import DeepPartitionAggregation

    return lambda make: DeepPartitionAggregation(make, n_partitions=50, random_state=seed)


def _fa(seed: int) -> Any:
    from poisonlab.defenses.training import FiniteAggregation

    return lambda make: FiniteAggregation(make, n_partitions=50, spread=4, random_state=seed)


def _bagging(seed: int) -> Any:
    from poisonlab.defenses.training import BaggingCertifier

    return lambda make: BaggingCertifier(make, n_models=100, subsample=50, random_state=seed)


def run_grid(config: dict[str, Any], jobs: int) -> list[dict[str, Any]]:
    from poisonlab.experiments import parse_config
    from poisonlab.experiments import run_grid as grid

    with tempfile.TemporaryDirectory() as tmp:
        grid(parse_config(config), tmp, jobs=jobs)
        return json.loads((Path(tmp) / "summary.json").read_text())["runs"]


def table(
    rows: list[dict[str, Any]], seeds: list[int], title: str
) -> dict[tuple[str, str], dict[str, float]]:
    """Mean C-ACC / ASR / ε per (attack, defense) over ``seeds``; a failed run counts as a miss."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["seed"] in seeds:
            cells[r["attack"], r["defense"]].append(r)
    print(f"\n{title} (seeds {', '.join(map(str, seeds))})")
    print(f"{'attack':<10} {'defense':<46} {'C-ACC %':>8} {'ASR %':>7} {'ε':>8} {'removed':>8}  per seed ASR")
    out = {}
    for (attack, defense), runs in sorted(cells.items()):
        failed = [r for r in runs if r["status"] != "ok"]
        for r in failed:
            print(f"  FAILED seed {r['seed']}: {r['error']}")
        ok = [r for r in runs if r["status"] == "ok"]
        acc = statistics.mean(r["clean_acc"] for r in ok) if ok else float("nan")
        asrs = [r["asr"] for r in ok if r["asr"] is not None]
        # a failed run counts as a miss: ASR 1
        asr = (sum(asrs) + len(failed)) / (len(asrs) + len(failed)) if asrs or failed else float("nan")
        eps = [r["dp_epsilon"] for r in ok if r["dp_epsilon"] is not None]
        removed = statistics.mean(r["n_removed"] or 0 for r in ok) if ok else float("nan")
        shown_eps = f"{statistics.mean(eps):8.2f}" if eps else f"{'—':>8}"
        per = " ".join(f"{100 * a:.0f}" for a in asrs)
        print(
            f"{attack:<10} {defense:<46} {100 * acc:8.2f} {100 * asr:7.1f} {shown_eps} {removed:8.1f}  {per}"
        )
        out[attack, defense] = {"acc": acc, "asr": asr}
    return out


#: the unlearning optimiser: the model's Adam, or the paper's SGD (momentum 0.9, Nesterov, weight decay 1e-4)
ORACLE_RATES = (("adam", 3e-4), ("adam", 1e-3), ("adam", 3e-3), ("sgd", 5e-4), ("sgd", 5e-3), ("sgd", 2e-2))
ORACLE_DESCENT = (0.0, 1.0, 3.0)  # weight of a clean-set (D_c) batch beside each ascent step
ORACLE_CAPS = (2.3, 5.0, float("inf"))  # the ascended per-sample loss is clamped here
ORACLE_EPOCHS = 200


def abl_oracle(seed: int) -> dict[str, Any]:
    """ABL's unlearning stage with a perfect isolator and test-set stopping (see the module docstring).

    The same split, poisons and model as the grid's ``abl`` cell of this seed; the
    isolated set is the first ``round(0.01 n)`` true poisons; the model then trains its
    own epochs on the rest, as ABL's learning stage does. Returns the accuracy of the
    model trained on the clean split, C-ACC and ASR before unlearning and, per schedule,
    the best (C-ACC, ASR, epoch) with ASR < 10% (``None`` if no epoch got there).
    """
    import torch
    from torch import nn

    from poisonlab import metrics
    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset
    from poisonlab.data.dataset import train_test_split
    from poisonlab.models import MODELS

    train, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=seed)
    poisoned = ATTACKS.create("badnets").poison(train, 0.1, np.random.default_rng([seed, 1]))
    assert poisoned.trigger is not None and poisoned.target_class is not None
    eligible = metrics.non_target_mask(test.y, poisoned.target_class)
    triggered = poisoned.trigger.apply(test.X[eligible])

    def measure(model: Any) -> tuple[float, float]:
        acc = metrics.clean_accuracy(test.y, model.predict(test.X))
        asr = metrics.attack_success_rate(test.y[eligible], model.predict(triggered), poisoned.target_class)
        return acc, asr

    clean = MODELS.create("cnn", random_state=seed).fit(train.X, train.y)  # the grid's "none" on clean data
    model = MODELS.create("cnn", random_state=int(np.random.default_rng([seed, 2]).integers(2**31 - 1)))
    inputs, targets = model.start(poisoned.dataset.X, poisoned.dataset.y)
    isolated = np.zeros(len(poisoned.dataset), dtype=bool)
    isolated[np.flatnonzero(poisoned.poison_mask)[: round(0.01 * len(poisoned.dataset))]] = True
    rest = np.flatnonzero(~isolated)
    generator = torch.Generator().manual_seed(model.random_state)
    optimiser = model.optimiser()
    for _ in range(model.epochs):
        model.train_epoch(inputs[rest], targets[rest], optimiser, generator)
    model.net_.eval()
    learned = {k: v.clone() for k, v in model.net_.state_dict().items()}
    before = measure(model)
    held_x, held_y = inputs[np.flatnonzero(isolated)], targets[np.flatnonzero(isolated)]
    best: dict[tuple[str, float, float, float], tuple[float, float, int] | None] = {}
    for (kind, lr), descent, cap in itertools.product(ORACLE_RATES, ORACLE_DESCENT, ORACLE_CAPS):
        model.net_.load_state_dict(learned)
        ascent = (
            model.optimiser(lr=lr)
            if kind == "adam"
            else torch.optim.SGD(
                model.net_.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-4
            )
        )
        draws = torch.Generator().manual_seed(seed)
        found: list[tuple[float, float, int]] = []
        for epoch in range(1, ORACLE_EPOCHS + 1):
            model.net_.train()
            ascent.zero_grad(set_to_none=True)
            per_sample = nn.functional.cross_entropy(model.net_(held_x), held_y, reduction="none")
            loss = -per_sample.clamp(max=cap).mean()
            if descent:
                batch = torch.from_numpy(rest)[torch.randint(len(rest), (model.batch_size,), generator=draws)]
                loss = loss + descent * nn.functional.cross_entropy(model.net_(inputs[batch]), targets[batch])
            loss.backward()
            ascent.step()
            model.net_.eval()
            if epoch % 2 == 0:
                acc, asr = measure(model)
                if asr < 0.10:
                    found.append((acc, asr, epoch))
        best[kind, lr, descent, cap] = max(found) if found else None
    return {"clean": measure(clean)[0], "before": before, "best": best}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev-seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--held-out-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["dpa", "abl", "dp", "synth"])
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    dev, held = args.dev_seeds, args.held_out_seeds
    seeds = dev + held
    bars = []

    if "dpa" in args.parts:
        torch.set_num_threads(os.cpu_count() or 1)
        curves, seconds = dpa_curves(held)
        print("Certified accuracy on digits (share of test inputs correct and certified at radius ≥ r)")
        print(f"{'ensemble':<24} {'s/fit':>6}  " + " ".join(f"r={r:<3}" for r in RADII))
        for label, per_seed in curves.items():
            mean = np.mean(per_seed, axis=0)
            print(
                f"{label:<24} {statistics.median(seconds[label]):6.1f}  "
                + " ".join(f"{v:5.3f}" for v in mean)
            )
        print("(DPA's and FA's radius counts insertions, deletions and relabellings; bagging's counts")
        print(" modified samples at a fixed training-set size, holding with probability ≥ 0.999 per input)")
        at5 = [c[RADII.index(5)] for c in curves["dpa k=50, logreg"]]
        print(
            "DPA k=50 logreg, certified accuracy at r=5 per held-out seed:", " ".join(f"{v:.3f}" for v in at5)
        )
        bars.append(
            ("DPA k=50 (logreg) certified accuracy at r=5, worst seed ≥ 0.5", min(at5), lambda v: v >= 0.5)
        )
        torch.set_num_threads(threads)

    if "abl" in args.parts:
        rows = run_grid(
            {
                "datasets": ["digits"],
                "models": ["cnn"],
                "attacks": ["badnets"],
                "poison_rates": [0.1],
                "defenses": ["none", "abl", ABL_DEV],
                "seeds": seeds,
            },
            args.jobs,
        )
        table(rows, dev, "Anti-Backdoor Learning, BadNets 10% on digits: development")
        got = table(rows, held, "Anti-Backdoor Learning, BadNets 10% on digits: held out")
        clean = got["none", "none"]["acc"]
        for label in ("abl", "abl[gamma=0.1,isolation_epochs=10,unlearning_epochs=40]"):
            cell = got.get(("badnets", label), {"asr": 1.0, "acc": 0.0})
            bars.append((f"{label}: ASR < 10%", cell["asr"], lambda v: v < 0.10))
            bars.append(
                (f"{label}: C-ACC within 3 points of clean", clean - cell["acc"], lambda v: v <= 0.03)
            )

    if "abl_oracle" in args.parts:
        print("\nABL's unlearning with a perfect isolator and test-set stopping, BadNets 10% on digits")
        print("(best C-ACC among epochs with ASR < 10%; drop = the clean model's C-ACC − that)")
        print(
            f"{'seed':>4} {'clean':>6} {'before C-ACC/ASR':>17} "
            f"{'best schedule (optimiser lr, D_c weight, cap)':<42} {'C-ACC':>6} {'ASR':>5} {'drop':>5}"
        )
        drops = []
        for seed in held:
            got = abl_oracle(seed)
            ok = {k: v for k, v in got["best"].items() if v is not None}
            acc0, asr0 = got["before"]
            head = f"{seed:>4} {100 * got['clean']:6.1f} {100 * acc0:8.1f}/{100 * asr0:5.1f}%  "
            if not ok:
                print(f"{head} no schedule reached ASR < 10%")
                drops.append(float("inf"))
                continue
            key = max(ok, key=lambda k: ok[k])  # type: ignore[arg-type,return-value]
            acc, asr, epoch = ok[key]  # type: ignore[misc]
            drops.append(got["clean"] - acc)
            label = f"{key[0]} {key[1]:g}, {key[2]:g}, {key[3]:g} (epoch {epoch})"
            print(f"{head} {label:<42} {100 * acc:6.1f} {100 * asr:5.1f} {100 * drops[-1]:5.1f}")
        print(f"mean drop {100 * statistics.mean(drops):.1f} points over seeds {', '.join(map(str, held))}")

    if "dp" in args.parts:
        noise = [{"name": "dp_sgd", "noise_multiplier": s} for s in DP_NOISE]
        rows = run_grid(
            {
                "datasets": ["digits"],
                "models": ["cnn"],
                "attacks": ["badnets"],
                "poison_rates": [0.1],
                "defenses": ["none", *noise],
                "seeds": held,
            },
            args.jobs,
        )
        table(rows, held, "DP-SGD (max grad norm 1, δ = 1/(10 n)), BadNets 10% on digits: held out")

    if "synth" in args.parts:
        rows = []
        # each defended run synthesises only the family the attack does not use
        for attack, families in (("badnets", ["blend"]), ("blended", ["patch"])):
            rows += run_grid(
                {
                    "datasets": ["digits"],
                    "models": ["cnn"],
                    "attacks": [attack],
                    "poison_rates": [0.05, 0.1],
                    "defenses": ["none", {"name": "synthesised_poisons", "families": families}],
                    "seeds": seeds,
                    "baseline": attack == "badnets",
                },
                args.jobs,
            )
        for rate in (0.05, 0.1):
            picked = [r for r in rows if r["poison_rate"] in (rate, None)]
            table(picked, dev, f"Synthesised poisons against a held-out family, {rate:.0%}: development")
            table(picked, held, f"Synthesised poisons against a held-out family, {rate:.0%}: held out")

    return 1 if report_bars(bars) else 0


if __name__ == "__main__":
    raise SystemExit(main())
