"""Measure regression poisoning (OptP, StatP) and the robust-regression defenses on diabetes.

    python benchmarks/bench_regression.py [--seeds 0 1 2 3 4]

Setting (Jagielski et al., IEEE S&P 2018): sklearn's diabetes data, split 60/20/20
into train/validation/test per seed; features and response min-max scaled to
[0, 1] with the training split's statistics, then clipped. The victim is ridge
regression (``Ridge(alpha=0.1)``); the attacker knows it (white box) and adds
``round(rate · n_train)`` poison points to the training set, for rates 4%–20%:

- OptP: BFlip start, gradient ascent on the validation MSE (``W_val``);
- StatP: corner features from a normal fit to the training data, boundary response.

Defenses fitted on the poisoned set: none (ridge), TRIM told the poison share
``p / (n_train + p)``, TRIM with ``poison_rate="auto"``, RANSAC and Huber
(scikit-learn's own, with the same ridge inside RANSAC), and the residual sanitiser.

The table gives the median test MSE over seeds and the median over seeds of its
ratio to the clean ridge model's MSE. Bars (medians over seeds):
- OptP at 20% raises the ridge MSE at least 3×;
- TRIM (known rate) on OptP 20% within 10% of clean, and lower MSE than RANSAC and Huber;
- TRIM (auto rate) on OptP 20% within 20% of clean;
- TRIM (auto rate) on clean data costs at most 5% MSE.
Exits 1 if a bar is missed. Below the bars, two reference figures that are not
bars: the MSE ratio of an OptP run that maximises the *test* MSE itself (a
ceiling for any attack in this setting, not an attack), OptP at 20% with the
training objective ``W_tr``, and the cost of TRIM trimming 16.7% (the OptP-20%
share) of clean data.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch
from _bars import report_bars  # benchmarks/ is on sys.path when a script runs
from sklearn.datasets import load_diabetes
from sklearn.linear_model import HuberRegressor, RANSACRegressor, Ridge
from sklearn.model_selection import train_test_split

from poisonlab.attacks.regression_core import optp, statp
from poisonlab.defenses.robust_regression import ResidualSanitizer, TRIMRegressor

RIDGE_ALPHA = 0.1  # scikit-learn's scale: ||y − Xw − b||² + alpha·||w||²
RATES = (0.04, 0.08, 0.12, 0.16, 0.2)
ATTACKS = ("optp", "statp")
DEFENSES = ("ridge", "trim", "trim_auto", "ransac", "huber", "sanitizer")
LABELS = {
    "ridge": "none (ridge)",
    "trim": "TRIM (known rate)",
    "trim_auto": "TRIM (auto rate)",
    "ransac": "RANSAC",
    "huber": "Huber",
    "sanitizer": "ResidualSanitizer",
}

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_split(seed: int) -> Split:
    """Train/val/test 60/20/20, scaled to [0, 1] with the training split's min and max."""
    X, y = load_diabetes(return_X_y=True)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)
    X_tr, X_val, y_tr, y_val = train_test_split(X_rest, y_rest, test_size=0.25, random_state=seed)
    lo, span = X_tr.min(axis=0), np.ptp(X_tr, axis=0)
    ylo, yspan = y_tr.min(), np.ptp(y_tr)

    def fx(a: np.ndarray) -> np.ndarray:
        return np.clip((a - lo) / span, 0.0, 1.0)

    def fy(a: np.ndarray) -> np.ndarray:
        return np.clip((a - ylo) / yspan, 0.0, 1.0)

    return fx(X_tr), fy(y_tr), fx(X_val), fy(y_val), fx(X_test), fy(y_test)


def defenses(d: int, poison_share: float, seed: int) -> dict[str, Callable[[], object]]:
    """Fresh, unfitted models for one training set."""
    return {
        "ridge": lambda: Ridge(alpha=RIDGE_ALPHA),
        "trim": lambda: TRIMRegressor(Ridge(alpha=RIDGE_ALPHA), poison_rate=poison_share, random_state=seed),
        "trim_auto": lambda: TRIMRegressor(Ridge(alpha=RIDGE_ALPHA), poison_rate="auto", random_state=seed),
        "ransac": lambda: RANSACRegressor(Ridge(alpha=RIDGE_ALPHA), min_samples=d + 1, random_state=seed),
        "huber": lambda: HuberRegressor(max_iter=1000),
        "sanitizer": lambda: ResidualSanitizer(Ridge(alpha=RIDGE_ALPHA)),
    }


def fit_and_score(
    make: Callable[[], object], X: np.ndarray, y: np.ndarray, X_te: np.ndarray, y_te: np.ndarray
) -> float:
    model = make()
    with warnings.catch_warnings():
        # RANSAC and Huber may warn about skipped trials or iterations; the MSE shows the effect.
        warnings.simplefilter("ignore")
        model.fit(X, y)  # type: ignore[attr-defined]
        pred = model.predict(X_te)  # type: ignore[attr-defined]
    return float(np.mean((pred - y_te) ** 2))


