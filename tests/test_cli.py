"""The command line: what a user types and sees, exit codes, and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS
from poisonlab.cli import main
from poisonlab.data import DATASETS, load_dataset
from poisonlab.defenses import DEFENSES
from poisonlab.federated import AGGREGATORS, CLIENT_ATTACKS
from poisonlab.models import MODELS


def poisonlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_list_shows_every_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for registry in (DATASETS, MODELS, ATTACKS, DEFENSES):
        for entry in registry:
            assert entry.name in out
    for name in [e.name for e in (*AGGREGATORS, *CLIENT_ATTACKS)]:
        assert name in out
    assert "Krum: the single update closest" in out


def test_list_json_gives_every_kind_with_parameters_defaults_and_tags(capsys) -> None:
    import json

    from poisonlab.registry import registries

    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert set(listed) == {r.kind for r in registries()}
    assert {"learner", "transform", "scenario", "aggregator", "client attack", "detector"} <= set(listed)
    for registry in registries():
        assert [e["name"] for e in listed[registry.kind]["entries"]] == registry.names()
        assert listed[registry.kind]["tag_defaults"].keys() == registry.schema.keys()
    entry = {e["name"]: e for e in listed["attack"]["entries"]}["badnets"]
    assert entry["parameters"]["patch_size"] == 3 and entry["tags"]["backdoor"] is True
    trim = {e["name"]: e for e in listed["detector"]["entries"]}["trim"]
    assert trim["parameters"] == {"poison_rate": "auto", "n_init": 10, "random_state": 0}
    assert trim["tags"]["tasks"] == ["regression"]
    krum = {e["name"]: e for e in listed["aggregator"]["entries"]}["krum"]
    assert "updates" not in krum["parameters"] and krum["tags"]["needs_f"] is True


def test_list_one_kind_and_an_unknown_kind(capsys) -> None:
    assert main(["list", "learner"]) == 0
    out = capsys.readouterr().out
    assert "stream learners" in out and "mlp_sk" in out and "attacks" not in out
    assert main(["list", "nope"]) == 2
    assert "unknown kind 'nope'" in capsys.readouterr().err


def test_attack_writes_a_poisoned_copy_with_its_mask(tmp_path: Path) -> None:
    out = tmp_path / "poisoned.npz"
    assert (
        main(["attack", "badnets", "digits", "--rate", "0.05", "--out", str(out), "--param", "target=3"]) == 0
    )
    clean = load_dataset("digits")
    with np.load(out, allow_pickle=False) as f:
        X, y, mask, ids = f["X"], f["y"], f["poison_mask"], f["ids"]
        assert int(f["target"]) == 3
    assert mask.sum() == int(0.05 * len(clean))
    assert np.array_equal(ids, clean.ids)
    assert np.all(y[mask] == 3)
    changed = np.any(X != clean.X, axis=(1, 2, 3)) | (y != clean.y)
    assert np.array_equal(changed, mask)
    # the written file is a dataset poisonlab (and other tools) can read back
    assert len(load_dataset(str(out))) == len(clean)


def test_attack_on_a_csv_keeps_the_users_labels(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("f1,f2,cls\n" + "\n".join(f"{i},{i % 3},{10 if i % 2 else 20}" for i in range(50)))
    out = tmp_path / "p.npz"
    assert (
        main(["attack", "label_flip", str(data), "--label-col", "cls", "--count", "5", "--out", str(out)])
        == 0
    )
    with np.load(out, allow_pickle=False) as f:
        assert set(np.unique(f["y"])) == {10, 20}
        assert f["poison_mask"].sum() == 5


def test_run_with_a_config_writes_summary(tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(
        'datasets = ["breast_cancer"]\nmodels = ["logreg"]\n'
        'attacks = ["label_flip", "feature_trigger"]\npoison_rates = [0.1]\nseeds = [0, 1]\n'
    )
    result = poisonlab("run", str(config), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "feature_trigger" in result.stdout and "C-ACC" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["runs"]
    assert len(summary) == 6 and all(r["status"] == "ok" for r in summary)
    # running the same grid again without --resume would mix results: refused, nothing lost
    again = poisonlab("run", str(config), "--out", str(tmp_path / "out"))
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = poisonlab("run", str(config), "--out", str(tmp_path / "out"), "--resume")
    assert resumed.returncode == 0 and "6 finished runs kept, 0 to go" in resumed.stdout


def test_run_exits_1_when_a_run_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(
        'datasets = ["wine"]\nmodels = ["logreg"]\n'
        'attacks = [{ name = "targeted_flip", source = 0, target = 1 }]\npoison_rates = [0.5]\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["runs"]
    assert [r["status"] for r in summary] == ["ok", "failed"]


def _write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


BAD_INPUTS = [
    (["attack", "badnets", "missing.npz", "--rate", "0.1", "--out", "o.npz"], "no such file"),
    (["attack", "badnets", "digits", "--rate", "1.5", "--out", "o.npz"], "poison rate must lie in (0, 1]"),
    (["attack", "badnets", "digits", "--rate", "0", "--out", "o.npz"], "poison rate must lie in (0, 1]"),
    (["attack", "nope", "digits", "--rate", "0.1", "--out", "o.npz"], "unknown attack 'nope'"),
    (["attack", "badnets", "nope", "--rate", "0.1", "--out", "o.npz"], "unknown dataset 'nope'"),
    (["attack", "badnets", "wine", "--rate", "0.1", "--out", "o.npz"], "works on image data"),
    (["attack", "badnets", "digits", "--rate", "0.1", "--out", "o.npz", "--param", "size=2"], "no parameter"),
    (["attack", "label_flip", "{garbage}", "--rate", "0.1", "--out", "o.npz"], "malformed npz"),
    (["attack", "label_flip", "{nan}", "--rate", "0.1", "--out", "o.npz"], "NaN or inf"),
    (["attack", "label_flip", "{oneclass}", "--rate", "0.1", "--out", "o.npz"], "at least two classes"),
    (["attack", "label_flip", "{floaty}", "--rate", "0.1", "--out", "o.npz"], "labels must be integers"),
    (["attack", "label_flip", "{mismatch}", "--rate", "0.1", "--out", "o.npz"], "rows but y has"),
    (["attack", "label_flip", "{csv}", "--rate", "0.1", "--out", "o.npz"], "label column"),
    (
        ["attack", "label_flip", "{csv}", "--label-col", "zz", "--rate", "0.1", "--out", "o.npz"],
        "no label column",
    ),
    (["run", "missing.toml"], "no such config file"),
    (["run", "{badtoml}"], "invalid TOML"),
    (["run", "--jobs", "0"], "--jobs must be >= 1"),
    (["attack", "badnets", "digits", "--out", "o.npz"], "one of the arguments --rate --count is required"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_gets_one_clear_line_and_a_nonzero_exit(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    files = {
        "garbage": _write(tmp_path, "garbage.npz", b"\x00not a zip at all"),
        "csv": _write(tmp_path, "t.csv", "a,b,label\n1,2,0\n3,4,1\n"),
        "badtoml": _write(tmp_path, "bad.toml", "attacks = [\n"),
    }
    arrays = {
        "nan": (np.array([[0.0, np.nan], [1.0, 2.0]]), np.array([0, 1])),
        "oneclass": (np.ones((4, 2)), np.zeros(4, dtype=int)),
        "floaty": (np.ones((2, 2)), np.array([0.5, 1.0])),
        "mismatch": (np.ones((3, 2)), np.array([0, 1])),
    }
    for key, (X, y) in arrays.items():
        files[key] = str(tmp_path / f"{key}.npz")
        np.savez(files[key], X=X, y=y)
    argv = [a.format(**files) for a in argv]
    result = poisonlab(*argv, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert not (tmp_path / "o.npz").exists()


def test_attack_on_one_input_takes_its_row_out_of_the_poisoned_set(tmp_path: Path) -> None:
    out = tmp_path / "fc.npz"
    args = ["attack", "feature_collision", "digits", "--count", "5", "--out", str(out)]
    params = ["--param", "target=3", "--param", "steps=5", "--param", "surrogate_epochs=1"]
    assert main([*args, "--target-index", "10", *params]) == 0
    clean = load_dataset("digits")
    with np.load(out, allow_pickle=False) as f:
        assert np.array_equal(f["target_input"], clean.X[10]) and int(f["target_index"]) == 10
        X, y, ids, mask = f["X"], f["y"], f["ids"], f["poison_mask"]
    keep = np.delete(np.arange(len(clean)), 10)
    assert np.array_equal(ids, clean.ids[keep]) and np.array_equal(y, clean.y[keep])  # labels kept
    assert mask.sum() == 5 and np.all(y[mask] == 3)
    assert np.abs(X - clean.X[keep]).max() <= 0.25 + 1e-6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["feature_collision"], "aims at one input: give its row of DATA with --target-index"),
        (["feature_collision", "--target-index", "5000"], r"--target-index must lie in 0\.\.1796"),
        (["badnets", "--target-index", "3"], "does not aim at one input"),
        (["feature_collision", "--target-index", "0"], "row 0 of digits is already of class 0"),
    ],
)
def test_attack_on_one_input_refuses_a_missing_or_wrong_target_index(tmp_path: Path, extra, message) -> None:
    out = tmp_path / "p.npz"
    done = poisonlab("attack", extra[0], "digits", "--count", "5", "--out", str(out), *extra[1:])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert re.search(message, done.stderr)
    assert not out.exists()
