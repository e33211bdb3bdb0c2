"""The README cannot drift from the code: its configs parse, its commands' flags exist, its examples run."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from poisonlab.cli import build_parser, main
from poisonlab.experiments import load_config

README = (Path(__file__).parent.parent / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return [b.split("```", 1)[0] for b in README.split(f"```{language}\n")[1:]]


def commands() -> list[str]:
    """Every ``poisonlab …`` command of the README's shell blocks, continuation lines joined."""
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("poisonlab"):
                found.append(line)
    return found


def subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The parser of the deepest subcommand named by ``words`` (``ledger add`` → add's parser)."""
    for word in words:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            break
        parser = actions[0].choices[word]
    return parser


def test_the_readme_shows_every_command() -> None:
    shown = {c.split()[1] for c in commands() if len(c.split()) > 1}
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(top.choices) <= shown, f"commands the README never shows: {set(top.choices) - shown}"


@pytest.mark.parametrize("command", commands())
def test_every_flag_a_readme_command_shows_exists_on_that_command(command: str) -> None:
    words = [w for w in re.split(r"[\s\[\]()|]+", command) if w]
    parser = subparser(build_parser(), [w for w in words[1:3] if not w.startswith("-")])
    known = {s for a in parser._actions for s in a.option_strings}
    flags = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    assert flags <= known, f"{command}: {sorted(flags - known)} not options of {parser.prog}"


@pytest.fixture
def readme_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the data file the README's configs name (a wine table)."""
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    (tmp_path / "data").mkdir()
    header = ",".join([*(f"f{i}" for i in range(X.shape[1])), "label"])
    np.savetxt(
        tmp_path / "data" / "train.csv", np.column_stack([X, y]), delimiter=",", header=header, comments=""
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("index", range(len(blocks("toml"))))
def test_every_readme_config_parses_and_plans(readme_files: Path, index: int) -> None:
    path = readme_files / "config.toml"
    path.write_text(blocks("toml")[index])
    experiment = load_config(path)
    assert len(experiment.runs) > 0


def test_the_headline_config_skips_its_incompatible_cells_with_one_line_each(readme_files: Path) -> None:
    [headline] = [b for b in blocks("toml") if 'incompatible = "skip"' in b]
    path = readme_files / "config.toml"
    path.write_text(headline)
    experiment = load_config(path)
    assert {s.dataset.name for s in experiment.runs} == {"digits", "train"}
    assert not any(s.model.name == "cnn" and s.dataset.name == "train" for s in experiment.runs)
    assert any("badnets' is for image data" in line for line in experiment.skipped)
    assert all(line.startswith("skipped ") and "\n" not in line for line in experiment.skipped)


def test_the_readme_attack_example_runs(readme_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [command] = [c for c in commands() if "--target-index 17" in c]
    assert main(shlex.split(command)[1:]) == 0
    with np.load(readme_files / "frog.npz", allow_pickle=False) as archive:
        assert archive["poison_mask"].sum() == 12 and int(archive["target"]) == 3
