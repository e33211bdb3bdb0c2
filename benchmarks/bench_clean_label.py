"""Measure the clean-label bars: targeted success over many trials, backdoor ASR, and what detects them.

    python benchmarks/bench_clean_label.py [--trials 20] [--dev-trials 100 101]
        [--parts transfer scratch lc sleeper] [--jobs 2]

Protocol ("Just How Toxic is Data Poisoning?", Schwarzschild et al. 2021): every
trial has its own seed, which draws the 70/30 split of digits, the victim's seed,
the target instance (a test input the clean victim classifies correctly) and the
attacker's class (another class, uniformly). Success rates are printed with their
standard error. Parameters were chosen on the development trials (seeds 100 and
101, printed apart); the bars are judged on held-out trials 0..N-1.

Parts:

- ``transfer`` (``mnist``, 1% = 35 poisons): the victim is a CNN trained 10 epochs on
  the clean split whose features are frozen; it retrains its last layer on the
  poisoned split (``TorchClassifier.refit_head``). Feature collision and Bullseye
  Polytope are white-box on the frozen features, ``eps`` 0.3 (``TRANSFER``). On
  digits, 64 pixels within ``eps`` 0.25 cannot move 64 features onto the target's
  (median relative feature distance 0.2–0.4 after 1,000 steps on development
  trials 100–105, success 0 of 6 for both attacks), so the part runs on 28×28
  images, where a 1,000-step optimisation reaches it. Deep k-NN
  (default ``k``) runs on the victim's features of the poisoned split, and ``scan``
  (``auto``, no rate) on the poisoned split itself; the head is retrained on what
  each keeps.
- ``scratch`` (digits, 1%, ``eps`` 16/255): gradient matching from a surrogate the
  attacker trains with its own seed; the victim trains from scratch with the trial's.
- ``lc`` (``mnist``, 5%, ``eps`` 0.3): label-consistent backdoor against a CNN trained
  10 epochs from scratch; ASR on triggered non-target test inputs, clean accuracy
  against the clean model of the same seed, and ``scan`` (``auto``, no rate) on the
  poisoned split, then ASR and C-ACC of a CNN retrained without what it flagged
  (the same for ``sleeper``). Three held-out seeds (0, 1, 2) by default.
- ``sleeper`` (``mnist``, 1%, ``eps`` 16/255, ``SLEEPER``): Sleeper Agent, ASR on
  triggered test inputs of the source class. On digits 16/255 is one of the
  images' 17 grey levels (ASR 0% on development trials 100 and 101).

Every part also runs each registered classification detector alone (its own rule)
on the first trial's poisoned split. Exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _bars import report_bars  # benchmarks/ is on sys.path when a script runs

BUDGET = 0.01
#: From-scratch parts (gradient matching, Sleeper Agent): the data set and the CNN's epochs
#: for the victim and the attacker's surrogate.
SCRATCH = {"digits": 30, "mnist": 10}
#: Sleeper Agent on mnist: an 8×8 patch (the paper's 8×8 on 32×32 images is 6% of the area;
#: the default 3×3 is 1% of 28×28) and 500 steps, chosen on development trials 100-101
#: (ASR 31% and 1%, against 5% and 0% at the defaults).
SLEEPER = {"mnist": {"patch_size": 8, "steps": 500}}
#: Deep k-NN's numbers of neighbours compared on the feature-collision poisons: the poison
#: count (35), the default (twice a 1% budget, 70), and larger.
DEEP_KNN_K = (35, 70, 88, 105)
#: Transfer-part settings, chosen on development trials 100-104 (more steps and a
#: larger step than the defaults: at eps 0.3 the defaults stop short of a collision).
TRANSFER = {
    "feature_collision": {"eps": 0.3, "steps": 1000, "lr": 0.5},
    "bullseye_polytope": {"eps": 0.3, "steps": 1000, "lr": 0.05},
}


def _setup(seed: int, dataset: str = "digits", epochs: int = 30):  # type: ignore[no-untyped-def]
    from poisonlab.data import load_dataset, train_test_split
    from poisonlab.models import MODELS

    train, test = train_test_split(load_dataset(dataset), test_size=0.3, random_state=seed)
    victim = MODELS.create("cnn", epochs=epochs, random_state=seed).fit(train.X, train.y)
    rng = np.random.default_rng([seed, 13])
    right = np.flatnonzero(victim.predict(test.X) == test.y)
    target = int(rng.choice(right))
    cls = int(rng.choice([c for c in range(train.n_classes) if c != test.y[target]]))
    return train, test, victim, target, cls, rng


def _detectors(data, mask: np.ndarray, seed: int) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Each classification detector alone on one poisoned set (one shared proxy), and ``auto``."""
    from poisonlab import metrics
    from poisonlab.defenses.detectors import DETECTORS
    from poisonlab.defenses.evidence import compute_evidence

    evidence = compute_evidence(data, random_state=seed)
    out = {}
    for entry in DETECTORS.where(tasks="classification"):
        if entry.tag("needs_sources"):
            continue
        params = {"random_state": seed} if "random_state" in entry.parameters() else {}
        detector = entry.create(**params).fit(data, evidence)
        out[entry.name] = metrics.detection_scores(mask, detector.auto_flags())
    return out


