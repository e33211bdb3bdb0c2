"""Shared pieces of the command line: consoles, one-line errors, option parsing."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.segment import Segment

from poisonlab.errors import ConfigError

#: Characters that can rewrite what a terminal shows: C0 controls but newline and tab,
#: DEL, C1 controls, and the bidirectional marks, embeddings, overrides and isolates.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every character that could drive a terminal written as a visible escape."""
    return _HIDDEN.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


class SafeConsole(Console):
    """A rich console that escapes control characters in everything it prints.

    The one place text from data (ids, sources, notes, file names, column names) meets
    the terminal: each segment's text is escaped after rendering, before rich adds its
    own styling codes, so no escape sequence, cursor movement or right-to-left override
    from a file can reach the screen, whichever command printed it. Stored values are
    never changed.
    """

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(escape_controls(segment.text), segment.style)
            for segment in buffer
        )


console = SafeConsole()
err_console = SafeConsole(stderr=True)
if not console.is_terminal:  # a pipe or file: don't squeeze tables into 80 columns
    console.width = max(console.width, 120)


def progress_bar(*, label: str = "{task.description}", status: bool = False) -> Progress:
    """The one progress bar on stderr: label, bar, count, (status,) elapsed time and ETA."""
    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if status:  # a per-task field each command fills (accuracy, ASR, ...)
        columns.append(TextColumn("{task.fields[status]}"))
    columns += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*columns, console=err_console)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        error(f"{message} (see {self.prog} --help)")
        sys.exit(2)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of ``choices``, with the nearest choice suggested for a typo."""
        import difflib

        choices = action.choices
        if choices is None or value in choices:
            return
        listed = ", ".join(repr(c) for c in choices)
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {listed}){hint}")


def error(message: str) -> None:
    """One plain line on stderr: never wrapped, so scripts and CI logs can grep it."""
    sys.stderr.write(f"poisonlab: error: {escape_controls(' '.join(message.split()))}\n")


def data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label-col", help="label column of a CSV/Parquet file")
    parser.add_argument("--id-col", help="id column of a CSV/Parquet file")
    parser.add_argument("--source-col", help="source column of a CSV/Parquet file")
    parser.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="what the label column holds (default: classification, or what an .npz records)",
    )


def parse_params(items: list[str], option: str = "--param") -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} wants KEY=VALUE, got {item!r}")
        if key.strip() == "name":
            raise ConfigError(f"{option} cannot set 'name'")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare word is a string
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise ConfigError(f"{option} {key.strip()}={value}: a parameter must be a finite number")
        params[key.strip()] = parsed
    return params


def out_path(
    text: str,
    *inputs: str | None,
    force: bool = False,
    suffix: str | None = None,
    option: str = "--out",
) -> Path:
    """An output file, checked before any work: the one rule every command that writes follows.

    Refused with one line: a folder, a path under a missing folder (or under a file), a
    file of the wrong ``suffix``, a path that *is* one of the command's ``inputs`` (a
    file, or a path inside an input folder such as a ledger), and an existing file
    unless ``force``: poisonlab never replaces a file without being told to. The file
    is then written by :func:`write_atomically` (a temporary file beside it, renamed
    into place), so a failure leaves the old file or none, never half of one.
    """
    out = Path(text)
    if out.is_dir():
        raise ConfigError(
            f"{option} {text} is a folder; name the file to write, e.g. {out / ('out' + (suffix or '.json'))}"
        )
    if suffix is not None and out.suffix.lower() != suffix:
        raise ConfigError(f"{option} must name a {suffix} file, got {text}")
    if not out.parent.is_dir():
        what = "is a file, not a folder" if out.parent.exists() else "does not exist"
        raise ConfigError(f"{option} {text}: {out.parent} {what}")
    target = out.resolve()
    for given in inputs:
        if given is None or not Path(given).exists():
            continue
        source = Path(given).resolve()
        if target == source:
            raise ConfigError(f"{option} {text} is the command's own input; name another file")
        if source.is_dir() and source in target.parents:
            raise ConfigError(f"{option} {text} is inside the command's own input {given}; name another file")
        if out.exists() and source.is_file() and os.path.samefile(out, source):
            raise ConfigError(
                f"{option} {text} is the command's own input {given} (a link to it); name another file"
            )
    if out.exists() and not force:
        raise ConfigError(f"{option} {text} exists; poisonlab replaces a file only with --force")
    return out


def force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
