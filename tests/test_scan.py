"""Scanning a training set: the library call, the ``poisonlab scan`` command, detectors as runner defenses.

Everything here runs single-threaded (torch and BLAS, in this process and in the
CLI subprocesses): on a shared two-core machine, two-threaded OpenBLAS and torch
slow the proxy model and the detectors' fits down by 10-40x.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from poisonlab import metrics
from poisonlab.cli import main
from poisonlab.data import Dataset, load_dataset
from poisonlab.defenses.scan import scan
from poisonlab.experiments import parse_config, run_grid

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
AUTO_MEMBERS = {"relabelled_groups", "separated_clusters", "confident_learning", "knn_label"}


pytestmark = pytest.mark.usefixtures("single_threaded")


def poisonlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ONE_THREAD},
    )


@pytest.fixture(scope="module")
def badnets_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits with 5% BadNets poisons, as ``poisonlab attack`` writes them."""
    out = tmp_path_factory.mktemp("scan") / "badnets.npz"
    assert main(["attack", "badnets", "digits", "--rate", "0.05", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def flipped_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """breast_cancer with 10% of labels flipped: a small file the CLI tests scan quickly."""
    out = tmp_path_factory.mktemp("scan") / "flipped.npz"
    assert main(["attack", "label_flip", "breast_cancer", "--rate", "0.1", "--out", str(out)]) == 0
    return out


def poison_mask(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as f:
        return f["poison_mask"]


def read_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


# -- the library call ---------------------------------------------------------------
def test_scan_finds_the_backdoor_in_an_attack_output_file(badnets_file: Path) -> None:
    # measured: recall 1.00 (89 of 89), FPR 0.0023 (4 of 1708 clean rows flagged)
    data = load_dataset(str(badnets_file))
    mask = poison_mask(badnets_file)
    assert mask.sum() == 89 and len(data) == 1797
    report = scan(data)
    assert report.flags.shape == report.scores.shape == (len(data),)
    assert set(report.per_detector) == AUTO_MEMBERS
    got = metrics.detection_scores(mask, report.flags, report.scores)
    assert got["tpr"] >= 0.9, got
    assert got["fpr"] <= 0.02, got


# -- the command line ----------------------------------------------------------------
# Each case is one ``poisonlab scan`` subprocess; they are independent, so the module runs
# them two at a time (each is single-threaded) and the tests below check one result each.
N_FLIPPED = 569  # rows of breast_cancer


def _cli_cases(flipped: Path, tmp: Path) -> dict[str, list[str]]:
    wrong_rows, with_nan = tmp / "wrong_rows.npy", tmp / "nan.npy"
    np.save(wrong_rows, np.ones((N_FLIPPED + 1, 4)))
    nan = np.ones((N_FLIPPED, 4))
    nan[3, 1] = np.nan
    np.save(with_nan, nan)
    X = np.asarray(load_dataset(str(flipped)).X, dtype=np.float64)
    np.save(tmp / "emb.npy", (X - X.mean(axis=0)) / X.std(axis=0))
    (tmp / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    data = str(flipped)
    return {
        "auto": [data, "--out", str(tmp / "auto.json")],
        "contamination": [
            data,
            "--contamination",
            "0.05",
            "--fail-above",
            "28",
            "--out",
            str(tmp / "c.json"),
        ],
        "features": [data, "--features", str(tmp / "emb.npy"), "--out", str(tmp / "features.json")],
        "bad:features_rows": [data, "--features", str(wrong_rows)],
        "bad:features_nan": [data, "--features", str(with_nan)],
        "bad:label_col": [str(tmp / "t.csv"), "--label-col", "zz"],
        "bad:detector": [data, "--detector", "nope"],
        "bad:contamination": [data, "--contamination", "1.5"],
        "bad:missing": [str(tmp / "missing.npz")],
    }


@pytest.fixture(scope="module")
def cli(flipped_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every CLI case's completed process, and its JSON report where it wrote one."""
    tmp = tmp_path_factory.mktemp("cli")
    cases = _cli_cases(flipped_file, tmp)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(poisonlab, "scan", *args) for name, args in cases.items()}
        results = {name: future.result() for name, future in futures.items()}
    reports = {name: read_report(tmp / f"{name}.json") for name in ("auto", "features")}
    reports["contamination"] = read_report(tmp / "c.json")
    return {"results": results, "reports": reports}


def test_cli_scan_exits_1_and_writes_the_report(flipped_file: Path, cli) -> None:
    # measured: 54 of 569 flagged, 47 of them among the 56 flipped labels
    result, report = cli["results"]["auto"], cli["reports"]["auto"]
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert {"n_samples", "n_flagged", "flagged_indices", "scores", "detectors"} <= set(report)
    n = report["n_samples"]
    assert n == len(load_dataset(str(flipped_file))) == N_FLIPPED
    assert report["n_flagged"] == len(report["flagged_indices"]) > 0
    assert f"{report['n_flagged']} flagged" in result.stdout

    # 0-based rows in the input's order, matching the ids in the file
    flagged = report["flagged_indices"]
    assert flagged == sorted(set(flagged)) and 0 <= flagged[0] and flagged[-1] < n
    with np.load(flipped_file, allow_pickle=False) as f:
        ids = f["ids"]
    assert report["ids"] == ids.tolist()
    assert report["flagged_ids"] == ids[flagged].tolist()
    flipped = poison_mask(flipped_file)
    assert np.mean(flipped[flagged]) >= 0.75  # the flagged rows are the flipped ones
    assert np.mean(np.isin(np.flatnonzero(flipped), flagged)) >= 0.7  # and most flipped rows are flagged

    assert len(report["scores"]) == n and np.isfinite(report["scores"]).all()
    # auto reports each of its members: scores for every row, flags as row indices
    assert set(report["detectors"]) == AUTO_MEMBERS
    members: set[int] = set()
    for name, part in report["detectors"].items():
        assert len(part["scores"]) == n, name
        assert all(isinstance(i, int) and 0 <= i < n for i in part["flags"]), name
        members |= set(part["flags"])
    assert set(flagged) <= members


def test_cli_contamination_flags_the_floor_of_the_share_and_fail_above_allows_them(cli) -> None:
    # --contamination 0.05 flags floor(0.05 × 569) = 28; --fail-above 28 then exits 0
    result, report = cli["results"]["contamination"], cli["reports"]["contamination"]
    assert result.returncode == 0, result.stderr
    expected = math.floor(0.05 * N_FLIPPED)
    assert report["n_flagged"] == len(report["flagged_indices"]) == expected == 28
    assert "28 flagged" in result.stdout
    assert report["contamination"] == 0.05
    scores = np.asarray(report["scores"])
    flags = np.zeros(scores.shape[0], dtype=bool)
    flags[report["flagged_indices"]] = True
    assert scores[flags].min() >= scores[~flags].max()


def test_cli_scan_with_user_features(cli) -> None:
    result, report = cli["results"]["features"], cli["reports"]["features"]
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == ""
    assert report["n_samples"] == N_FLIPPED
    assert len(report["scores"]) == N_FLIPPED and np.isfinite(report["scores"]).all()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("features_rows", "features have shape (570, 4); expected 569 rows"),
        ("features_nan", "features contain NaN or inf"),
        ("label_col", "no label column 'zz'"),
        ("detector", "unknown detector 'nope'"),
        ("contamination", "--contamination must lie in (0, 1), got 1.5"),
        ("missing", "no such file"),
    ],
)
def test_cli_scan_bad_input_gets_exit_2_and_one_line(kind: str, message: str, cli) -> None:
    result = cli["results"][f"bad:{kind}"]
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("poisonlab: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


# -- detectors as defenses in the runner ------------------------------------------------
@pytest.fixture(scope="module")
def defended_grid(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    experiment = parse_config(
        {
            "datasets": ["digits"],
            "models": ["cnn"],
            "attacks": ["badnets"],
            "defenses": ["none", "auto"],
            "poison_rates": [0.05],
            "seeds": [0],
        }
    )
    outcome = run_grid(experiment, tmp_path_factory.mktemp("grid"), jobs=1)
    assert outcome.n_failed == 0, [r["error"] for r in outcome.records]
    return {(r["attack"], r["defense"]): r for r in outcome.records}


def test_auto_defense_removes_the_backdoor(defended_grid) -> None:
    # measured: ASR 0.99 undefended, 0.00 defended; all 67 poisons removed; DER 0.95
    undefended, defended = defended_grid["badnets", "none"], defended_grid["badnets", "auto"]
    assert set(defended_grid) == {
        ("none", "none"),
        ("badnets", "none"),
        ("none", "auto"),
        ("badnets", "auto"),
    }
    assert undefended["asr"] > 0.9
    assert undefended["det_f1"] is None and undefended["der"] is None  # nothing to rate without a defense
    assert defended["n_poison"] == 67
    assert defended["asr"] < 0.05
    assert defended["det_tpr"] >= 0.9
    for key in ("det_fpr", "det_precision", "det_f1", "det_auroc"):
        assert defended[key] is not None, key
    assert defended["der"] == pytest.approx(
        metrics.defense_effectiveness_rating(
            undefended["asr"], defended["asr"], undefended["clean_acc"], defended["clean_acc"]
        )
    )
    assert defended["der"] > 0.9


def _bad_features(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["strings"] = tmp_path / "strings.npy"
    np.save(files["strings"], np.array([["a", "b"], ["c", "d"]]))
    files["archive"] = tmp_path / "archive.npy"  # an .npz saved under an .npy name
    with open(files["archive"], "wb") as fh:
        np.savez(fh, X=np.zeros((3, 2)))
    files["flat"] = tmp_path / "flat.npy"
    np.save(files["flat"], np.zeros(5))
    files["objects"] = tmp_path / "objects.npy"
    np.save(files["objects"], np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("seed", "--seed must be >= 0, got -1"),
        ("top", "--top must be >= 0, got -2"),
        ("out_folder", "is a folder; name the file to write"),
        ("out_missing", "does not exist"),
        ("out_is_input", "is the command's own input"),
        ("strings", "holds <U1 values; it must hold numbers"),
        ("archive", "an .npz archive, not one .npy array"),
        ("flat", "has shape (5,); it must be N×d (2-D)"),
        ("objects", "not a readable .npy array"),
    ],
)
def test_scan_bad_options_get_one_line_before_the_scan(case, message, tmp_path: Path, capsys) -> None:
    from poisonlab.cli import main

    data = tmp_path / "data.npz"
    np.savez(data, X=np.zeros((20, 3), dtype=np.float32), y=np.repeat([0, 1], 10))
    before = data.read_bytes()
    argv = ["scan", str(data)]
    if case == "seed":
        argv += ["--seed", "-1"]
    elif case == "top":
        argv += ["--top", "-2"]
    elif case == "out_folder":
        argv += ["--out", str(tmp_path)]
    elif case == "out_missing":
        argv += ["--out", str(tmp_path / "no" / "r.json")]
    elif case == "out_is_input":
        argv += ["--out", str(data)]
    else:
        argv += ["--features", str(_bad_features(tmp_path)[case])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert data.read_bytes() == before  # the input is never replaced
    assert not (tmp_path / "no").exists()


def test_scan_says_per_class_what_it_flagged_how_it_did_against_the_mask_and_why_it_exits_1(
    tmp_path: Path, capsys
) -> None:
    from poisonlab.cli import main

    poisoned = tmp_path / "wine_flipped.npz"
    assert main(["attack", "label_flip", "wine", "--rate", "0.1", "--out", str(poisoned), "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["scan", str(poisoned)]) == 1
    out = capsys.readouterr().out
    with np.load(poisoned, allow_pickle=False) as f:
        n_poison = int(f["poison_mask"].sum())
    assert "flagged per class" in out
    assert f"against the file's poison_mask ({n_poison} poisons): precision" in out
    recall = float(out.split("recall ")[1].split(",")[0])
    assert recall >= 0.5  # random flips on wine are found (measured 0.765 at seed 3)
    assert "exit 1:" in out and "more than --fail-above 0" in out
    assert "most suspicious samples" in out
    assert main(["scan", str(poisoned), "--top", "0"]) == 1
    out = capsys.readouterr().out
    assert "most suspicious samples" not in out and "flagged per class" in out


def test_scan_says_when_the_out_of_sample_model_disputes_many_labels(tmp_path: Path, capsys) -> None:
    """30% of wine's labels flipped: the scan warns that label flags may hit clean rows; clean: no note."""
    from poisonlab.cli import main

    noisy = tmp_path / "wine_noisy.npz"
    assert main(["attack", "label_flip", "wine", "--rate", "0.3", "--out", str(noisy), "--seed", "0"]) == 0
    capsys.readouterr()
    main(["scan", str(noisy), "--top", "0"])
    out = capsys.readouterr().out
    agreement = float(out.split("agrees with only ")[1].split("%")[0]) / 100
    assert agreement < 0.8  # about 0.7 of the labels are right, and the model finds most of the rest
    main(["scan", str(noisy), "--json"])
    assert json.loads(capsys.readouterr().out)["label_agreement"] == pytest.approx(agreement, abs=0.005)
    assert "the classes overlap" in out
    main(["scan", "wine", "--top", "0"])
    assert "agrees with only" not in capsys.readouterr().out  # clean wine: 0.97 agree


def test_a_fixed_contamination_ranks_per_class_scores_on_one_scale() -> None:
    """A bimodal clean class outscores the poisons globally; calibrated per class, the poisons win."""
    from poisonlab.defenses.detectors import calibrate_by_class, flag_top
    from poisonlab.defenses.scan import scan

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    X = rng.standard_normal((300, 10))
    X[y == 1, 0] += np.where(np.arange(100) % 2, 10.0, -10.0)  # a clean class with two modes
    X[y == 2] += 8.0
    poison = np.zeros(300, dtype=bool)
    poison[:10] = True  # ten rows of class 0, moved together: a trigger's cluster
    X[poison, 1] += 6.0
    data = Dataset.from_arrays(X.astype(np.float32), y, name="bimodal")
    report = scan(data, detector="spectral", contamination=10 / 300, features=X)
    assert report.flags.sum() == 10
    assert (report.flags & poison).sum() >= 8  # measured 9 of 10 (the global ranking: 0 of 10)
    # what the global ranking of the same scores would have flagged
    global_flags = flag_top(report.scores, 10 / 300)
    assert (global_flags & poison).sum() <= 2 and (y[global_flags] == 1).sum() >= 8
    assert np.array_equal(report.flags, flag_top(calibrate_by_class(report.scores, y), 10 / 300))


def test_scan_passes_detector_parameters(tmp_path: Path, capsys) -> None:
    from poisonlab.cli import main

    out = tmp_path / "r.json"
    code = main(["scan", "wine", "--detector", "spectral", "--param", "epsilon=0.1", "--out", str(out)])
    assert code == 1
    report = json.loads(out.read_text())
    wine = load_dataset("wine")
    expected = sum(int(np.floor(0.15 * n + 1e-9)) for n in np.bincount(wine.y))
    assert report["n_flagged"] == expected  # the paper's rule: 1.5·ε of every class
    assert main(["scan", "wine", "--detector", "spectral", "--param", "eps=0.1"]) == 2
    assert "has no parameter 'eps'" in capsys.readouterr().err
    # without epsilon the strict split rule flags nothing on wine: the user is told what else to do
    assert main(["scan", "wine", "--detector", "spectre"]) == 0
    assert "spectre's own rule flagged nothing; --contamination R" in capsys.readouterr().out


def test_scan_shows_the_class_names_a_file_carries(tmp_path: Path, capsys) -> None:
    from poisonlab.cli import main
    from poisonlab.data import write_npz

    wine = load_dataset("wine")
    named = Dataset.from_arrays(
        wine.X, wine.y, name="wine", class_names=["barolo", "grignolino", "[b]barbera"]
    )
    write_npz(tmp_path / "named.npz", named)
    main(["scan", str(tmp_path / "named.npz")])
    out = capsys.readouterr().out
    table = out[out.index("flagged per class") :]
    assert "barolo" in table and "grignolino" in table
    assert "[b]barbera" in table  # shown as written, never read as markup


def test_label_noise_flags_come_with_the_out_of_sample_predicted_label(tmp_path: Path) -> None:
    from poisonlab.cli import main

    poisoned = tmp_path / "wine_flipped.npz"
    assert main(["attack", "label_flip", "wine", "--rate", "0.1", "--out", str(poisoned), "--seed", "3"]) == 0
    main(["scan", str(poisoned), "--out", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    given, predicted = np.array(report["given_labels"]), np.array(report["predicted_labels"])
    flagged = np.array(report["flagged_indices"])
    with np.load(poisoned, allow_pickle=False) as f:
        assert np.array_equal(given, f["y"])  # in the file's own label space
    # every flag here is label noise: the model that never saw the row predicts another label
    assert len(flagged) and (given[flagged] != predicted[flagged]).all()
    assert (given == predicted).mean() > 0.85  # and agrees with most of the data


def test_a_scan_reports_its_stages_as_they_start() -> None:
    from poisonlab.defenses.scan import scan

    stages: list[str] = []
    scan(load_dataset("wine"), on_progress=stages.append)
    assert stages[0] == "training the proxy model (mlp) on 178 samples"
    folds = [s for s in stages if s.startswith("cross-fitting")]
    assert folds == [f"cross-fitting out-of-sample probabilities, fold {k} of 5" for k in range(1, 6)]
    assert stages[-1] == "running detector auto on 178 samples"


def test_a_scan_of_user_features_fits_the_loss_proxy_only_for_a_detector_that_reads_losses(monkeypatch):
    """With embeddings, the full-data proxy gives only per-sample losses: auto skips it, same flags."""
    from poisonlab.defenses import evidence as computing

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    features = (np.eye(3)[y] * 4 + rng.normal(size=(300, 3))).astype(np.float32)
    flipped = rng.choice(300, 12, replace=False)
    noisy = y.copy()
    noisy[flipped] = (noisy[flipped] + 1) % 3
    data = Dataset.from_arrays(np.zeros((300, 2), np.float32), noisy)
    fits = []
    real = computing.compute_evidence

    def counting(dataset, **kwargs):
        fits.append(kwargs.get("losses", True))
        return real(dataset, **kwargs)

    monkeypatch.setattr("poisonlab.defenses.scan.compute_evidence", counting)
    quick = scan(data, features=features)
    assert fits == [False]
    monkeypatch.setattr(
        "poisonlab.defenses.scan.compute_evidence",
        lambda dataset, **kw: real(dataset, **{**kw, "losses": True}),
    )
    full = scan(data, features=features)
    assert np.array_equal(quick.flags, full.flags) and np.allclose(quick.scores, full.scores)
    assert quick.flags[flipped].mean() > 0.8
    assert scan(data, features=features, detector="early_loss", contamination=0.04).n_flagged == 12


def test_scan_describes_each_relabelled_group_with_the_values_its_rows_share(tmp_path: Path, capsys) -> None:
    """A tabular trigger: the report names the group's class, its rows, where they belong and the trigger.

    Column names come from the CSV's header and reach the terminal as text, never
    as rich markup.
    """
    import pandas as pd
    from conftest import multimodal_table

    from poisonlab.cli import main

    X, y = multimodal_table(3)
    rng = np.random.default_rng(3)
    rows = rng.choice(np.flatnonzero(y != 0), 60, replace=False)
    values = np.percentile(X[:, [2, 7]], 99.5, axis=0)
    X[np.ix_(rows, [2, 7])] = values
    y[rows] = 0
    names = [f"f{j}" for j in range(12)]
    names[2] = "[bold]dose[/bold]"
    names[7] = "<i>age</i>"
    frame = pd.DataFrame(X, columns=names)
    frame["label"] = y
    table = tmp_path / "table.csv"
    frame.to_csv(table, index=False)
    out_json, html = tmp_path / "report.json", tmp_path / "report.html"
    command = ["scan", str(table), "--label-col", "label", "--top", "0", "--out", str(out_json)]
    assert main([*command, "--report", str(html)]) == 1
    out = capsys.readouterr().out
    assert "groups of relabelled samples" in out
    assert "[bold]dose[/bold] = " in out  # the header as it is, not styled
    page = html.read_text()
    assert "Groups of relabelled samples" in page
    assert "&lt;i&gt;age&lt;/i&gt; = " in page and "<i>age</i>" not in page  # escaped, not markup
    groups = json.loads(out_json.read_text())["groups"]
    assert len(groups) == 1 and groups[0]["class"] == 0
    assert set(groups[0]["rows"]) == set(rows.tolist())
    shared = {item["column"]: item for item in groups[0]["shared_values"]}
    assert {"[bold]dose[/bold]", "<i>age</i>"} <= set(shared)
    assert shared["<i>age</i>"]["low"] == pytest.approx(values[1], rel=1e-5)
    assert sum(groups[0]["voted_into"].values()) >= 40 and "0" not in groups[0]["voted_into"]