def transfer_trial(seed: int) -> dict:
    from poisonlab import metrics
    from poisonlab.attacks import ATTACKS
    from poisonlab.defenses.detectors import DETECTORS, Evidence
    from poisonlab.defenses.scan import scan

    start = time.perf_counter()
    train, test, victim, t, cls, rng = _setup(seed, "mnist", epochs=10)
    setup_s = time.perf_counter() - start  # the victim's own training, before any attack
    x_t = test.X[t : t + 1]
    row: dict = {"seed": seed}
    for name, params in TRANSFER.items():
        start = time.perf_counter()
        attack = ATTACKS.create(name, target=cls, model=victim, **params).aim(test.X[t])
        result = attack.poison(train, BUDGET, rng)
        row[f"{name}_s"] = time.perf_counter() - start
        poisoned = copy.deepcopy(victim).refit_head(result.dataset.X, result.dataset.y)
        row[name] = int(poisoned.predict(x_t)[0] == cls)
        row[f"{name}_trial_s"] = setup_s + time.perf_counter() - start
        row[f"{name}_acc"] = float(np.mean(poisoned.predict(test.X) == test.y))
        reps = victim.representations(result.dataset.X)
        flags = DETECTORS.create("deep_knn").fit(result.dataset, Evidence(representations=reps)).auto_flags()
        keep = ~flags
        defended = copy.deepcopy(victim).refit_head(result.dataset.X[keep], result.dataset.y[keep])
        row[f"{name}_defended"] = int(defended.predict(x_t)[0] == cls)
        row[f"{name}_caught"] = float(flags[result.poison_mask].mean())
        row[f"{name}_clean_removed"] = float(flags[~result.poison_mask].mean())
        if name == "feature_collision":  # deep k-NN's distance and k (the default: cosine, k = 70)
            variants = {}
            for metric, k in itertools.product(("cosine", "euclidean"), DEEP_KNN_K):
                found = (
                    DETECTORS.create("deep_knn", metric=metric, k=k)
                    .fit(result.dataset, Evidence(representations=reps))
                    .auto_flags()
                )
                variants[f"{metric}, k = {k}"] = (
                    float(found[result.poison_mask].mean()),
                    float(found[~result.poison_mask].mean()),
                )
            row["deep_knn_variants"] = variants
        scanned = scan(result.dataset, detector="auto", random_state=seed).flags
        rescued = copy.deepcopy(victim).refit_head(result.dataset.X[~scanned], result.dataset.y[~scanned])
        row[f"{name}_after_scan"] = int(rescued.predict(x_t)[0] == cls)
        row[f"{name}_scan"] = metrics.detection_scores(result.poison_mask, scanned)
        if seed == 0:
            row[f"{name}_detectors"] = _detectors(result.dataset, result.poison_mask, seed)
    clean = copy.deepcopy(victim).refit_head(train.X, train.y)
    row["clean_acc"] = float(np.mean(clean.predict(test.X) == test.y))
    return row


def scratch_trial(seed: int, data: str = "digits") -> dict:
    from poisonlab.attacks import ATTACKS
    from poisonlab.models import MODELS

    epochs = SCRATCH[data]
    train, test, victim, t, cls, rng = _setup(seed, data, epochs)
    start = time.perf_counter()
    attack = ATTACKS.create("gradient_matching", target=cls, surrogate_epochs=epochs).aim(test.X[t])
    result = attack.poison(train, BUDGET, rng)
    seconds = time.perf_counter() - start
    poisoned = MODELS.create("cnn", epochs=epochs, random_state=seed).fit(result.dataset.X, result.dataset.y)
    row = {
        "seed": seed,
        "gradient_matching_trial_s": time.perf_counter() - start,
        "gradient_matching": int(poisoned.predict(test.X[t : t + 1])[0] == cls),
        "gradient_matching_acc": float(np.mean(poisoned.predict(test.X) == test.y)),
        "clean_acc": float(np.mean(victim.predict(test.X) == test.y)),
        "alignment": attack.alignment_loss_,
        "gradient_matching_s": seconds,
    }
    if seed == 0:
        row["gradient_matching_detectors"] = _detectors(result.dataset, result.poison_mask, seed)
    return row


