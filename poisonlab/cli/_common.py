"""Shared pieces of the command line: consoles, one-line errors, option parsing."""

from __future__ import annotations

import argparse
import sys
import tomllib
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
