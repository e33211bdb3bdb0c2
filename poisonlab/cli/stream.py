"""``poisonlab stream``: online learning from poisoned sources, with and without the gate.

The gated run can record every batch in a provenance ledger: each batch is added with
its source, and the samples the gate rejected are then quarantined with the gate's
reason, so they stay stored and accounted for instead of being dropped.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from poisonlab.cli._common import console, data_options, err_console
from poisonlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from poisonlab.data import Dataset
    from poisonlab.provenance import Ledger
    from poisonlab.stream import BatchRecord, GateEvent, StreamResult

ACTOR = "poisonlab-stream"
_ARMS = {"both": ("gated", "ungated"), "on": ("gated",), "off": ("ungated",)}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stream = sub.add_parser(
        "stream", help="online learning from a poisoned stream of batches, with and without the gate"
    )
    stream.add_argument("--data", default="digits", help="classification dataset: built-in name or file")
    stream.add_argument("--learner", default="sgd", help="sgd, mlp_sk, mlp or cnn (default sgd)")
    stream.add_argument(
        "--attack", default="badnets", help="badnets, blended or feature_trigger (default badnets)"
    )
    stream.add_argument(
        "--poison-share", type=float, default=0.1, help="poisoned share of the whole stream (default 0.1)"
    )
    stream.add_argument(
        "--sources", default="vendor-a,vendor-b,crowd", help="comma-separated source names, round-robin"
    )
    stream.add_argument(
        "--poisoned", default="crowd", help="comma-separated sources that send poisons (default crowd)"
    )
    stream.add_argument("--batch-size", type=int, default=50, help="samples per batch (default 50)")
    stream.add_argument("--trusted", type=int, default=200, help="size of the clean seed set (default 200)")
    stream.add_argument("--target", type=int, default=0, help="the backdoor's target label (default 0)")
    stream.add_argument(
        "--epochs-per-batch", type=int, default=5, help="passes over each admitted batch (default 5)"
    )
    stream.add_argument("--eval-every", type=int, default=5, help="evaluate every N batches (default 5)")
    stream.add_argument("--seed", type=int, default=0)
    stream.add_argument("--test-size", type=float, default=0.25)
    stream.add_argument(
        "--gate",
        choices=tuple(_ARMS),
        default="both",
        help="run with the gate, without it, or both side by side (default both)",
    )
    stream.add_argument(
        "--ledger",
        metavar="DIR",
        help="record every batch of the gated run in this provenance ledger (created if missing or empty)",
    )
    stream.add_argument("--out", metavar="FILE.json", help="write each run's records and totals as JSON")
    data_options(stream)

    stream.set_defaults(func=cmd_stream)


# -- stream ------------------------------------------------------------------
def cmd_stream(args: argparse.Namespace) -> int:
    from poisonlab.data import load_dataset, train_test_split

    # Every check that can fail comes before the first write: the ledger is created at
    # the first batch, after simulate_stream validated its arguments, and --out at the end.
    sources = _names(args.sources, "--sources")
    poisoned = _names(args.poisoned, "--poisoned", allow_empty=True)
    arms = _ARMS[args.gate]
    if args.ledger is not None and "gated" not in arms:
        raise ConfigError("--ledger records the gated run; it cannot go with --gate off")
    out = _out_path(args.out)
    data = load_dataset(
        args.data, label_col=args.label_col, id_col=args.id_col, source_col=args.source_col, task=args.task
    )
    train, test = train_test_split(data, test_size=args.test_size, random_state=args.seed)
    ledger_path = Path(args.ledger) if args.ledger is not None else None
    ledger_exists = _check_ledger(ledger_path, train) if ledger_path is not None else False

    from poisonlab.stream import simulate_stream  # scipy and the learners: once the input is known good

    settings: dict[str, Any] = {
        "learner": args.learner,
        "batch_size": args.batch_size,
        "sources": sources,
        "poisoned_sources": poisoned,
        "poison_share": args.poison_share,
        "attack": args.attack,
        "target": args.target,
        "trusted": args.trusted,
        "epochs_per_batch": args.epochs_per_batch,
        "eval_every": args.eval_every,
        "seed": args.seed,
    }
    n_batches = _n_batches(len(train), args.trusted, args.batch_size)
    results: dict[str, StreamResult] = {}
    recorder = _Recorder(ledger_path, ledger_exists) if ledger_path is not None else None
    bar = _Bar(arms, n_batches)
    try:
        for arm in arms:  # gated first: a bad option fails before anything is written
            results[arm] = simulate_stream(
                train,
                test,
                gate=arm == "gated",
                on_batch=bar.callback(arm),
                on_gate=recorder if arm == "gated" else None,
                **settings,
            )
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise ConfigError(f"the ledger {ledger_path} is locked by another writer; try again") from exc
        raise
    finally:
        bar.stop()
        if recorder is not None:
            recorder.close()  # batches recorded so far stay recorded
    ledger_summary = recorder.summary() if recorder is not None else None

    console.print(_timeline_table(results))
    console.print(_totals_table(results))
    if ledger_summary is not None:
        verdict = "ok" if ledger_summary["verified"] else f"FAILED: {ledger_summary['problems'][0]}"
        console.print(
            f"ledger {ledger_path}: head version {ledger_summary['head_version']} holds "
            f"{ledger_summary['n_samples']} samples; {ledger_summary['n_quarantined']} quarantined "
            f"(kept stored); verify: {verdict}",
            highlight=False,
        )
    if out is not None:
        payload = {
            "data": train.name,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "test_size": args.test_size,
            "runs": {arm: _run_json(result, train) for arm, result in results.items()},
            "ledger": ledger_summary,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1) + "\n")
        console.print(f"records: {out}")
    return 0 if ledger_summary is None or ledger_summary["verified"] else 1


def _names(text: str, option: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not text.strip() and allow_empty:
        return ()
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ConfigError(f"{option} wants comma-separated names, got {text!r}")
    return names


def _out_path(text: str | None) -> Path | None:
    if text is None:
        return None
    out = Path(text)
    if out.suffix.lower() != ".json":
        raise ConfigError(f"--out must name a .json file, got {text}")
    if out.is_dir():
        raise ConfigError(f"--out {text} is a folder")
    return out


def _n_batches(n_train: int, trusted: int, batch_size: int) -> int | None:
    if batch_size < 1 or not 0 < trusted < n_train:
        return None  # simulate_stream says what is wrong
    return -(-(n_train - trusted) // batch_size)


def _check_ledger(path: Path, train: Dataset) -> bool:
    """Fail now if the stream cannot be recorded in ``path``; ``True`` if it is a ledger to open."""
    from poisonlab.provenance import Ledger
    from poisonlab.provenance.chain import describe_schema, schema_of
    from poisonlab.provenance.ledger import DB_NAME

    if path.exists() and not path.is_dir():
        raise ConfigError(f"--ledger {path} exists and is not a folder")
    if not path.exists() or not any(path.iterdir()):
        return False
    if not (path / DB_NAME).is_file():
        raise ConfigError(f"--ledger {path} is a folder that is not empty and is not a poisonlab ledger")
    with Ledger.open(path) as ledger:
        versions = ledger.versions()
        if not versions:
            return True
        head = versions[-1]
        schema = schema_of(train.X[:1], train.original_labels(train.y[:1]), train.ids[:1])
        if head.schema != schema:
            raise DataError(
                f"--ledger {path}: the stream's samples ({describe_schema(schema)}) do not match "
                f"the ledger's schema ({describe_schema(head.schema)})"
            )
        # The ledger refuses ids already in its head; a quarantined id coming back is as suspect.
        recorded = set(ledger.membership(head).ids.tolist()) | {q.id for q in ledger.quarantined()}
        clash = next((i for i in train.ids.tolist() if i in recorded), None)
        if clash is not None:
            raise DataError(
                f"--ledger {path} already records sample id {clash!r} of {train.name}; "
                "record this stream in a new ledger"
            )
    return True


class _Recorder:
    """``on_gate`` hook: add each batch to the ledger, then quarantine what the gate rejected."""

    def __init__(self, path: Path, exists: bool) -> None:
        self.path = path
        self.exists = exists
        self.ledger: Ledger | None = None

    def __call__(self, event: GateEvent) -> None:
        from poisonlab.provenance import Ledger

        if self.ledger is None:  # created at the first batch: every option has been checked
            self.ledger = Ledger.open(self.path) if self.exists else Ledger.init(self.path)
        self.ledger.add(
            event.X, event.y, event.ids, source=event.source, actor=ACTOR, note=f"stream step {event.step}"
        )
        if event.rejected.any():
            reason = {"gate": "StreamGate", "step": event.step, "reason": event.reason}
            self.ledger.quarantine(event.ids[event.rejected], reason=reason, actor=ACTOR)

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()

    def summary(self) -> dict[str, Any] | None:
        """The ledger's head, quarantine count and integrity (``None`` if nothing was recorded)."""
        if self.ledger is None:
            return None
        from poisonlab.provenance import Ledger

        with Ledger.open(self.path) as ledger:
            head = ledger.head()
            report = ledger.verify()
            return {
                "path": str(self.path),
                "head_version": head.number,
                "n_samples": head.n,
                "n_quarantined": len(ledger.quarantined()),
                "verified": report.ok,
                "problems": list(report.problems),
            }


