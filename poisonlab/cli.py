"""The ``poisonlab`` command line: parses, calls the library, formats output. Nothing else."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from poisonlab.errors import ConfigError, PoisonlabError

console = Console()
err_console = Console(stderr=True)
if not console.is_terminal:  # a pipe or file: don't squeeze tables into 80 columns
    console.width = max(console.width, 120)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        _error(f"{message} (see {self.prog} --help)")
        sys.exit(2)


def _error(message: str) -> None:
    """One plain line on stderr: never wrapped, so scripts and CI logs can grep it."""
    sys.stderr.write(f"poisonlab: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poisonlab", description="Red-team and defend ML training data against poisoning.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run an experiment grid (built-in quick benchmark without CONFIG)")
    run.add_argument("config", nargs="?", help="TOML experiment config")
    run.add_argument("--out", help="output folder (default: runs/<time stamp>)")
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes")
    run.add_argument("--resume", action="store_true", help="skip runs already finished in --out")

    attack = sub.add_parser("attack", help="write a poisoned copy of a dataset with its poison mask")
    attack.add_argument("name", help="attack name (see poisonlab list)")
    attack.add_argument("data", help="built-in dataset name or a .npz/.csv/.parquet file or image folder")
    budget = attack.add_mutually_exclusive_group(required=True)
    budget.add_argument("--rate", type=float, help="fraction of samples to poison, in (0, 1]")
    budget.add_argument("--count", type=int, help="number of samples to poison")
    attack.add_argument("--out", required=True, help="output .npz (X, y, ids, poison_mask, ...)")
    attack.add_argument("--seed", type=int, default=0)
    attack.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="attack parameter, value in TOML syntax (repeatable)",
    )
    _data_options(attack)

    scan = sub.add_parser("scan", help="find the samples of a training set most likely to be poisoned")
    scan.add_argument("data", help="built-in dataset name or a .npz/.csv/.parquet file or image folder")
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
    _data_options(scan)

    fl = sub.add_parser("fl", help="one federated-learning run with malicious clients, round by round")
    fl.add_argument("--data", default="digits", help="classification dataset: built-in name or file")
    fl.add_argument("--model", default="mlp", choices=("mlp", "cnn"), help="global model (default mlp)")
    fl.add_argument("--clients", type=int, default=20, help="number of clients (default 20)")
    fl.add_argument(
        "--malicious", default="0.2", help="share of malicious clients in [0, 1], or a count (default 0.2)"
    )
    fl.add_argument(
        "--attack", default="sign_flip", help="malicious behaviour, or 'none' (see poisonlab list)"
    )
    fl.add_argument("--aggregator", default="fedavg", help="server's aggregation rule (see poisonlab list)")
    fl.add_argument("--rounds", type=int, default=20, help="communication rounds (default 20)")
    fl.add_argument("--fraction", type=float, default=1.0, help="share of clients sampled per round")
    fl.add_argument("--local-epochs", type=int, default=2, help="local SGD epochs per round (default 2)")
    fl.add_argument("--lr", type=float, default=0.2, help="local SGD learning rate (default 0.2)")
    fl.add_argument("--batch-size", type=int, default=16, help="local SGD batch size (default 16)")
    fl.add_argument("--alpha", type=float, help="Dirichlet label skew of the client split (default: IID)")
    fl.add_argument("--seed", type=int, default=0)
    fl.add_argument("--test-size", type=float, default=0.25)
    fl.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="attack parameter")
    fl.add_argument(
        "--agg-param", action="append", default=[], metavar="KEY=VALUE", help="aggregator parameter"
    )
    fl.add_argument("--out", help="output folder for the results store (default: runs/<time stamp>-fl)")

    sub.add_parser(
        "list", help="list registered datasets, models, attacks, detectors, defenses and federated rules"
    )
    return parser


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label-col", help="label column of a CSV/Parquet file")
    parser.add_argument("--id-col", help="id column of a CSV/Parquet file")
    parser.add_argument("--source-col", help="source column of a CSV/Parquet file")
    parser.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="what the label column holds (default: classification, or what an .npz records)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"run": cmd_run, "attack": cmd_attack, "scan": cmd_scan, "fl": cmd_fl, "list": cmd_list}
        return commands[args.command](args)
    except PoisonlabError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted; finished runs are kept in the results store")
        return 130


# -- run ---------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from poisonlab.experiments import DEFAULT_CONFIG, aggregate, load_config, parse_config, run_grid
    from poisonlab.experiments.runner import pending_runs

    experiment = load_config(args.config) if args.config else parse_config(DEFAULT_CONFIG)
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    todo, skipped = pending_runs(experiment, out, resume=args.resume)
    if skipped:
        console.print(f"resuming: {skipped} finished runs kept, {len(todo)} to go")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        task = progress.add_task("runs", total=len(todo))

        def on_result(record: dict[str, Any]) -> None:
            progress.advance(task)
            if record["status"] != "ok":
                progress.console.print(
                    f"[red]failed[/red] {record['attack']} rate={record['poison_rate']} "
                    f"seed={record['seed']}: {record['error']}",
                    highlight=False,
                )

        outcome = run_grid(experiment, out, jobs=args.jobs, resume=args.resume, on_result=on_result)
    console.print(_summary_table(aggregate(outcome.records)))
    console.print(f"results: {out / 'summary.json'}, {out / 'results.csv'}, {out / 'results.sqlite'}")
    if outcome.n_failed:
        _error(f"{outcome.n_failed} run(s) failed; see 'error' in {out / 'summary.json'}")
        return 1
    return 0


def _summary_table(rows: list[dict[str, Any]]) -> Table:
    """Mean ± std per cell; columns with a single value across the grid move to the title.

    Classification cells show accuracies in %; regression cells show test MSE and
    its ratio to the clean baseline.
    """
    keys = ("dataset", "model", "defense")
    federated = bool(rows) and all(r.get("scenario") == "federated" for r in rows)
    header = {"defense": "aggregator", "rate": "malicious"} if federated else {}
    constant = [k for k in keys if len({r[k] for r in rows}) == 1] if rows else []
    regression = any(r.get("test_mse") is not None for r in rows)
    classification = any(r.get("clean_acc") is not None for r in rows) or not rows
    title = "mean ± std over seeds"
    if classification:
        title += ", accuracies in %"
    if constant:
        title += " — " + ", ".join(f"{header.get(k, k)}: {rows[0][k]}" for k in constant)
    table = Table(title=title)
    shown = [k for k in keys if k not in constant]
    metrics: list[tuple[str, str]] = []
    if classification:
        metrics += [("C-ACC", "clean_acc"), ("ASR", "asr"), ("RA", "ra"), ("ΔACC", "acc_drop")]
    if regression:
        metrics += [("MSE", "test_mse"), ("MSE×", "mse_ratio")]
    if any(r.get("malicious_selected") is not None for r in rows):
        metrics += [("kept", "malicious_selected")]  # share of malicious updates a selection rule kept
    for col in (*shown, "attack", "rate", "seeds", "n_poison", *(name for name, _ in metrics)):
        justify: Literal["left", "right"] = "left" if col in (*keys, "attack") else "right"
        table.add_column(header.get(col, col), no_wrap=True, justify=justify)
    for r in rows:
        rate = "—" if r["poison_rate"] is None else f"{100 * r['poison_rate']:g}%"
        cells = []
        for _, key in metrics:
            value = r.get(key)
            if key == "test_mse":
                cells.append("—" if value is None else f"{value[0]:.4g}±{value[1]:.2g}")
            elif key == "mse_ratio":
                cells.append("—" if value is None else f"{value[0]:.2f}±{value[1]:.2f}")
            else:
                cells.append(_pm(value))
        table.add_row(
            *(r[k] for k in shown), r["attack"], rate, str(r["n_seeds"]), f"{r['n_poison']:.0f}", *cells
        )
    return table


def _pm(value: tuple[float, float] | None) -> str:
    return "—" if value is None else f"{100 * value[0]:.1f}±{100 * value[1]:.1f}"


# -- attack ------------------------------------------------------------------
def cmd_attack(args: argparse.Namespace) -> int:
    import numpy as np

    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset, write_npz

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ConfigError(f"--out must name a .npz file, got {args.out}")
    attack = ATTACKS.create(args.name, **_parse_params(args.param))
    data = load_dataset(
        args.data, label_col=args.label_col, id_col=args.id_col, source_col=args.source_col, task=args.task
    )
    budget = args.rate if args.rate is not None else args.count
    result = attack.poison(data, budget, args.seed)
    extra: dict[str, np.ndarray] = {"poison_mask": result.poison_mask}
    if result.target_class is not None:
        extra["target"] = np.asarray(data.classes[result.target_class])
    write_npz(out, result.dataset, **extra)
    console.print(
        f"{args.name}: poisoned {result.n_poison} of {len(data)} samples of {data.name} → {out}",
        highlight=False,
    )
    return 0


def _parse_params(items: list[str], option: str = "--param") -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} wants KEY=VALUE, got {item!r}")
        if key.strip() == "name":
            raise ConfigError(f"{option} cannot set 'name'")
        try:
            params[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = value  # a bare word is a string
    return params


# -- scan --------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from poisonlab.data import load_dataset
    from poisonlab.defenses.detectors import DETECTORS
    from poisonlab.defenses.regression import METHODS

    if args.detector not in METHODS:
        DETECTORS.get(args.detector)  # unknown names fail before any work
    contamination = None if args.contamination == "auto" else _fraction(args.contamination)
    if args.fail_above < 0:
        raise ConfigError(f"--fail-above must be >= 0, got {args.fail_above}")
    data = load_dataset(
        args.data, label_col=args.label_col, id_col=args.id_col, source_col=args.source_col, task=args.task
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
        Path(args.out).write_text(json.dumps(report.to_json()) + "\n")

    share = report.n_flagged / len(data)
    console.print(
        f"{data.name}: {len(data)} samples, detector {args.detector}, "
        f"{report.n_flagged} flagged ({share:.1%})",
        highlight=False,
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
            str(data.ids[i]),
            f"{labels[i]:.4g}" if data.is_regression else str(labels[i]),
            f"{report.scores[i]:.3f}",
            "yes" if report.flags[i] else "",
            ", ".join(report.agreeing(int(i))),
        )
    console.print(table)
    if args.out:
        console.print(f"report: {args.out}")
    return 1 if report.n_flagged > args.fail_above else 0


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--contamination must be a number in (0, 1) or 'auto', got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise ConfigError(f"--contamination must lie in (0, 1), got {text}")
    return value


# -- fl ----------------------------------------------------------------------
def cmd_fl(args: argparse.Namespace) -> int:
    from poisonlab.experiments import parse_config, run_grid

    raw: dict[str, Any] = {
        "scenario": "federated",
        "datasets": [args.data],
        "models": [args.model],
        "attacks": [{"name": args.attack, **_parse_params(args.param)}],
        "aggregators": [{"name": args.aggregator, **_parse_params(args.agg_param, "--agg-param")}],
        "malicious": [_malicious(args.malicious)],
        "seeds": [args.seed],
        "test_size": args.test_size,
        "baseline": False,
        "federated": {
            "clients": args.clients,
            "rounds": args.rounds,
            "fraction": args.fraction,
            "local_epochs": args.local_epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
        },
    }
    if args.alpha is not None:
        raw["federated"]["alpha"] = args.alpha
    experiment = parse_config(raw, base_dir=Path.cwd())  # every bad option fails here, before training
    out = Path(args.out) if args.out else Path("runs") / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-fl")
    history: list[dict[str, Any]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("rounds", total=args.rounds, status="")

        def on_round(record: dict[str, Any]) -> None:
            history.append(record)
            status = f"acc {100 * record['accuracy']:.1f}%"
            if record["asr"] is not None:
                status += f"  ASR {100 * record['asr']:.1f}%"
            progress.update(task, advance=1, status=status)

        outcome = run_grid(experiment, out, on_round=on_round)
    record = outcome.records[0]
    if record["status"] != "ok":
        raise ConfigError(f"the federated run failed: {record['error']}")
    console.print(_rounds_table(history, args))
    console.print(
        f"{args.aggregator} vs {args.attack}: {record['n_poison']} of {args.clients} clients malicious, "
        f"final accuracy {100 * record['clean_acc']:.1f}%"
        + ("" if record["asr"] is None else f", ASR {100 * record['asr']:.1f}%"),
        highlight=False,
    )
    console.print(f"results: {out / 'summary.json'}, {out / 'results.csv'}, {out / 'results.sqlite'}")
    return 0


def _malicious(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"--malicious must be a share in [0, 1] or a count of clients, got {text!r}"
        ) from None
    if value > 1 and value.is_integer():
        return int(value)  # a count of clients
    return value


def _rounds_table(history: list[dict[str, Any]], args: argparse.Namespace) -> Table:
    table = Table(title=f"{args.aggregator} vs {args.attack}")
    columns = ["round", "accuracy %"]
    if any(r["asr"] is not None for r in history):
        columns.append("ASR %")
    if any(r["malicious_selected"] is not None for r in history):
        columns.append("malicious kept %")
    for col in columns:
        table.add_column(col, justify="right")
    for r in history:
        row = [str(r["round"]), f"{100 * r['accuracy']:.1f}"]
        if "ASR %" in columns:
            row.append("—" if r["asr"] is None else f"{100 * r['asr']:.1f}")
        if "malicious kept %" in columns:
            share = r["malicious_selected"]
            row.append("—" if share is None else f"{100 * share:.0f}")
        table.add_row(*row)
    return table


# -- list --------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from poisonlab.attacks import ATTACKS
    from poisonlab.data import DATASETS
    from poisonlab.defenses import DEFENSES
    from poisonlab.federated import AGGREGATORS
    from poisonlab.federated.clients import CLIENT_ATTACKS
    from poisonlab.models import MODELS

    for title, registry in (
        ("datasets", DATASETS),
        ("models", MODELS),
        ("attacks", ATTACKS),
        ("defenses", DEFENSES),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("description")
        for entry in registry:
            table.add_row(entry.name, entry.description)
        console.print(table)
    for title, items in (
        ("federated aggregators", AGGREGATORS),
        ("federated client attacks", CLIENT_ATTACKS),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("description")
        for name, obj in items.items():
            table.add_row(name, _first_line(obj))
        console.print(table)
    return 0


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "description", None) or getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


if __name__ == "__main__":
    sys.exit(main())
