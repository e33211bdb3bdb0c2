"""``poisonlab stream``: online learning from poisoned sources, with and without the gate.

The gated run can record every batch in a provenance ledger
(:class:`~poisonlab.stream.recorder.LedgerRecorder`): each batch is added with its
source, and the samples the gate rejected are then quarantined with the gate's
reason, so they stay stored and accounted for instead of being dropped.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.table import Table

from poisonlab.atomic import write_atomically
from poisonlab.cli._common import (
    console,
    data_options,
    force_option,
    out_path,
    progress_bar,
)
from poisonlab.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress

    from poisonlab.data import Dataset
    from poisonlab.stream import BatchRecord, StreamResult

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
    stream.add_argument("--seed", type=int, default=0, help="seed of split, stream, learner")
    stream.add_argument("--test-size", type=float, default=0.25, help="held-out share (default 0.25)")
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
    stream.add_argument(
        "--report",
        metavar="FILE.html",
        help="write an HTML report: accuracy, ASR and admitted poisons over time",
    )
    force_option(stream)
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
    out = out_path(args.out, args.data, args.ledger, force=args.force, suffix=".json") if args.out else None
    html = None
    if args.report:
        inputs = (args.data, args.ledger, args.out)
        html = out_path(args.report, *inputs, force=args.force, suffix=".html", option="--report")
    data = load_dataset(
        args.data, label_col=args.label_col, id_col=args.id_col, source_col=args.source_col, task=args.task
    )
    train, test = train_test_split(data, test_size=args.test_size, random_state=args.seed)

    from poisonlab.stream import LedgerRecorder, simulate_stream  # scipy and the learners: input known good

    recorder = LedgerRecorder(args.ledger).check(train) if args.ledger is not None else None

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
    finally:
        bar.stop()
        if recorder is not None:
            recorder.close()  # batches recorded so far stay recorded
    summary = recorder.summary() if recorder is not None else None

    console.print(_timeline_table(results))
    console.print(_totals_table(results))
    if summary is not None:  # a path and verify's problems: data, never markup
        verdict = "ok" if summary.verified else f"FAILED: {summary.problems[0]}"
        console.print(
            f"ledger {args.ledger}: head version {summary.head_version} holds {summary.n_samples} "
            f"samples; {summary.n_quarantined} quarantined (kept stored); verify: {verdict}",
            highlight=False,
            markup=False,
        )
    if out is not None:
        payload = {
            "data": train.name,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "test_size": args.test_size,
            "runs": {arm: _run_json(result, train) for arm, result in results.items()},
            "ledger": summary.to_json() if summary is not None else None,
        }
        write_atomically(out, json.dumps(payload, indent=1) + "\n")
        console.print(f"records: {out}", markup=False)
    if html is not None:
        from poisonlab.experiments.run import versions
        from poisonlab.report import write_stream_report

        provenance = [("command", shlex.join(args.argv)), ("computed with", versions())]
        ledger = summary.to_json() if summary is not None else None
        write_stream_report(results, settings, html, ledger=ledger, provenance=provenance)
        console.print(f"HTML report: {html}", markup=False)
    return 0 if summary is None or summary.verified else 1


def _names(text: str, option: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not text.strip() and allow_empty:
        return ()
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ConfigError(f"{option} wants comma-separated names, got {text!r}")
    return names


def _n_batches(n_train: int, trusted: int, batch_size: int) -> int | None:
    if batch_size < 1 or not 0 < trusted < n_train:
        return None  # simulate_stream says what is wrong
    return -(-(n_train - trusted) // batch_size)


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
                self.progress = progress_bar(label="{task.description:8}", status=True)
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
