"""``poisonlab fl``: one federated-learning run with malicious clients, round by round."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from poisonlab.cli._common import console, data_options, escape_controls, parse_params, progress_bar
from poisonlab.cli.report import written_report
from poisonlab.errors import ConfigError, RunFailed

if TYPE_CHECKING:
    from poisonlab.experiments.records import RunRecord


def _names(entries: Any) -> str:
    return ", ".join(e.name for e in entries)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    # The registries are light to import (no torch, no scipy); the options' names and help
    # come from them and their tags, so a new component shows up here by registering.
    from poisonlab.federated.aggregators import AGGREGATORS
    from poisonlab.federated.clients import CLIENT_ATTACKS
    from poisonlab.models import MODELS

    fl = sub.add_parser("fl", help="one federated-learning run with malicious clients, round by round")
    fl.add_argument("--data", default="digits", help="classification dataset: built-in name or file")
    # No argparse choices: a model the simulation cannot train (scikit-learn's logreg) gets
    # the registry's one line naming those it can.
    fl.add_argument(
        "--model",
        default="mlp",
        help=f"global model, one tagged federated: {_names(MODELS.where(federated=True))}",
    )
    fl.add_argument("--clients", type=int, default=20, help="number of clients (default 20)")
    fl.add_argument(
        "--malicious",
        default="0.2",
        help="share of malicious clients (a decimal such as 0.2 or 1.0), or a count (an integer such as 1)",
    )
    fl.add_argument(
        "--attack",
        default="sign_flip",
        choices=CLIENT_ATTACKS.names(),
        metavar="ATTACK",
        help=(
            f"malicious behaviour: poisoning data {_names(CLIENT_ATTACKS.where(poisons_data=True))}; "
            f"crafting updates {_names(CLIENT_ATTACKS.where(crafts_update=True))}; or none"
        ),
    )
    fl.add_argument(
        "--aggregator",
        default="fedavg",
        choices=AGGREGATORS.names(),
        metavar="RULE",
        help=(
            f"server's aggregation rule: {_names(AGGREGATORS)}; those taking f (default: the malicious "
            f"count) are {_names(AGGREGATORS.where(needs_f=True))}"
        ),
    )
    fl.add_argument("--rounds", type=int, default=20, help="communication rounds (default 20)")
    fl.add_argument("--fraction", type=float, default=1.0, help="share of clients sampled per round")
    fl.add_argument("--local-epochs", type=int, default=2, help="local SGD epochs per round (default 2)")
    fl.add_argument("--lr", type=float, default=0.2, help="local SGD learning rate (default 0.2)")
    fl.add_argument("--batch-size", type=int, default=16, help="local SGD batch size (default 16)")
    fl.add_argument("--alpha", type=float, help="Dirichlet label skew of the client split (default: IID)")
    fl.add_argument("--seed", type=int, default=0, help="seed of the split, clients and training (default 0)")
    fl.add_argument("--test-size", type=float, default=0.25, help="held-out share (default 0.25)")
    fl.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="attack parameter")
    fl.add_argument(
        "--agg-param", action="append", default=[], metavar="KEY=VALUE", help="aggregator parameter"
    )
    fl.add_argument("--out", help="output folder for the results store (default: runs/<time stamp>-fl)")
    fl.add_argument(
        "--resume", action="store_true", help="continue the simulation stored in --out instead of refusing it"
    )
    data_options(fl)

    fl.set_defaults(func=cmd_fl)


# -- fl ----------------------------------------------------------------------
def cmd_fl(args: argparse.Namespace) -> int:
    from poisonlab.experiments import parse_config, run_grid

    columns = {key: getattr(args, key) for key in ("label_col", "id_col", "source_col", "task")}
    columns = {key: value for key, value in columns.items() if value is not None}
    raw: dict[str, Any] = {
        "scenario": "federated",
        "datasets": [{"path": args.data, **columns} if columns else args.data],
        "models": [args.model],
        "attacks": [{"name": args.attack, **parse_params(args.param)}],
        "aggregators": [{"name": args.aggregator, **parse_params(args.agg_param, "--agg-param")}],
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
    progress = progress_bar(status=True)
    task = progress.add_task("rounds", total=args.rounds, status="")

    def on_round(record: dict[str, Any]) -> None:
        # Shown from the first round, so that an --out run_grid refuses prints one line only.
        if not history:
            progress.start()
        history.append(record)
        status = f"acc {100 * record['accuracy']:.1f}%"
        if record["asr"] is not None:
            status += f"  ASR {100 * record['asr']:.1f}%"
        progress.update(task, advance=1, status=status)

    try:
        outcome = run_grid(experiment, out, resume=args.resume, on_progress=on_round, command=args.argv)
    finally:
        if progress.live.is_started:
            progress.stop()
    record = outcome.records[0]
    if record.status != "ok":
        _report_failure(record)
    console.print(
        _rounds_table(history or list(getattr(record, "rounds", ())), args)
    )  # resumed: stored rounds
    console.print(
        f"{args.aggregator} vs {args.attack}: {record['n_malicious']} of {args.clients} clients malicious, "
        f"final accuracy {100 * record['clean_acc']:.1f}%"
        + ("" if record["asr"] is None else f", ASR {100 * record['asr']:.1f}%"),
        highlight=False,
    )
    if record["diverged_round"] is not None:
        console.print(
            f"the global model diverged in round {record['diverged_round']} (its updates were no longer "
            "finite); the run stopped there",
            highlight=False,
        )
    console.print(f"results: {out / 'summary.json'}, {out / 'results.csv'}, {out / 'results.sqlite'}")
    console.print(written_report(out), markup=False, highlight=False)
    return 0


def _report_failure(record: RunRecord) -> None:
    """Say why the run failed, decided by the failure's recorded kind, never its text.

    A user mistake (:class:`~poisonlab.errors.PoisonlabError` in the run) reaches
    ``main`` as one line; a bug prints the run's traceback and exits 1.
    """
    if record.failure == "user":
        raise RunFailed(record.error or "the run failed")
    sys.stderr.write(escape_controls(record.traceback or f"{record.error}\n"))
    raise SystemExit(1)


def _malicious(text: str) -> float | int:
    """An integer is a count of clients and a decimal a share, as in the run config."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"--malicious must be a share in [0, 1] or a count of clients, got {text!r}"
        ) from None
    if value > 1 and value.is_integer():
        return int(value)  # 3.0: a count of clients
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
