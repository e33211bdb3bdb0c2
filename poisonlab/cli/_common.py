"""Shared pieces of the command line: consoles, one-line errors, option parsing."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from poisonlab.errors import ConfigError

console = Console()
err_console = Console(stderr=True)
if not console.is_terminal:  # a pipe or file: don't squeeze tables into 80 columns
    console.width = max(console.width, 120)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        error(f"{message} (see {self.prog} --help)")
        sys.exit(2)


def error(message: str) -> None:
    """One plain line on stderr: never wrapped, so scripts and CI logs can grep it."""
    sys.stderr.write(f"poisonlab: error: {' '.join(message.split())}\n")


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
            params[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = value  # a bare word is a string
    return params


def out_path(text: str, data: str | None, features: str | None) -> Path:
    """``--out``, refused before any work when it cannot be written or would replace an input."""
    out = Path(text)
    if out.is_dir():
        raise ConfigError(f"--out {text} is a folder; name the report file, e.g. {out / 'report.json'}")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {text}: the folder {out.parent} does not exist")
    for given in (data, features):
        if given is not None and Path(given).exists() and out.resolve() == Path(given).resolve():
            raise ConfigError(f"--out {text} is the command's own input; name another file")
    return out


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: a failure leaves no half report."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
