"""No command replaces a file it was not told to: every output is checked before any work (issue 17).

Each case runs the command line in a subprocess, as a user would, and asserts the exit
code, one line on stderr, no traceback, and that the files that were there are unchanged.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def digest(path: Path) -> str:
    if path.is_dir():
        return "|".join(f"{p.name}:{digest(p)}" for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr, result.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.repeat([0, 1, 2], 20)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    lines = [
        "a,b,c,d,label",
        *(",".join(f"{v:.3f}" for v in row) + f",{c}" for row, c in zip(X, y, strict=True)),
    ]
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "notes.npz").write_bytes(b"the user's own file")
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["attack", "label_flip", "data.npz", "--rate", "0.1", "--out", "data.npz"],
            "is the command's own input",
        ),
        (
            ["attack", "label_flip", "data.npz", "--rate", "0.1", "--out", "notes.npz"],
            "exists; poisonlab replaces a file only with --force",
        ),
        (
            ["attack", "label_flip", "data.npz", "--rate", "0.1", "--out", "a_file/x.npz"],
            "a_file is a file, not a folder",
        ),
        (
            ["attack", "label_flip", "data.npz", "--rate", "0.1", "--out", "missing/x.npz"],
            "missing does not exist",
        ),
        (["attack", "label_flip", "data.npz", "--rate", "0.1", "--out", "."], "is a folder; name the file"),
        (
            ["scan", "mine.csv", "--label-col", "label", "--out", "mine.csv"],
            "is the command's own input",
        ),
        (["scan", "mine.csv", "--label-col", "label", "--out", "."], "is a folder"),
        (
            ["scan", "mine.csv", "--label-col", "label", "--out", "a_file/r.json"],
            "a_file is a file, not a folder",
        ),
        (
            ["certify", "data.npz", "--partitions", "5", "--out", "notes.npz"],
            "exists; poisonlab replaces a file only",
        ),
    ],
)
def test_an_output_that_would_replace_a_file_is_refused_before_any_work(folder, args, says) -> None:
    before = digest(folder)
    refused(poisonlab(*args, cwd=folder), says)
    assert digest(folder) == before  # nothing written, nothing replaced


def test_force_replaces_a_file_and_writes_it_whole(folder) -> None:
    result = poisonlab(
        "attack", "label_flip", "data.npz", "--rate", "0.1", "--out", "notes.npz", "--force", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    with np.load(folder / "notes.npz") as archive:
        assert archive["poison_mask"].sum() == 6
    assert not list(folder.glob(".notes.npz.*"))  # the temporary file was renamed into place


def test_a_ledger_is_never_an_output(folder) -> None:
    assert poisonlab("ledger", "init", "L", cwd=folder).returncode == 0
    assert (
        poisonlab("ledger", "add", "data.npz", "--source", "vendor", "--ledger", "L", cwd=folder).returncode
        == 0
    )
    before = digest(folder / "L")
    refused(
        poisonlab("ledger", "attest", "1", "--ledger", "L", "--out", "L/ledger.sqlite", cwd=folder),
        "own input",
    )
    refused(poisonlab("ledger", "export", "1", "--ledger", "L", "--out", "L/x.npz", cwd=folder), "own input")
    assert digest(folder / "L") == before
    assert (
        poisonlab("ledger", "attest", "1", "--ledger", "L", "--out", "att.json", cwd=folder).returncode == 0
    )
    refused(poisonlab("ledger", "attest", "1", "--ledger", "L", "--out", "att.json", cwd=folder), "--force")


@pytest.mark.parametrize("held", ["summary.json", "results.csv"])
def test_run_never_replaces_the_results_of_another_grid(folder, held) -> None:
    (folder / "cfg.toml").write_text(
        'datasets = ["wine"]\nmodels = ["logreg"]\nattacks = ["label_flip"]\nseeds = [0]\n'
    )
    (folder / "out").mkdir()
    (folder / "out" / held).write_text("the user's own results")
    before = digest(folder)
    refused(poisonlab("run", "cfg.toml", "--out", "out", cwd=folder), f"already holds {held}")
    refused(
        poisonlab("run", "cfg.toml", "--out", "out", "--resume", cwd=folder), "no results store to resume"
    )
    refused(poisonlab("run", "cfg.toml", "--out", "a_file", cwd=folder), "is a file")
    assert digest(folder) == before
