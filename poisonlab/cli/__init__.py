"""The ``poisonlab`` command line: parses, calls the library, formats output. Nothing else.

One module per group of commands; each adds its subcommands in ``register`` and names
the function that runs them. ``main`` turns a :class:`~poisonlab.errors.PoisonlabError`
into one line on stderr and the exit status its type maps to
(:data:`poisonlab.errors.EXIT_CODES`: 75 when a ledger is busy, 1 when it is damaged, 2 otherwise); the
text of an exception is never read to decide. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from poisonlab.cli import certify, experiments, federated, ledger, report, scan, stream
from poisonlab.cli._common import Parser, error
from poisonlab.errors import PoisonlabError, exit_code

__all__ = ["build_parser", "main"]

_GROUPS = (experiments, scan, certify, federated, ledger, stream, report)


def build_parser() -> argparse.ArgumentParser:
    from poisonlab import __version__

    parser = Parser(prog="poisonlab", description="Red-team and defend ML training data against poisoning.")
    parser.add_argument("--version", action="version", version=f"poisonlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = ["poisonlab", *argv]  # the command as typed, for the provenance of what it writes
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends a command the way Ctrl-C does: workers stopped, finished work kept
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except PoisonlabError as exc:
        error(str(exc))
        return exit_code(exc)
    except KeyboardInterrupt:
        error("interrupted; finished work is kept (results store, ledger)")
        return 130
    except BrokenPipeError:
        # the reader went away (`poisonlab ledger attest | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
