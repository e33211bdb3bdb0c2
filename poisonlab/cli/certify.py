"""``poisonlab certify``: train a certified ensemble and say how many poisons each prediction survives."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from poisonlab.atomic import write_atomically
from poisonlab.cli._common import (
    console,
    data_options,
    err_console,
    force_option,
    out_path,
    parse_params,
)
from poisonlab.errors import ConfigError

#: radii the curve is printed at (those beyond the largest certified radius are dropped)
RADII = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    certify = sub.add_parser(
        "certify",
        help="train a certified ensemble (DPA, Finite Aggregation or bagging), print certified accuracy",
    )
    add = certify.add_argument
    add("data", help="built-in dataset name or a .npz/.csv/.parquet file or image folder")
    add(
        "--method",
        choices=("dpa", "fa", "bagging"),
        default="dpa",
        help="dpa: Deep Partition Aggregation (default); fa: Finite Aggregation; bagging: probabilistic",
    )
    add("--partitions", type=int, default=50, help="dpa, fa: k, the number of partitions (default 50)")
    add("--spread", type=int, default=4, help="fa: d, buckets per base model (default 4)")
    add("--models", type=int, default=100, help="bagging: number of base models (default 100)")
    add("--subsample", type=int, default=50, help="bagging: samples per base model (default 50)")
    add("--confidence", type=float, default=0.999, help="bagging: confidence level (default 0.999)")
    add("--model", default="logreg", help="base learner (see poisonlab list models), default logreg")
    add("--param", action="append", default=[], metavar="KEY=VALUE", help="base learner parameter")
    add("--test", metavar="DATA", help="certify these inputs (default: a held-out split of DATA)")
    add("--test-size", type=float, default=0.25, help="held-out share when --test is not given")
    add("--seed", type=int, default=0, help="seed of the split and of every base model (default 0)")
    add("--out", help="write each test input's prediction and certified radius as CSV")
    force_option(certify)
    data_options(certify)
    certify.set_defaults(func=cmd_certify)


def cmd_certify(args: argparse.Namespace) -> int:
    import numpy as np

    from poisonlab.data import load_dataset
    from poisonlab.data.dataset import train_test_split
    from poisonlab.defenses.training import BaggingCertifier, DeepPartitionAggregation, FiniteAggregation
    from poisonlab.models import MODELS

    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.test is None and not 0 < args.test_size < 1:
        raise ConfigError(f"--test-size must lie in (0, 1), got {args.test_size}")
    params = parse_params(args.param)
    MODELS.create(args.model, **params)  # an unknown model or parameter fails before any work
    out = out_path(args.out, args.data, args.test, force=args.force) if args.out else None

    def load(name: str) -> Any:
        return load_dataset(
            name, label_col=args.label_col, id_col=args.id_col, source_col=args.source_col, task=args.task
        )

    data = load(args.data)
    what = f"dataset {data.name!r} ({data.modality} {data.task})"
    if data.is_regression:
        raise ConfigError(f"certify needs classification data; {what} is regression")
    MODELS.require(args.model, what, task="classification", modalities=data.modality)
    if args.test is not None:
        train, test = data, load(args.test)
        if test.X.shape[1:] != train.X.shape[1:]:
            raise ConfigError(
                f"--test {args.test} has samples of shape {test.X.shape[1:]}, DATA {train.X.shape[1:]}"
            )
        if test.classes != train.classes:
            raise ConfigError(
                f"--test {args.test} has classes {list(test.classes)}, DATA {list(train.classes)}"
            )
    else:
        train, test = train_test_split(data, test_size=args.test_size, random_state=args.seed)

    def make_model(seed: int) -> Any:
        return MODELS.create(args.model, random_state=seed, **params)

    model: Any
    if args.method in ("dpa", "fa"):
        if not 2 <= args.partitions <= len(train):
            raise ConfigError(
                f"--partitions must lie in 2..{len(train)} (the training samples), got {args.partitions}"
            )
        if args.method == "dpa":
            model = DeepPartitionAggregation(make_model, n_partitions=args.partitions, random_state=args.seed)
            how = f"{args.partitions} partitions"
        else:
            if args.spread < 1:
                raise ConfigError(f"--spread must be >= 1, got {args.spread}")
            model = FiniteAggregation(
                make_model, n_partitions=args.partitions, spread=args.spread, random_state=args.seed
            )
            how = f"{args.partitions} partitions × spread {args.spread}"
    else:
        model = BaggingCertifier(
            make_model,
            n_models=args.models,
            subsample=args.subsample,
            confidence=args.confidence,
            random_state=args.seed,
        )
        how = f"{args.models} models on {args.subsample} samples each, confidence {args.confidence}"
    with err_console.status(Text(f"training {how} of {args.model}"), spinner="dots"):
        model.fit(train.X, train.y)
        certificate = model.certify(test.X)

    y_test = np.asarray(test.y)
    correct = certificate.prediction == y_test
    radius = np.asarray(certificate.radius)
    console.print(
        Text(
            f"{data.name}: {args.method} of {args.model}, {how}; {len(train)} training samples, "
            f"{len(test)} certified inputs; accuracy {correct.mean():.1%}, median radius "
            f"{int(np.median(radius))}"
        )
    )
    console.print(Text(f"radius unit: {certificate.unit}"))
    table = Table(title="certified accuracy")
    table.add_column("r", justify="right")
    table.add_column("correct and certified at radius ≥ r", justify="right")
    shown = [r for r in RADII if r <= max(int(radius.max()), 0)] or [0]
    for r in shown:
        table.add_row(str(r), f"{np.mean(correct & (radius >= r)):.1%}")
    console.print(table)
    if out is not None:
        labels = test.original_labels()
        lines = ["index,id,label,prediction,certified_radius"]
        for i in range(len(test)):
            k = int(certificate.prediction[i])
            predicted = data.classes[k] if data.classes else k
            lines.append(f"{i},{_csv(test.ids[i])},{_csv(labels[i])},{_csv(predicted)},{radius[i]}")
        write_atomically(out, "\n".join(lines) + "\n")
        console.print(Text(f"per-input radii: {args.out}"))
    return 0


def _csv(value: Any) -> str:
    """A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break."""
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