def run_seed(seed: int) -> dict[tuple[str, float, str], float]:
    """Test MSE of every (attack, rate, defense) for one seed; attack "clean" has rate 0."""
    X_tr, y_tr, X_val, y_val, X_te, y_te = load_split(seed)
    n, d = X_tr.shape
    out: dict[tuple[str, float, str], float] = {}
    for name, make in defenses(d, 0.0, seed).items():
        out["clean", 0.0, name] = fit_and_score(make, X_tr, y_tr, X_te, y_te)
    for rate in RATES:
        p = round(rate * n)
        alpha = RIDGE_ALPHA / (n + p)  # the same ridge in the attack's (1/n)-normalised form
        poisons = {
            "optp": optp(X_tr, y_tr, X_val, y_val, p, alpha=alpha, init="bflip", rng=seed),
            "statp": statp(X_tr, y_tr, p, seed),
        }
        for attack, (Xp, yp) in poisons.items():
            X_all, y_all = np.vstack([X_tr, Xp]), np.concatenate([y_tr, yp])
            for name, make in defenses(d, p / (n + p), seed).items():
                out[attack, rate, name] = fit_and_score(make, X_all, y_all, X_te, y_te)

    # Reference figures, not bars.
    p = round(0.2 * n)
    alpha = RIDGE_ALPHA / (n + p)
    Xp, yp = optp(X_tr, y_tr, X_te, y_te, p, alpha=alpha, init="bflip", rng=seed)
    X_all, y_all = np.vstack([X_tr, Xp]), np.concatenate([y_tr, yp])
    out["ceiling", 0.2, "ridge"] = fit_and_score(defenses(d, 0, seed)["ridge"], X_all, y_all, X_te, y_te)
    Xp, yp = optp(X_tr, y_tr, X_val, y_val, p, alpha=alpha, init="bflip", objective="train", rng=seed)
    X_all, y_all = np.vstack([X_tr, Xp]), np.concatenate([y_tr, yp])
    out["optp_wtr", 0.2, "ridge"] = fit_and_score(defenses(d, 0, seed)["ridge"], X_all, y_all, X_te, y_te)
    out["clean", 0.0, "trim_overtrim"] = fit_and_score(
        defenses(d, p / (n + p), seed)["trim"], X_tr, y_tr, X_te, y_te
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    mse: dict[tuple[str, float, str], list[float]] = defaultdict(list)
    ratio: dict[tuple[str, float, str], list[float]] = defaultdict(list)
    for seed in args.seeds:
        result = run_seed(seed)
        clean = result["clean", 0.0, "ridge"]
        for key, value in result.items():
            mse[key].append(value)
            ratio[key].append(value / clean)

    def med_mse(key: tuple[str, float, str]) -> float:
        return float(np.median(mse[key]))

    def med_ratio(key: tuple[str, float, str]) -> float:
        return float(np.median(ratio[key]))

    print(
        f"diabetes, Ridge(alpha={RIDGE_ALPHA}), seeds {args.seeds}: "
        "median test MSE (median ratio to the clean ridge MSE)"
    )
    print(f"{'attack':<8}{'rate':>6}  " + "".join(f"{LABELS[n]:>22}" for n in DEFENSES))
    cases = [("clean", 0.0)] + [(a, r) for a in ATTACKS for r in RATES]
    for attack, rate in cases:
        cells = [f"{med_mse((attack, rate, n)):.4f} ({med_ratio((attack, rate, n)):.2f}x)" for n in DEFENSES]
        print(f"{attack:<8}{rate:>6.0%}  " + "".join(f"{c:>22}" for c in cells))

    top = ("optp", 0.2)
    bars = [
        ("OptP 20%: ridge MSE ratio >= 3", med_ratio((*top, "ridge")), lambda v: v >= 3.0),
        ("OptP 20%: TRIM (known rate) MSE ratio <= 1.10", med_ratio((*top, "trim")), lambda v: v <= 1.10),
        (
            "OptP 20%: TRIM (known rate) MSE / RANSAC MSE < 1",
            med_mse((*top, "trim")) / med_mse((*top, "ransac")),
            lambda v: v < 1.0,
        ),
        (
            "OptP 20%: TRIM (known rate) MSE / Huber MSE < 1",
            med_mse((*top, "trim")) / med_mse((*top, "huber")),
            lambda v: v < 1.0,
        ),
        ("OptP 20%: TRIM (auto rate) MSE ratio <= 1.20", med_ratio((*top, "trim_auto")), lambda v: v <= 1.20),
        (
            "clean data: TRIM (auto rate) MSE ratio <= 1.05",
            med_ratio(("clean", 0.0, "trim_auto")),
            lambda v: v <= 1.05,
        ),
    ]
    missed = report_bars(bars)
    print("\nreference, not bars:")
    print(
        f"  ceiling: OptP 20% maximising the test MSE itself (not an attack): ridge MSE ratio "
        f"{med_ratio(('ceiling', 0.2, 'ridge')):.3f}"
    )
    print(
        f"  OptP 20% maximising the training MSE (W_tr) instead of W_val: ridge MSE ratio "
        f"{med_ratio(('optp_wtr', 0.2, 'ridge')):.3f}"
    )
    print(
        f"  clean data, TRIM told 16.7% is poison (trims clean points): MSE ratio "
        f"{med_ratio(('clean', 0.0, 'trim_overtrim')):.3f}"
    )
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