def _backdoor_row(name: str, seed: int, poisoned, result, train, test, triggered) -> dict:  # type: ignore[no-untyped-def]
    """ASR and C-ACC of the poisoned model, the clean one and one retrained without ``scan``'s flags."""
    from poisonlab import metrics
    from poisonlab.defenses.scan import scan
    from poisonlab.models import MODELS

    def fit(data):  # type: ignore[no-untyped-def]
        return MODELS.create("cnn", epochs=poisoned.epochs, random_state=seed).fit(data.X, data.y)

    target = result.target_class
    flags = scan(result.dataset, detector="auto", random_state=seed).flags
    row: dict = {"seed": seed, "scan": metrics.detection_scores(result.poison_mask, flags)}
    for suffix, model in (("", poisoned), ("_clean_model", fit(train))):
        row["asr" + suffix] = float(np.mean(model.predict(triggered) == target))
        row["acc" if not suffix else "clean_acc"] = float(np.mean(model.predict(test.X) == test.y))
    defended = fit(result.dataset.subset(~flags))
    row["asr_after_scan"] = float(np.mean(defended.predict(triggered) == target))
    row["acc_after_scan"] = float(np.mean(defended.predict(test.X) == test.y))
    if seed == 0:
        row[name + "_detectors"] = _detectors(result.dataset, result.poison_mask, seed)
    return row


def lc_trial(seed: int) -> dict:
    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset, train_test_split
    from poisonlab.models import MODELS

    train, test = train_test_split(load_dataset("mnist"), test_size=0.3, random_state=seed)
    rng = np.random.default_rng([seed, 5])
    target = int(rng.integers(train.n_classes))
    start = time.perf_counter()
    attack = ATTACKS.create("label_consistent", target=target, eps=0.3, surrogate_epochs=10)
    result = attack.poison(train, 0.05, rng)
    seconds = time.perf_counter() - start
    poisoned = MODELS.create("cnn", epochs=10, random_state=seed).fit(result.dataset.X, result.dataset.y)
    trial_s = time.perf_counter() - start
    triggered = result.trigger.apply(test.X[test.y != target])  # type: ignore[union-attr]
    row = _backdoor_row("label_consistent", seed, poisoned, result, train, test, triggered)
    return {**row, "label_consistent_s": seconds, "label_consistent_trial_s": trial_s}


def lc_digits_seconds(seed: int) -> float:
    """One label-consistent crafting on digits (the per-trial time bar is on digits)."""
    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset, train_test_split

    train, _ = train_test_split(load_dataset("digits"), test_size=0.3, random_state=seed)
    start = time.perf_counter()
    ATTACKS.create("label_consistent", target=0).poison(train, 0.05, seed)
    return time.perf_counter() - start


def sleeper_trial(seed: int, data: str = "digits") -> dict:
    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset, train_test_split
    from poisonlab.models import MODELS

    epochs = SCRATCH[data]
    train, test = train_test_split(load_dataset(data), test_size=0.3, random_state=seed)
    rng = np.random.default_rng([seed, 7])
    target, source = (int(v) for v in rng.choice(train.n_classes, size=2, replace=False))
    start = time.perf_counter()
    attack = ATTACKS.create(
        "sleeper_agent", target=target, source=source, surrogate_epochs=epochs, **SLEEPER.get(data, {})
    )
    result = attack.poison(train, BUDGET, rng)
    seconds = time.perf_counter() - start
    poisoned = MODELS.create("cnn", epochs=epochs, random_state=seed).fit(result.dataset.X, result.dataset.y)
    trial_s = time.perf_counter() - start
    triggered = result.trigger.apply(test.X[test.y == source])  # type: ignore[union-attr]
    row = _backdoor_row("sleeper_agent", seed, poisoned, result, train, test, triggered)
    return {**row, "sleeper_agent_s": seconds, "sleeper_agent_trial_s": trial_s}


PARTS = {
    "transfer": transfer_trial,
    "scratch": scratch_trial,
    "lc": lc_trial,
    "sleeper": functools.partial(sleeper_trial, data="mnist"),
}


def _run(part: str, seed: int, threads: int) -> tuple[str, dict]:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    return part, PARTS[part](seed)


