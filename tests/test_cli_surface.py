"""The command line explains itself (issue 16): --version, "did you mean", flags that exist."""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import poisonlab
from poisonlab.cli import build_parser, main

PACKAGE = Path(poisonlab.__file__).parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_version_prints_the_package_version(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"poisonlab {poisonlab.__version__}"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["scan", "wine", "--detector", "spectrl"], "unknown detector 'spectrl'; known: "),
        (["attack", "badnet", "digits", "--rate", "0.1", "--out", "x.npz"], "unknown attack 'badnet'"),
        (["fl", "--aggregator", "krumm"], "invalid choice: 'krumm'"),
        (["lst"], "invalid choice: 'lst'"),
    ],
)
def test_a_typo_gets_the_nearest_name(argv: list[str], says: str, tmp_path: Path) -> None:
    result = _run(*argv, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert says in line
    wanted = {"spectrl": "spectral", "badnet": "badnets", "krumm": "krum", "lst": "list"}
    typo = next(a for a in argv if a in wanted)
    assert line.split(" (see ")[0].endswith(f"did you mean '{wanted[typo]}'?")


def test_a_name_far_from_every_entry_gets_no_guess(tmp_path: Path) -> None:
    result = _run("scan", "wine", "--detector", "zzzzzz", cwd=tmp_path)
    assert result.returncode == 2 and "did you mean" not in result.stderr


def _all_flags() -> set[str]:
    flags: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return flags


def test_every_flag_an_error_message_names_exists() -> None:
    """A message that tells the user to pass --x must name a flag poisonlab has."""
    known = _all_flags()
    named: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for part in ast.walk(node.exc):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", part.value):
                            named.setdefault(flag, f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert len(named) >= 10  # the walk sees the messages (measured: 20+ distinct flags)
    missing = {flag: where for flag, where in named.items() if flag not in known}
    assert not missing, missing


def test_fl_reads_a_csv_with_its_label_column_and_resumes(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    base = ("fl", "--data", "wine.csv", "--rounds", "1", "--clients", "4", "--out", "out")
    missing = _run(*base, cwd=tmp_path)
    assert missing.returncode == 2 and "--label-col" in missing.stderr
    assert _run(*base, "--label-col", "target", cwd=tmp_path).returncode == 0
    again = _run(*base, "--label-col", "target", cwd=tmp_path)
    assert again.returncode == 2 and "pass --resume" in again.stderr
    resumed = _run(*base, "--label-col", "target", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"│\s+1 │", resumed.stdout)  # the stored round is shown again


def test_every_option_and_argument_has_help_text() -> None:
    parsers = [("poisonlab", build_parser())]
    bare = []
    while parsers:
        name, parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend((f"{name} {sub}", p) for sub, p in action.choices.items())
            elif not action.help:
                bare.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not bare, bare


@pytest.mark.parametrize(("seeds", "spread"), [("[0]", False), ("[0, 1]", True)])
def test_a_single_seed_cell_shows_no_spread(tmp_path: Path, seeds: str, spread: bool) -> None:
    config = f'datasets = ["wine"]\nmodels = ["logreg"]\nattacks = ["label_flip"]\nseeds = {seeds}\n'
    (tmp_path / "grid.toml").write_text(config)
    result = _run("run", "grid.toml", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "label_flip" in line]
    assert rows and all(("±" in row) == spread for row in rows), result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    n_seeds = 2 if spread else 1
    assert len(summary["runs"]) == 2 * n_seeds  # the clean baseline and the attack, per seed
    [cell] = [c for c in summary["aggregate"] if c["attack"] == "label_flip"]
    mean, std = cell["clean_acc"]
    accuracies = [r["clean_acc"] for r in summary["runs"] if r["attack"] == "label_flip"]
    assert cell["n_seeds"] == n_seeds and abs(mean - sum(accuracies) / n_seeds) < 1e-9
    assert (std > 0) == spread or (spread and len(set(accuracies)) == 1)


def test_scan_and_run_speak_json_for_tools(tmp_path: Path) -> None:
    scanned = _run("scan", "wine", "--json", cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    report = json.loads(scanned.stdout)  # stdout is the report and nothing else
    assert report["n_samples"] == 178 and len(report["scores"]) == 178
    (tmp_path / "grid.toml").write_text(
        'datasets = ["wine"]\nmodels = ["logreg"]\nattacks = ["label_flip"]\nseeds = [0]\n'
    )
    ran = _run("run", "grid.toml", "--out", "out", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["runs"]) == 2 and {c["attack"] for c in summary["aggregate"]} == {"none", "label_flip"}


@pytest.mark.parametrize("width", [80, 60])
def test_the_summary_table_wraps_in_a_narrow_terminal_and_cuts_nothing(width: int) -> None:
    """A grid of every column at 80 (and 60) columns: no cell is cut short with '…'."""
    from rich.console import Console

    from poisonlab.cli.experiments import _summary_table

    rows = [
        {
            "scenario": "centralised",
            "dataset": f"dataset_{d}",
            "model": "logreg",
            "defense": defense,
            "poison_rate": 0.1,
            "defended_by": "defense",
            "condition": "poison_rate",
            "attack": "label_flip_long_name",
            "n_seeds": 3,
            "n_poison": 134.0,
            "phase": "training",
            "clean_acc": (0.9612, 0.0123),
            "asr": (0.9987, 0.0011),
            "ra": (0.0011, 0.0009),
            "acc_drop": (0.0123, 0.0045),
        }
        for d in (1, 2)
        for defense in ("none", "relabelled_groups")
    ]
    console = Console(width=width, record=True)
    console.print(_summary_table(rows))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    if width == 80:  # names fold over lines; a mean and its spread keep their digits together
        for value in ("96.1", "±1.2", "99.9", "±0.1", "134"):
            assert value in text
