"""Each detector alone on clean training sets: the share of samples its own rule flags.

The bar (issue 12): every registered detector flags at most 1% of each clean set,
``auto`` at most 0.5%. Evidence is computed once per set and seed with the scan's
own proxy (the CNN for images, the tabular evidence otherwise), then every
classification detector is fitted on it with its defaults.

    python benchmarks/bench_clean_quiet.py [--seeds 0 1 2] [--datasets digits wine ...]
        [--detectors deep_knn ...] [--param k=10 ...] [--evidence-cache DIR]

Prints, per detector and dataset, the mean share flagged over seeds (worst seed),
and PASS/MISS per detector against its bar. ``mnist`` needs the ``[mnist]`` extra
and takes about a minute per seed (3,500 training rows). ``--evidence-cache DIR``
keeps each split's evidence in ``DIR`` (keyed by its content and seed) and reads it
back on the next run, so that a changed detector rule is measured again in seconds.
``--detectors`` measures only the named detectors and ``--param KEY=VALUE`` sets a
parameter of each of them (as ``scan --param`` does), to measure a rule's settings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _bars import report_bars

from poisonlab.cli._common import parse_params
from poisonlab.data import load_dataset, train_test_split
from poisonlab.defenses import DETECTORS
from poisonlab.defenses.evidence_cache import shared_evidence, use_evidence_cache
from poisonlab.errors import ConfigError

DEFAULT_DATASETS = ("digits", "breast_cancer", "wine")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--evidence-cache", metavar="DIR", help="keep the evidence in DIR and reuse it")
    parser.add_argument("--detectors", nargs="+", metavar="NAME", help="only these detectors (default: all)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter of each detector"
    )
    args = parser.parse_args()
    params = parse_params(args.param)
    if args.evidence_cache:
        Path(args.evidence_cache).mkdir(parents=True, exist_ok=True)
    use_evidence_cache(args.evidence_cache)  # None: computed every time
    torch.set_num_threads(2)  # figures depend on the thread count; fix it
    names = [e.name for e in DETECTORS.where(tasks="classification") if not e.tag("needs_sources")]
    if args.detectors:
        unknown = sorted(set(args.detectors) - set(names))
        if unknown:
            parser.error(f"not a classification detector: {', '.join(unknown)}")
        names = [name for name in names if name in args.detectors]
    for name in names:  # a parameter a detector lacks is refused before any evidence is computed
        try:
            DETECTORS.get(name).check_params(params)
        except ConfigError as error:
            parser.error(str(error))
    shares: dict[tuple[str, str], list[float]] = {}
    for dataset in args.datasets:
        data = load_dataset(dataset)
        for seed in args.seeds:
            train, _ = train_test_split(
                data, test_size=0.3 if dataset == "mnist" else 0.25, random_state=seed
            )
            start = time.perf_counter()
            evidence = shared_evidence(train, random_state=seed)
            took = time.perf_counter() - start
            for name in names:
                entry = DETECTORS.get(name)
                seeded = {"random_state": seed} if "random_state" in entry.parameters() else {}
                flags = entry.create(**seeded, **params).fit(train, evidence).auto_flags()
                shares.setdefault((name, dataset), []).append(float(flags.mean()))
            print(f"{dataset} seed {seed}: {len(train)} rows, evidence in {took:.0f} s", file=sys.stderr)

    settings = f", with {', '.join(args.param)}" if args.param else ""
    print(
        f"clean training sets, seeds {args.seeds}: share flagged by each detector's own rule{settings}, "
        "mean (worst)"
    )
    print(f"{'detector':<24}" + "".join(f"{d:>22}" for d in args.datasets))
    for name in names:
        cells = [shares[name, d] for d in args.datasets]
        print(f"{name:<24}" + "".join(f"{np.mean(c):>14.2%} ({max(c):.2%})" for c in cells))
    bars = [
        (
            f"{name}: worst clean share <= {0.5 if name == 'auto' else 1}%",
            max(max(shares[name, d]) for d in args.datasets),
            (lambda v, cap=(0.005 if name == "auto" else 0.01): v <= cap),
        )
        for name in names
    ]
    missed = report_bars(bars, scale=100)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