def _rate(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return "—"
    se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    return f"{v.mean():.0%} ± {se:.0%} (n={v.size})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="held-out trials (seeds 0..N-1)")
    parser.add_argument("--lc-trials", type=int, default=3, help="held-out mnist seeds for the lc part")
    parser.add_argument("--sleeper-trials", type=int, default=5)
    parser.add_argument("--dev-trials", type=int, nargs="*", default=[100, 101])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    counts = {
        "transfer": args.trials,
        "scratch": args.trials,
        "lc": args.lc_trials,
        "sleeper": args.sleeper_trials,
    }
    work = [(p, s) for p in args.parts for s in list(range(counts[p])) + list(args.dev_trials)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_run, *zip(*work, strict=True), [threads] * len(work)))
        digits_lc = list(pool.map(lc_digits_seconds, [0, 1, 2]))
    rows: dict[str, list[dict]] = {p: [r for q, r in results if q == p] for p in args.parts}

    def held(part: str) -> list[dict]:
        return [r for r in rows.get(part, []) if r["seed"] not in args.dev_trials]

    def dev(part: str) -> list[dict]:
        return [r for r in rows.get(part, []) if r["seed"] in args.dev_trials]

    bars = []
    print("targeted-instance success (held out; development trials in brackets), ± standard error")
    print(f"{'attack':<30}{'success':<24}{'after deep k-NN':<24}{'poisons caught':>15}{'clean removed':>14}")
    for name in ("feature_collision", "bullseye_polytope"):
        if "transfer" not in rows:
            break
        h, d = held("transfer"), dev("transfer")
        ok = [r[name] for r in h]
        print(
            f"{name + ' (transfer)':<30}{_rate(ok):<24}{_rate([r[name + '_defended'] for r in h]):<24}"
            f"{np.mean([r[name + '_caught'] for r in h]):>15.1%}"
            f"{np.mean([r[name + '_clean_removed'] for r in h]):>14.2%}"
            f"   [dev {_rate([r[name] for r in d])}]"
        )
        accs = [r[name + "_acc"] - r["clean_acc"] for r in h]
        print(f"{'':<30}clean accuracy of the poisoned models: mean change {np.mean(accs):+.2%}")
        found = [r[name + "_scan"] for r in h]
        print(
            f"{'':<30}scan (auto, no rate): recall {np.mean([f['tpr'] or 0 for f in found]):.2f}, "
            f"precision {np.mean([f['precision'] or 0 for f in found]):.2f}, "
            f"FPR {np.mean([f['fpr'] for f in found]):.2%}; "
            f"success after dropping its flags {_rate([r[name + '_after_scan'] for r in h])}"
        )
    if "transfer" in rows:
        print("\ndeep k-NN on the feature-collision poisons: poisons caught / clean rows removed, mean")
        for group, trials in (("held out", held("transfer")), ("development", dev("transfer"))):
            for variant in trials[0]["deep_knn_variants"] if trials else []:
                caught, clean = np.mean([r["deep_knn_variants"][variant] for r in trials], axis=0)
                print(f"  {group:<12} {variant:<20} {caught:6.1%} / {clean:.2%}")
        h = held("transfer")
        fc = [r["feature_collision"] for r in h]
        bp = [r["bullseye_polytope"] for r in h]
        bars += [
            ("feature collision (transfer): success >= 70%", float(np.mean(fc)), lambda v: v >= 0.7),
            (
                "bullseye polytope >= feature collision (same trials)",
                float(np.mean(bp) - np.mean(fc)),
                lambda v: v >= 0,
            ),
            (
                "deep k-NN: >= 80% of FC poisons removed",
                float(np.mean([r["feature_collision_caught"] for r in h])),
                lambda v: v >= 0.8,
            ),
            (
                "deep k-NN: <= 2% of clean points removed",
                float(np.mean([r["feature_collision_clean_removed"] for r in h])),
                lambda v: v <= 0.02,
            ),
            (
                "deep k-NN: FC success after it <= 10%",
                float(np.mean([r["feature_collision_defended"] for r in h])),
                lambda v: v <= 0.1,
            ),
        ]
    if "scratch" in rows:
        h, d = held("scratch"), dev("scratch")
        ok = [r["gradient_matching"] for r in h]
        print(
            f"{'gradient_matching (scratch)':<30}{_rate(ok):<24}{'—':<24}{'':>15}{'':>14}"
            f"   [dev {_rate([r['gradient_matching'] for r in d])}]"
        )
        print(
            f"{'':<30}median final alignment loss {np.median([r['alignment'] for r in h]):.3f}; "
            f"clean accuracy change "
            f"{np.mean([r['gradient_matching_acc'] - r['clean_acc'] for r in h]):+.2%}"
        )
        bars.append(
            ("gradient matching (1%, eps 16/255): success >= 50%", float(np.mean(ok)), lambda v: v >= 0.5)
        )
    for part, label in (
        ("lc", "label_consistent (mnist 5%, eps 0.3)"),
        ("sleeper", "sleeper_agent (mnist 1%, eps 16/255)"),
    ):
        if part not in rows:
            continue
        h, d = held(part), dev(part)
        print(f"\n{label}: seed, ASR (clean model's), C-ACC (clean model's)")
        for r in h + d:
            tag = " (dev)" if r["seed"] in args.dev_trials else ""
            extra = ""
            if "scan" in r:
                s = r["scan"]
                extra = (
                    f"; scan auto P/R/F1 {s['precision'] or 0:.2f}/{s['tpr'] or 0:.2f}/"
                    f"{s['f1'] or 0:.2f}, FPR {s['fpr']:.2%}; retrained without its flags: "
                    f"ASR {r['asr_after_scan']:.1%}, C-ACC {r['acc_after_scan']:.2%}"
                )
            print(
                f"  {r['seed']}{tag}: ASR {r['asr']:.1%} ({r['asr_clean_model']:.1%}), "
                f"C-ACC {r['acc']:.2%} ({r['clean_acc']:.2%}){extra}"
            )
        if part == "lc":
            bars += [
                (
                    "label-consistent: ASR >= 80% (mean)",
                    float(np.mean([r["asr"] for r in h])),
                    lambda v: v >= 0.8,
                ),
                (
                    "label-consistent: C-ACC within 1 point (worst)",
                    float(min(r["acc"] - r["clean_acc"] for r in h)),
                    lambda v: v >= -0.01,
                ),
                (
                    "scan auto on label-consistent 5%: recall >= 0.7",
                    float(np.mean([r["scan"]["tpr"] or 0 for r in h])),
                    lambda v: v >= 0.7,
                ),
                (
                    "scan auto on label-consistent 5%: FPR <= 2%",
                    float(np.mean([r["scan"]["fpr"] for r in h])),
                    lambda v: v <= 0.02,
                ),
            ]
        else:
            bars.append(
                (
                    "sleeper agent: ASR >= 50% (mean)",
                    float(np.mean([r["asr"] for r in h])),
                    lambda v: v >= 0.5,
                )
            )

    print("\neach detector alone (its own rule) on the seed-0 poisoned split: precision / recall / FPR")
    detector_rows = [(k, r[k]) for part in rows.values() for r in part for k in r if k.endswith("_detectors")]
    if detector_rows:
        names = list(detector_rows[0][1])
        print(f"{'detector':<22}" + "".join(f"{k.removesuffix('_detectors'):>22}" for k, _ in detector_rows))
        for det in names:
            cells = "".join(
                f"{(v[det]['precision'] or 0):>9.2f} /{(v[det]['tpr'] or 0):>5.2f} /{v[det]['fpr']:>6.1%}"
                for _, v in detector_rows
            )
            print(f"{det:<22}{cells}")

    print("\nseconds of crafting (median)")
    for key in (
        "feature_collision_s",
        "bullseye_polytope_s",
        "gradient_matching_s",
        "sleeper_agent_s",
        "label_consistent_s",
    ):
        values = [r[key] for part in rows.values() for r in part if key in r]
        if values:
            print(f"  {key.removesuffix('_s'):<22}{np.median(values):7.1f}")
    print(f"  {'label_consistent, digits':<22}{np.median(digits_lc):7.1f}")
    print("\nseconds per trial: crafting + training the victim on the poisoned set (median / max)")
    trials = {}
    for name in (
        "feature_collision",
        "bullseye_polytope",
        "gradient_matching",
        "label_consistent",
        "sleeper_agent",
    ):
        values = [r[name + "_trial_s"] for part in rows.values() for r in part if name + "_trial_s" in r]
        if values:
            trials[name] = max(values)
            print(f"  {name:<22}{np.median(values):7.1f} / {max(values):6.1f}")
    bars.append(
        (
            "one trial of each attack: <= 180 s (slowest; all but gradient matching on mnist)",
            max(trials.values()),
            lambda v: v <= 180,
        )
    )
    return 1 if report_bars(bars) else 0


if __name__ == "__main__":
    raise SystemExit(main())