class _Bar:
    """One progress bar per run, shown from the first streamed batch (so a bad option prints one line)."""

    def __init__(self, arms: tuple[str, ...], n_batches: int | None) -> None:
        self.arms = arms
        self.n_batches = n_batches
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.status: dict[str, str] = {}

    def callback(self, arm: str) -> Any:
        def on_batch(record: BatchRecord) -> None:
            if self.progress is None:
                self.progress = Progress(
                    TextColumn("{task.description:8}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(),
                    console=err_console,
                )
                self.progress.start()
            if arm not in self.tasks:
                self.tasks[arm] = self.progress.add_task(arm, total=self.n_batches, status="")
            if record.accuracy is not None and record.asr is not None:
                self.status[arm] = f"acc {100 * record.accuracy:.1f}%  ASR {100 * record.asr:.1f}%"
            self.progress.update(self.tasks[arm], advance=1, status=self.status.get(arm, ""))

        return on_batch

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _timeline_table(results: dict[str, StreamResult]) -> Table:
    table = Table(title="accuracy / ASR over time")
    table.add_column("step", justify="right")
    for arm in results:
        table.add_column(f"{arm} acc %", justify="right")
        table.add_column(f"{arm} ASR %", justify="right")
    runs = list(results.values())
    for i, record in enumerate(runs[0].records):
        if record.accuracy is None:
            continue
        row = [str(record.step)]
        for result in runs:
            row += [_pct(result.records[i].accuracy), _pct(result.records[i].asr)]
        table.add_row(*row)
    return table


def _totals(result: StreamResult) -> dict[str, Any]:
    return {
        "accuracy": result.accuracy,
        "asr": result.asr,
        "n_stream": result.n_stream,
        "n_poison": result.n_poison,
        "n_poison_admitted": result.n_poison_admitted,
        "n_poison_rejected": result.n_poison_rejected,
        "n_clean_admitted": result.n_clean_admitted,
        "n_clean_rejected": result.n_clean_rejected,
        "n_batches": len(result.records),
        "n_batches_rejected": sum(r.batch_rejected for r in result.records),
    }


def _totals_table(results: dict[str, StreamResult]) -> Table:
    table = Table(title="totals")
    table.add_column("")
    for arm in results:
        table.add_column(arm, justify="right")
    totals = [_totals(result) for result in results.values()]
    rows = [
        ("final accuracy %", lambda t: _pct(t["accuracy"])),
        ("final ASR %", lambda t: _pct(t["asr"])),
        ("poisoned admitted", lambda t: f"{t['n_poison_admitted']} / {t['n_poison']}"),
        ("clean admitted", lambda t: str(t["n_clean_admitted"])),
        ("clean rejected", lambda t: str(t["n_clean_rejected"])),
        ("batches rejected whole", lambda t: f"{t['n_batches_rejected']} / {t['n_batches']}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(t) for t in totals))
    return table


def _run_json(result: StreamResult, train: Dataset) -> dict[str, Any]:
    return {
        "totals": _totals(result),
        "records": [asdict(record) for record in result.records],
        "quarantined_ids": train.ids[result.quarantined].tolist(),
        "poison_ids": train.ids[result.poison_index].tolist(),
    }
