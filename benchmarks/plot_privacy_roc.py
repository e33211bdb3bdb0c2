"""LiRA's ROC curves with and without Truth Serum, drawn for the README (log-log, as LiRA's paper draws them).

Runs the membership audit of ``bench_privacy.py`` with the settings chosen there on
development seeds (``mlp``; 4 copies per target on digits, 8 on breast_cancer) on
held-out seed 0 and its held-out targets, and writes one SVG with a panel per dataset.

    python benchmarks/plot_privacy_roc.py --out docs/truth_serum_roc.svg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_privacy import SETTINGS, SPLIT_SEED  # the benchmark's own settings and target split

CHOSEN = {"digits": 4, "breast_cancer": 8}  # copies per target, chosen by bench_privacy on dev seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/truth_serum_roc.svg")
    parser.add_argument("--seed", type=int, default=0, help="a held-out seed of bench_privacy.py")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    import torch
    from threadpoolctl import threadpool_limits

    from poisonlab.data import load_dataset
    from poisonlab.privacy import membership_audit

    torch.set_num_threads(1)
    matplotlib.rcParams["svg.hashsalt"] = "poisonlab"  # the same figure gives the same file
    figure, axes = plt.subplots(1, len(CHOSEN), figsize=(4.2 * len(CHOSEN), 4.0))
    for ax, (name, copies) in zip(axes, CHOSEN.items(), strict=True):
        data = load_dataset(name)
        setting = SETTINGS[name]
        held_out = np.random.default_rng(SPLIT_SEED).permutation(len(data))[len(data) // 2 :]
        targets = np.random.default_rng(args.seed).choice(held_out, size=setting["targets"], replace=False)
        with threadpool_limits(limits=1):
            audit = membership_audit(
                data,
                model="mlp",
                n_models=setting["n_models"],
                targets=targets,
                copies=copies,
                random_state=args.seed,
            )
        for label, result, style in (
            ("no poisoning", audit.clean, "--"),
            ("Truth Serum", audit.poisoned, "-"),
        ):
            fpr, tpr = np.maximum(result.fpr, 1e-4), np.maximum(result.tpr, 1e-4)
            text = f"{label}: TPR {result.tpr_at_1pct_fpr:.2f} at 1% FPR, AUC {result.auc:.2f}"
            ax.plot(fpr, tpr, style, label=text)
            print(f"{name}: {text}")
        ax.plot([1e-4, 1], [1e-4, 1], ":", color="grey", linewidth=0.8)
        ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1))
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate")
        ax.set_title(f"{name}, mlp, {copies} copies per target", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, metadata={"Date": None})
    print(f"→ {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
