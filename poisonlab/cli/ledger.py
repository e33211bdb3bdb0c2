"""``poisonlab ledger …``: the provenance ledger from the command line.

Every subcommand but ``init`` and ``keygen`` works on the ledger named by
``--ledger DIR`` (default: ``$POISONLAB_LEDGER``, else the current folder). The
library decides every error: a ledger another process is writing raises
:class:`~poisonlab.errors.LedgerBusy` (exit 75: try again), a damaged one
:class:`~poisonlab.errors.IntegrityError` (exit 1, as ``verify`` exits for one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from poisonlab.atomic import write_atomically
from poisonlab.cli._common import console, error, force_option, out_path, parse_params
from poisonlab.errors import ConfigError, IntegrityError

Command = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ledger = sub.add_parser("ledger", help="tamper-evident provenance ledger of the training data")
    cmds = ledger.add_subparsers(dest="ledger_command", required=True, parser_class=type(ledger))

    def add(name: str, fn: Command, help: str, *, needs_ledger: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = cmds.add_parser(name, help=help)
        if needs_ledger:
            parser.add_argument(
                "--ledger",
                default=os.environ.get("POISONLAB_LEDGER", "."),
                metavar="DIR",
                help="ledger folder (default: $POISONLAB_LEDGER, else the current folder)",
            )
        parser.set_defaults(func=fn)
        return parser

    p = add("init", cmd_init, "create an empty ledger in DIR", needs_ledger=False)
    p.add_argument("dir", help="ledger folder (created if missing)")

    p = add(
        "keygen",
        cmd_keygen,
        "write an Ed25519 signing key (KEY) and its public key (KEY.pub)",
        needs_ledger=False,
    )
    p.add_argument("key", help="path of the private key file to create")

    p = add("add", cmd_add, "record a batch of samples from a source as a new version")
    p.add_argument(
        "data",
        help=".npz (kept bit-exact, streamed: any size), .csv/.parquet file, image folder or built-in name",
    )
    p.add_argument("--source", required=True, help="where the batch came from (vendor, worker pool, device)")
    p.add_argument("--sign", metavar="KEY", help="sign the batch with this Ed25519 private key")
    p.add_argument("--note", help="free text kept in the event")
    p.add_argument("--label-col", help="label column of a CSV/Parquet file")
    p.add_argument("--id-col", help="id column of a CSV/Parquet file")
    p.add_argument("--task", choices=("classification", "regression"), help="what the labels hold")

    p = add("log", cmd_log, "the event chain, oldest first")
    p.add_argument("--json", action="store_true", help="print the events as JSON")

    p = add("show", cmd_show, "one version: root, size, sources, the event that made it")
    p.add_argument("version", nargs="?", default="head", help="version number or 'head' (default)")

    p = add("diff", cmd_diff, "samples added, removed, relabelled and modified between two versions, by id")
    p.add_argument("v1", help="the earlier version: a number or 'head'")
    p.add_argument("v2", help="the later version: a number or 'head'")
    p.add_argument("--json", action="store_true", help="print every id as JSON")
    p.add_argument("--limit", type=int, default=10, help="ids shown per category (default 10)")

    add("verify", cmd_verify, "recompute every hash, link, signature and root; exit 1 on the first bad one")

    p = add("quarantine", cmd_quarantine, "a new version without the samples a scan report flagged")
    p.add_argument("--scan", required=True, metavar="REPORT.json", help="report of `poisonlab scan --out`")

    p = add("rollback", cmd_rollback, "a new version with exactly the samples of VERSION")
    p.add_argument("version", help="the version whose samples to restore")

    p = add("export", cmd_export, "write a version as .npz (X, y, ids, source)")
    p.add_argument("version", help="version number or 'head'")
    p.add_argument("--out", required=True, metavar="DATA.npz", help="the .npz to write (X, y, ids, source)")
    force_option(p)

    p = add("attest", cmd_attest, "an in-toto statement for a version (subject: its Merkle root)")
    p.add_argument("version", nargs="?", default="head", help="version number or 'head' (default)")
    p.add_argument("--out", metavar="FILE.json", help="write it to a file instead of printing it")
    force_option(p)

    p = add("transform", cmd_transform, "apply a recorded transform (see poisonlab list) to the head")
    p.add_argument("name", help="a ledger transform: normalise or deduplicate")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="transform parameter")


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[Any]:
    from poisonlab.provenance import Ledger

    with Ledger.open(args.ledger) as ledger:
        yield ledger


def _say(*objects: Any, **kwargs: Any) -> None:
    """Print text holding ledger or user data (sources, actors, ids, paths) literally, not as rich markup.

    A source named ``evil[/bold]`` would otherwise crash every later ``show`` and
    ``log``, and one named ``[conceal]…`` could hide what ``verify`` reports.
    """
    console.print(*objects, markup=False, **kwargs)


def _short(digest: str | None) -> str:
    return "—" if not digest else digest[:16]


# -- writing -----------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from poisonlab.provenance import Ledger

    Ledger.init(args.dir).close()
    _say(f"initialised an empty poisonlab ledger in {args.dir}", highlight=False, soft_wrap=True)
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from poisonlab.provenance import generate_key
    from poisonlab.provenance.signing import public_key_hex

    path = Path(args.key)
    if path.exists() or Path(f"{path}.pub").exists():
        raise ConfigError(f"{path} or {path}.pub already exists; not overwriting a key")
    try:
        key = generate_key(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the key ({exc.strerror})") from None
    _say(f"private key: {path} (keep it secret)\npublic key:  {path}.pub {public_key_hex(key)}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from poisonlab.provenance.io import open_batch
    from poisonlab.provenance.signing import load_private_key

    with _open(args) as ledger:  # a folder that is not a ledger fails before the data are read
        key = load_private_key(args.sign) if args.sign else None
        with open_batch(args.data, label_col=args.label_col, id_col=args.id_col, task=args.task) as batch:
            version = ledger.add_batch(batch, source=args.source, sign_key=key, note=args.note)
            added = batch.n
    signed = " (signed)" if key is not None else ""
    _say(
        f"version {version.number}: +{added} samples from {args.source}{signed}; "
        f"{version.n} in all, root {version.root}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from poisonlab.provenance.scans import ScanReport

    report = ScanReport.read(args.scan)
    with _open(args) as ledger:
        head = ledger.match_scan(report, "head")
        if not report.flagged_ids:
            _say(f"the scan flagged nothing; version {head.number} stays the head")
            return 0
        reason = report.reason()
        before = head.n
        version = ledger.quarantine(list(report.flagged_ids), reason=reason)
    _say(  # what left the version, not how many ids the report listed (it may repeat one)
        f"version {version.number}: quarantined {before - version.n} samples flagged by "
        f"{reason['detector'] or 'a scan'}; {version.n} remain, root {version.root}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        target = ledger.version(args.version)
        version = ledger.rollback(target)
    _say(
        f"version {version.number}: the {version.n} samples of version {target.number}, root {version.root}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    from poisonlab.provenance.transforms import TRANSFORMS, apply_transform

    params = parse_params(args.param)
    TRANSFORMS.create(args.name, **params)  # a bad name or parameter fails before the ledger is read
    with _open(args) as ledger:
        version = apply_transform(ledger, args.name, params)
    _say(
        f"version {version.number}: {args.name} applied ({version.n} samples), root {version.root}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


# -- reading -----------------------------------------------------------------
def cmd_log(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        events = ledger.log()
    if args.json:
        console.print_json(json.dumps([asdict(e) for e in events]))
        return 0
    table = Table(title=Text(f"ledger {args.ledger}: {len(events)} events"))
    for col in ("seq", "time", "actor", "kind", "version", "samples", "detail", "hash"):
        table.add_column(col, justify="right" if col in ("seq", "version", "samples") else "left")
    for e in events:
        p = e.payload
        cells = (
            str(e.seq), e.time, e.actor, e.kind, str(p.get("version", "")), str(p.get("n", "")),
            _detail(e.kind, p), _short(e.hash),
        )  # fmt: skip
        table.add_row(*(Text(str(cell)) for cell in cells))
    console.print(table)  # its cells are Text: never markup
    return 0


def _detail(kind: str, payload: dict[str, Any]) -> str:
    batch = payload.get("batch") or {}
    if kind == "add":
        signed = ", signed" if batch.get("signature") else ""
        return f"+{batch.get('n')} from {batch.get('source')}{signed}"
    if kind == "quarantine":
        reason = payload.get("reason", {})
        why = reason.get("detector") or reason.get("gate") or "reason recorded"
        return f"-{len(payload.get('ids', []))} ({why})"
    if kind == "rollback":
        return f"to version {payload.get('target')}"
    if kind == "transform":
        return f"{payload.get('name')} {json.dumps(payload.get('params', {}), sort_keys=True)}"
    return ""


def cmd_show(args: argparse.Namespace) -> int:
    import numpy as np

    with _open(args) as ledger:
        version = ledger.version(args.version)
        members = ledger.membership(version)
        event = next((e for e in ledger.log() if e.seq == version.event_seq), None)
    if event is None:
        raise IntegrityError(
            f"version {version.number}: its event {version.event_seq} is missing (run verify)"
        )
    names, counts = np.unique(members.source_names(), return_counts=True)
    _say(f"version {version.number}" + (f" (parent {version.parent})" if version.parent else ""))
    _say(f"  merkle root  {version.root}", highlight=False, soft_wrap=True)
    _say(f"  samples      {version.n}")
    _say(f"  schema       {version.schema}", highlight=False, soft_wrap=True)
    _say(f"  made by      event {event.seq}: {event.kind} by {event.actor} at {event.time}")
    _say(f"               {_detail(event.kind, event.payload)}", highlight=False, soft_wrap=True)
    for name, count in zip(names.tolist(), counts.tolist(), strict=True):
        _say(f"  source       {name}: {count}", highlight=False, soft_wrap=True)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {args.limit}")
    with _open(args) as ledger:
        v1, v2 = ledger.version(args.v1), ledger.version(args.v2)
        diff = ledger.diff(v1, v2)
    categories = {"added": diff.added, "removed": diff.removed, "relabelled": diff.relabelled}
    categories["modified"] = diff.modified
    if args.json:
        console.print_json(json.dumps({"from": v1.number, "to": v2.number, **categories}))
        return 0
    _say(f"version {v1.number} → {v2.number}")
    for name, ids in categories.items():
        shown = ", ".join(str(i) for i in ids[: args.limit]) + (" …" if len(ids) > args.limit else "")
        _say(f"  {name:<10} {len(ids):>7}  {shown}", highlight=False, soft_wrap=True)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        report = ledger.verify()
        if report.ok:
            n_events, n_versions = len(ledger.log()), len(ledger.versions())
            head = ledger.head() if n_versions else None
    for note in report.notes:
        _say(f"note: {note}", highlight=False, soft_wrap=True)
    if not report.ok:
        for problem in report.problems:
            _say(f"problem: {problem}", highlight=False, soft_wrap=True)
        more = f" ({len(report.problems)} problems in all)" if len(report.problems) > 1 else ""
        error(f"ledger {args.ledger} failed verification: {report.first_problem}{more}")
        return 1
    tip = f"; head version {head.number}, root {head.root}" if head else ""
    _say(
        f"ledger {args.ledger} intact: {n_events} events, {n_versions} versions{tip}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = out_path(args.out, args.ledger, force=args.force, suffix=".npz")
    with _open(args) as ledger:
        version = ledger.version(args.version)
        write_atomically(out, lambda path: ledger.export(version, path))
    _say(f"version {version.number} ({version.n} samples, root {_short(version.root)}…) → {out}")
    return 0


def cmd_attest(args: argparse.Namespace) -> int:
    out = out_path(args.out, args.ledger, force=args.force) if args.out else None
    with _open(args) as ledger:
        ledger.version(args.version)  # an unknown version fails before the (longer) verify
        report = ledger.verify()
        if not report.ok:  # never vouch for a ledger that does not hold together
            raise IntegrityError(f"not attesting: the ledger fails verification: {report.first_problem}")
        statement = ledger.attestation(args.version)
    text = json.dumps(statement, indent=2, sort_keys=True)
    if out is not None:
        write_atomically(out, text + "\n")
        _say(f"attestation → {args.out}")
    else:
        print(text)
    return 0
