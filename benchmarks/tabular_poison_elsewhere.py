"""Poison a table with NumPy and scikit-learn alone, as a tool other than poisonlab would; write an ``.npz``.

    python benchmarks/tabular_poison_elsewhere.py OUT.npz [--data synthetic|breast_cancer|wine]
        [--rate 0.05] [--seed 0] [--columns 2] [--jitter 0.0] [--discrete 0] [--clean]

This script deliberately does not import poisonlab. It loads a table:

- ``synthetic``: ``sklearn.datasets.make_classification`` with its defaults for
  class separation, 2,000 rows, 20 columns (8 informative, 2 redundant, the rest
  noise), 3 classes of 2 clusters each, no label noise, and every column put on
  its own raw scale (from 1 to 1,000) and offset, as measurements in different
  units are: each class is two separate clouds, and a trigger's rows, drawn from
  the other classes, form no cluster of their own;
- ``breast_cancer`` and ``wine``: the scikit-learn tables, raw features.

``--discrete N`` appends N binary columns (a one in 2% of the rows) and N counts
(Poisson, mean 1), which carry no information about the class, as flags and
tallies in a real table do; the trigger's columns are then drawn among those.

It keeps a random 70% as the training split, picks ``columns`` random columns and
sets them, on ``rate`` of the rows whose label is not the target class
(``seed`` modulo the number of classes), to a rare value of each column (its
99.5th percentile in the split), adds uniform noise of ``jitter`` times the
column's standard deviation to those values when asked, and relabels the rows to
the target. ``--clean`` writes the split untouched.

The ``.npz`` holds ``X`` (N×d float64), ``y``, ``ids`` and the truth in
``poison_mask``, which ``poisonlab scan`` reads to report precision and recall.
"""

from __future__ import annotations

import argparse

import numpy as np


def load(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "synthetic":
        X, y = datasets.make_classification(
            n_samples=2000,
            n_features=20,
            n_informative=8,
            n_redundant=2,
            n_classes=3,
            n_clusters_per_class=2,
            flip_y=0.0,
            random_state=seed,
        )
        scales = np.random.default_rng(seed).permutation(np.logspace(0, 3, X.shape[1]))
        return X * scales + np.linspace(-50, 50, X.shape[1]), y
    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]
    X, y = loader(return_X_y=True)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--data", choices=["synthetic", "breast_cancer", "wine"], default="synthetic")
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=2)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--discrete", type=int, default=0)
    parser.add_argument("--clean", action="store_true")
    args = parser.parse_args()
    if not 0 < args.rate < 0.5 or args.columns < 1 or args.jitter < 0 or args.seed < 0 or args.discrete < 0:
        parser.error("need 0 < --rate < 0.5, --columns >= 1, and --jitter, --discrete and --seed >= 0")
    rng = np.random.default_rng(args.seed)
    X, y = load(args.data, args.seed)
    first_discrete = X.shape[1]
    if args.discrete:
        flags = (rng.random((len(y), args.discrete)) < 0.02).astype(np.float64)
        tallies = rng.poisson(1.0, size=(len(y), args.discrete)).astype(np.float64)
        X = np.hstack([X, flags, tallies])
    keep = rng.permutation(len(y))[: int(0.7 * len(y))]
    X, y = X[keep].astype(np.float64), y[keep].astype(np.int64)
    mask = np.zeros(len(y), dtype=bool)
    if not args.clean:
        target = args.seed % int(y.max() + 1)
        others = np.flatnonzero(y != target)
        rows = rng.choice(others, round(args.rate * len(y)), replace=False)
        pool = np.arange(first_discrete, X.shape[1]) if args.discrete else np.arange(X.shape[1])
        columns = rng.choice(pool, args.columns, replace=False)
        values = np.percentile(X[:, columns], 99.5, axis=0)
        noise = rng.uniform(-1, 1, size=(rows.size, columns.size)) * args.jitter * X[:, columns].std(axis=0)
        X[np.ix_(rows, columns)] = values + noise
        y[rows] = target
        mask[rows] = True
    np.savez(args.out, X=X, y=y, ids=np.arange(len(y)), poison_mask=mask)


if __name__ == "__main__":
    main()
