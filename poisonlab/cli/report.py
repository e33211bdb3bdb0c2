"""``poisonlab report``: one self-contained HTML file of figures for a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from poisonlab.cli._common import console, force_option, out_path
from poisonlab.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = sub.add_parser(
        "report", help="write an HTML report (figures, results, provenance) of a run or fl results folder"
    )
    report.add_argument(
        "run_dir", metavar="RUN_DIR", help="results folder written by `poisonlab run` or `fl`"
    )
    report.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html, replaced if there)")
    force_option(report)
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from poisonlab.report import REPORT_NAME, write_run_report

    run_dir = Path(args.run_dir)
    if not run_dir.exists():
        raise ConfigError(f"{run_dir}: no such folder")
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file; give the results folder `poisonlab run` wrote")
    # the default file is the folder's own report, rewritten each time; another file is the user's
    out = out_path(args.out, args.run_dir, force=args.force, suffix=".html") if args.out else None
    written = write_run_report(run_dir, out if out is not None else run_dir / REPORT_NAME)
    console.print(f"report: {written}", markup=False, highlight=False)
    return 0


def written_report(run_dir: Path) -> str:
    """The report of a folder a command just filled, as a line to print; a failure is named, not raised.

    The report comes after the results are stored: a plotting failure must not turn a
    finished grid into an error, so it is reported beside the results instead.
    """
    from poisonlab.errors import PoisonlabError
    from poisonlab.report import write_run_report

    try:
        return f"report: {write_run_report(run_dir)}"
    except (PoisonlabError, OSError, ImportError) as exc:
        return f"report: not written ({exc}); the results are stored, retry with `poisonlab report {run_dir}`"
