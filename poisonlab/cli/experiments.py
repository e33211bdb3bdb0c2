"""``poisonlab run``, ``attack`` and ``list``: experiment grids, poisoned copies, the registries."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from poisonlab.cli._common import console, data_options, err_console, error, parse_params
from poisonlab.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="run an experiment grid (built-in quick benchmark without CONFIG)")
    run.add_argument("config", nargs="?", help="TOML experiment config")
    run.add_argument("--out", help="output folder (default: runs/<time stamp>)")
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes")
    run.add_argument("--resume", action="store_true", help="skip runs already finished in --out")

    run.set_defaults(func=cmd_run)

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
    data_options(attack)

    attack.set_defaults(func=cmd_attack)

    listing = sub.add_parser(
        "list", help="list registered datasets, models, attacks, detectors, defenses and federated rules"
    )
    listing.set_defaults(func=cmd_list)


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
        error(f"{outcome.n_failed} run(s) failed; see 'error' in {out / 'summary.json'}")
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
    attack = ATTACKS.create(args.name, **parse_params(args.param))
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
    """A rule's or a client attack's one-line description, from its docstring."""
    fn = (getattr(obj, "craft", None) or getattr(obj, "poison_data", None)) if hasattr(obj, "craft") else obj
    doc = (fn.__doc__ or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else ""
