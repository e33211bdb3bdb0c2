"""``poisonlab scan``: find the samples of a training set most likely to be poisoned."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
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

#: below this share of labels confirmed by the out-of-sample model, the scan says the flags may include
#: clean rows of overlapping classes (seed-0 splits of the benchmark's clean sets: 0.96–0.98; with 20% of
#: labels flipped: 0.76–0.78)
LOW_AGREEMENT = 0.85


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
    scan.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="detector parameter, value in TOML syntax (repeatable), e.g. --param epsilon=0.1",
    )
    scan.add_argument("--contamination", default="auto", help="share to flag, in (0, 1), or 'auto'")
    scan.add_argument("--out", help="write the full report (scores, flags, per-detector) as JSON")
    scan.add_argument(
        "--report",
        metavar="FILE.html",
        help="write an HTML report: flags and scores per class, the most suspicious images, "
        "groups of relabelled samples, provenance",
    )
    force_option(scan)
    scan.add_argument(
        "--fail-above",
        type=int,
        default=0,
        metavar="K",
        help="exit 1 when more than K samples are flagged (default 0)",
    )
    scan.add_argument("--seed", type=int, default=0, help="seed of the proxy model and its folds (default 0)")
    scan.add_argument("--top", type=int, default=10, help="how many suspicious samples to print")
    scan.add_argument(
        "--json", action="store_true", help="print the report as JSON (as --out writes it) instead"
    )
    data_options(scan)

    scan.set_defaults(func=cmd_scan)


# -- scan --------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    import json

    from poisonlab.data import load_dataset
    from poisonlab.defenses.detectors import DETECTORS

    params = parse_params(args.param)
    DETECTORS.create(args.detector, **params)  # unknown names and parameters fail before any work
    contamination = None if args.contamination == "auto" else _fraction(args.contamination)
    if args.fail_above < 0:
        raise ConfigError(f"--fail-above must be >= 0, got {args.fail_above}")
    if (args.data is None) == (args.ledger is None):
        raise ConfigError("give either DATA or --ledger DIR")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.top < 0:
        raise ConfigError(f"--top must be >= 0, got {args.top}")
    out = out_path(args.out, args.data, args.features, args.ledger, force=args.force) if args.out else None
    html = None
    if args.report:
        html = out_path(
            args.report,
            args.data,
            args.features,
            args.ledger,
            args.out,
            force=args.force,
            suffix=".html",
            option="--report",
        )
    features = _features(args.features) if args.features else None
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
    from poisonlab.defenses.scan import scan  # loads PyTorch: only once the input is known good

    with err_console.status("scanning", spinner="dots") as status:

        def on_progress(stage: str) -> None:
            status.update(Text(stage))  # stages name the data: plain text, never markup

        report = scan(
            data,
            detector=args.detector,
            contamination=contamination,
            features=features,
            random_state=args.seed,
            params=params,
            on_progress=on_progress,
        )
    if out is not None:
        # a scan of a ledger names the version it read, so `ledger quarantine` can refuse it for another
        write_atomically(out, json.dumps(report.to_json() | ledger_version) + "\n")

    if html is not None:
        _write_html(report, html, args, ledger_version)

    if args.json:  # for tools: the report on stdout, nothing else (the exit code still says it all)
        sys.stdout.write(json.dumps(report.to_json() | ledger_version) + "\n")
        return 1 if report.n_flagged > args.fail_above else 0
    share = report.n_flagged / len(data)
    console.print(
        f"{data.name}: {len(data)} samples, detector {args.detector}, "
        f"{report.n_flagged} flagged ({share:.1%})",
        highlight=False,
        markup=False,
    )
    from poisonlab.defenses import neighbours

    if len(data) > neighbours.EXACT_BELOW and not neighbours.have_faiss():
        console.print(
            f"note: neighbours among {len(data)} samples were searched exactly; "
            "pip install 'poisonlab[scale]' adds the approximate index that makes large scans fast",
            highlight=False,
            markup=False,
        )
    if report.n_flagged == 0 and contamination is None and args.detector != "auto":
        console.print(
            f"note: {args.detector}'s own rule flagged nothing; --contamination R flags the share R "
            "with the highest scores instead",
            highlight=False,
            markup=False,
        )
    agreement = report.label_agreement
    if agreement is not None and agreement < LOW_AGREEMENT:
        console.print(
            f"note: the out-of-sample model agrees with only {agreement:.0%} of the labels: many labels "
            "are wrong, or the classes overlap, and where they overlap clean rows are flagged too",
            highlight=False,
            markup=False,
        )
    if args.top:
        console.print(_top_table(data, report, args.top))
    if not data.is_regression:
        console.print(_per_class_table(data, report.flags))
    if report.groups:
        console.print(_groups_table(report.groups))
    truth = _known_poisons(args.data, len(data)) if args.data else None
    if truth is not None:
        from poisonlab import metrics

        found = metrics.detection_scores(truth, report.flags, report.scores)
        console.print(
            f"against the file's poison_mask ({int(truth.sum())} poisons): "
            f"precision {_shown(found['precision'])}, recall {_shown(found['tpr'])}, "
            f"F1 {_shown(found['f1'])}, FPR {_shown(found['fpr'])}",
            highlight=False,
        )
    if args.out:
        console.print(Text(f"report: {args.out}"))
    if html is not None:
        console.print(Text(f"HTML report: {html}"))
    if report.n_flagged > args.fail_above:
        console.print(
            f"exit 1: {report.n_flagged} samples flagged, more than --fail-above {args.fail_above}",
            highlight=False,
        )
        return 1
    return 0


def _write_html(report: Any, html: Path, args: argparse.Namespace, stamp: dict[str, Any]) -> None:
    """The scan's HTML report, with what computed it and, for a ledger's data, the version read."""
    import shlex

    from poisonlab.experiments.run import versions
    from poisonlab.report import write_scan_report

    provenance = [("command", shlex.join(args.argv)), ("computed with", versions())]
    if stamp:
        provenance.append(
            ("ledger", f"{args.ledger}: version {stamp['ledger_version']}, root {stamp['ledger_root']}")
        )
    write_scan_report(report, html, source=args.data or str(args.ledger), provenance=provenance)


def _per_class_table(data: Any, flags: Any) -> Table:
    """How many samples of each class were flagged (a backdoor concentrates in its target class)."""
    import numpy as np

    table = Table(title="flagged per class")
    names = data.class_names
    for col in ("class", *(("name",) if names else ()), "samples", "flagged", "share"):
        table.add_column(col, justify="left" if col == "name" else "right")
    counts = np.bincount(data.y, minlength=data.n_classes)
    flagged = np.bincount(data.y[flags], minlength=data.n_classes)
    for k, label in enumerate(data.classes):
        name = (Text(names[k]),) if names else ()  # folder names are data, not markup
        share = f"{flagged[k] / max(counts[k], 1):.1%}"
        table.add_row(str(label), *name, str(counts[k]), str(flagged[k]), share)
    return table


def _groups_table(groups: list[dict[str, Any]]) -> Table:
    """Each group of relabelled samples: where its neighbours say it belongs, and what it shares."""
    from poisonlab.defenses.scan import describe_group

    table = Table(title="groups of relabelled samples (a backdoor's or a targeted relabelling's signature)")
    for col in ("class", "rows", "voted into (rows)", "values shared by every row"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for group in groups:
        voted, shared = describe_group(group)
        # labels and column names come from the data (a CSV's header), never as markup
        table.add_row(Text(str(group["class"])), str(len(group["rows"])), Text(voted), Text(shared))
    return table


def _known_poisons(path: str, n: int) -> Any:
    """The ``poison_mask`` an ``.npz`` or ``.csv`` written by ``poisonlab attack`` (or any tool) carries."""
    import numpy as np

    from poisonlab.data.readers import POISON_MASK

    if path.lower().endswith(".csv"):
        import pandas as pd

        try:
            if POISON_MASK not in pd.read_csv(path, nrows=0).columns:
                return None
            mask = pd.read_csv(path, usecols=[POISON_MASK])[POISON_MASK].to_numpy()
        except (ValueError, OSError, pd.errors.ParserError):
            return None  # the scan read the file; a mask it cannot read is no mask
    elif path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            if POISON_MASK not in archive.files:
                return None
            mask = archive[POISON_MASK]
    else:
        return None
    if mask.dtype != bool or mask.shape != (n,):
        return None  # not a mask of these rows: nothing to compare against
    return mask


def _shown(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _ledger_dataset(folder: str, version: str, task: str | None) -> tuple[Any, dict[str, Any]]:
    """A ledger version as a dataset (sources from its batches), and the stamp matching a report to it."""
    from poisonlab.provenance import Ledger
    from poisonlab.provenance.scans import scan_stamp

    with Ledger.open(folder) as ledger:
        record = ledger.version(version)
        return ledger.dataset(record, task=task), scan_stamp(record)  # type: ignore[arg-type]


def _features(path: str) -> Any:
    """``--features``: a numeric N×d ``.npy`` array, read without pickle, checked before the scan."""
    import numpy as np

    try:
        features = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"--features {path}: no such file") from None
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--features {path}: not a readable .npy array ({exc})") from exc
    if not isinstance(features, np.ndarray):  # np.load gives an archive for an .npz
        features.close()
        raise ConfigError(f"--features {path}: an .npz archive, not one .npy array (save it with np.save)")
    if features.dtype.kind not in "biuf":
        raise ConfigError(f"--features {path}: holds {features.dtype} values; it must hold numbers")
    if features.ndim != 2:
        raise ConfigError(f"--features {path}: has shape {features.shape}; it must be N×d (2-D)")
    return features


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--contamination must be a number in (0, 1) or 'auto', got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise ConfigError(f"--contamination must lie in (0, 1), got {text}")
    return value


def _top_table(data: Any, report: Any, top: int) -> Table:
    """The ``top`` most suspicious rows: flagged rows first, then by score."""
    import numpy as np

    table = Table(title="most suspicious samples")
    predicted = report.predicted_labels
    columns = ("index", "id", "label", *(("predicted",) if predicted is not None else ()), "score")
    for col in (*columns, "flagged", "flagged by"):
        table.add_column(col, justify="left" if col == "flagged by" else "right")
    labels = data.original_labels()
    for i in np.lexsort((-report.scores, ~report.flags))[:top]:
        # the out-of-sample prediction says what a label-noise flag thinks the label should be
        guess = () if predicted is None else (str(predicted[i]),)
        table.add_row(
            str(i),
            Text(str(data.ids[i])),  # ids (from a ledger, a CSV) are data, not rich markup
            f"{labels[i]:.4g}" if data.is_regression else str(labels[i]),
            *guess,
            f"{report.scores[i]:.3f}",
            "yes" if report.flags[i] else "",
            ", ".join(report.agreeing(int(i))),
        )
    return table
