"""``poisonlab scan``: find the samples of a training set most likely to be poisoned."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from poisonlab.cli._common import console, data_options
from poisonlab.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    scan = sub.add_parser("scan", help="find the samples of a training set most likely to be poisoned")
    scan.add_argument(
        "data", nargs="?", help="built-in dataset name or a .npz/.csv/.parquet file or image folder"
    )
    scan.add_argument(
        "--ledger",
        metavar="DIR",
        help="scan a version of this provenance ledger instead of DATA (with each sample's source)",
    )
    scan.add_argument("--version", default="head", help="ledger version to scan (default head)")
    scan.add_argument("--features", help="N×d .npy embeddings from your own model (default: a proxy model)")
    scan.add_argument("--detector", default="auto", help="detector name (see poisonlab list), default auto")
    scan.add_argument("--contamination", default="auto", help="share to flag, in (0, 1), or 'auto'")
    scan.add_argument("--out", help="write the full report (scores, flags, per-detector) as JSON")
    scan.add_argument(
        "--fail-above",
        type=int,
        default=0,
        metavar="K",
        help="exit 1 when more than K samples are flagged (default 0)",
    )
    scan.add_argument("--seed", type=int, default=0)
    scan.add_argument("--top", type=int, default=10, help="how many suspicious samples to print")
    data_options(scan)

    scan.set_defaults(func=cmd_scan)


# -- scan --------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from poisonlab.data import load_dataset
    from poisonlab.defenses.detectors import DETECTORS

    DETECTORS.get(args.detector)  # unknown names fail before any work
    contamination = None if args.contamination == "auto" else _fraction(args.contamination)
    if args.fail_above < 0:
        raise ConfigError(f"--fail-above must be >= 0, got {args.fail_above}")
    if (args.data is None) == (args.ledger is None):
        raise ConfigError("give either DATA or --ledger DIR")
    ledger_version: dict[str, Any] = {}
    if args.ledger is not None:
        data, ledger_version = _ledger_dataset(args.ledger, args.version, args.task)
    else:
        data = load_dataset(
            args.data,
            label_col=args.label_col,
            id_col=args.id_col,
            source_col=args.source_col,
            task=args.task,
        )
    features = None
    if args.features:
        try:
            features = np.load(args.features, allow_pickle=False)
        except FileNotFoundError:
            raise ConfigError(f"{args.features}: no such file") from None
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{args.features}: not a readable .npy array ({exc})") from exc
    from poisonlab.defenses.scan import scan  # loads PyTorch: only once the input is known good

    report = scan(
        data, detector=args.detector, contamination=contamination, features=features, random_state=args.seed
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        # a scan of a ledger names the version it read, so `ledger quarantine` can refuse it for another
        Path(args.out).write_text(json.dumps(report.to_json() | ledger_version) + "\n")

    share = report.n_flagged / len(data)
    console.print(
        f"{data.name}: {len(data)} samples, detector {args.detector}, "
        f"{report.n_flagged} flagged ({share:.1%})",
        highlight=False,
        markup=False,
    )
    # flagged rows first, then by score
    top = np.lexsort((-report.scores, ~report.flags))[: args.top]
    table = Table(title="most suspicious samples")
    for col in ("index", "id", "label", "score", "flagged", "flagged by"):
        table.add_column(col, justify="left" if col == "flagged by" else "right")
    labels = data.original_labels()
    for i in top:
        table.add_row(
            str(i),
            Text(str(data.ids[i])),  # ids (from a ledger, a CSV) are data, not rich markup
            f"{labels[i]:.4g}" if data.is_regression else str(labels[i]),
            f"{report.scores[i]:.3f}",
            "yes" if report.flags[i] else "",
            ", ".join(report.agreeing(int(i))),
        )
    console.print(table)
    if args.out:
        console.print(f"report: {args.out}")
    return 1 if report.n_flagged > args.fail_above else 0


def _ledger_dataset(folder: str, version: str, task: str | None) -> tuple[Any, dict[str, Any]]:
    """A ledger version as a dataset (sources from its batches), and the stamp matching a report to it."""
    from poisonlab.provenance import Ledger
    from poisonlab.provenance.scans import scan_stamp

    with Ledger.open(folder) as ledger:
        record = ledger.version(version)
        return ledger.dataset(record, task=task), scan_stamp(record)  # type: ignore[arg-type]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--contamination must be a number in (0, 1) or 'auto', got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise ConfigError(f"--contamination must lie in (0, 1), got {text}")
    return value
