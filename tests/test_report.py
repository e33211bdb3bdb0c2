"""HTML reports: what they draw for each kind of result, that they stand alone, how a browser shows them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, open_page

from poisonlab.cli import main
from poisonlab.data import load_dataset
from poisonlab.data.readers import write_npz

#: A dataset name a hostile file could carry: it must reach the page as text, never as markup,
#: and its malformed TeX (``$^$``) must be drawn as it is, not parsed.
HOSTILE = "d<img src=x onerror=alert(1)>$^$"

GRID = """
datasets = [{{ path = "{path}" }}]
models = ["logreg"]
attacks = ["none", "label_flip", "badnets"]
defenses = ["none", "knn_label"]
poison_rates = [0.05, 0.1]
seeds = [0, 1]
"""


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small centralised grid on 500 digits under a hostile file name, run through the CLI."""
    root = tmp_path_factory.mktemp("grid")
    data = root / f"{HOSTILE}.npz"
    write_npz(data, load_dataset("digits").subset(np.arange(500)))
    config = root / "grid.toml"
    config.write_text(GRID.format(path=data.name))
    assert main(["run", str(config), "--out", str(root / "out"), "--jobs", "1"]) == 0
    return root / "out"


def figures(page: str) -> list[str]:
    return re.findall(r"<figure\b.*?</figure>", page, flags=re.S)


def assert_self_contained(page: str) -> None:
    assert not re.search(r"https?://", page), "the page refers to a network resource"
    assert "<script" not in page.lower()
    assert not re.search(r"""\b(src|href)=["'](?!#|data:)""", page), "the page loads a file"


def test_run_writes_a_self_contained_report_with_a_figure_per_measure(grid_dir: Path) -> None:
    page = (grid_dir / "report.html").read_text()
    assert_self_contained(page)
    titles = re.findall(r"<b>Figure \d+\. (.*?)</b>", page)
    # C-ACC, ASR, RA, ΔACC against rate; effect against stealth; the defense's effect; detection
    assert len(figures(page)) == len(titles) >= 7
    for expected in ("Clean accuracy", "Attack success rate", "Each defense", "Detection precision"):
        assert any(t.startswith(expected) for t in titles), expected
    assert all("<svg" in f for f in figures(page))
    # provenance: versions, the command line and the config as run
    assert "poisonlab 0.1.0" in page and "scikit-learn" in page
    assert "--jobs 1" in page and 'models = ["logreg"]' in page


def test_data_reach_the_page_as_text_never_as_markup(grid_dir: Path) -> None:
    page = (grid_dir / "report.html").read_text()
    assert HOSTILE not in page
    assert "d&lt;img src=x onerror=alert(1)&gt;$^$" in page


def test_report_redraws_a_folder_into_another_file_and_refuses_to_replace_it(grid_dir, tmp_path, capsys):
    out = tmp_path / "copy.html"
    assert main(["report", str(grid_dir), "--out", str(out)]) == 0
    assert len(figures(out.read_text())) == len(figures((grid_dir / "report.html").read_text()))
    assert main(["report", str(grid_dir), "--out", str(out)]) == 2
    assert "exists; poisonlab replaces a file only with --force" in capsys.readouterr().err
    assert main(["report", str(grid_dir), "--out", str(out), "--force"]) == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "is not a poisonlab results folder (it holds no results.sqlite)"),
        (lambda d: (d / "notes.txt").write_text("mine") and d, "is not a poisonlab results folder"),
        (lambda d: d / "missing", "no such folder"),
        (lambda d: (d / "f.txt").write_text("x") and d / "f.txt", "is a file; give the results folder"),
    ],
)
def test_a_folder_that_is_not_a_results_folder_gets_one_line_and_exit_2(tmp_path, capsys, make, message):
    target = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written into it


def test_a_report_path_that_is_a_folder_gets_one_line_and_exit_2(grid_dir: Path, tmp_path, capsys) -> None:
    assert main(["report", str(grid_dir), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder; name the file to write" in err and err.count("\n") == 1


def test_a_federated_folder_draws_accuracy_and_kept_updates_per_round(tmp_path: Path) -> None:
    out = tmp_path / "fl"
    argv = ["fl", "--clients", "5", "--rounds", "3", "--aggregator", "krum", "--out", str(out)]
    assert main([*argv, "--malicious", "1", "--attack", "label_flip"]) == 0
    page = (out / "report.html").read_text()
    assert_self_contained(page)
    titles = re.findall(r"<b>Figure \d+\. (.*?)</b>", page)
    assert "Federated global accuracy per round" in titles
    assert "Share of malicious updates kept per round" in titles


def test_a_stream_grid_draws_accuracy_and_asr_over_time(tmp_path: Path) -> None:
    from test_stream_scenario import config  # the stream grid those tests run, evaluated every 4 batches

    from poisonlab.experiments import parse_config, run_grid
    from poisonlab.report import write_run_report

    raw = config(stream={"batch_size": 100, "trusted": 200, "epochs_per_batch": 2, "eval_every": 4})
    outcome = run_grid(parse_config(raw), tmp_path / "s")
    timeline = next(r for r in outcome.records if r.attack == "badnets" and r.gate == "off").timeline  # type: ignore[attr-defined]
    assert len(timeline) >= 3 and timeline[-1]["asr"] > 0.5  # ungated: the backdoor takes hold
    page = write_run_report(tmp_path / "s").read_text()
    titles = re.findall(r"<b>Figure \d+\. (.*?)</b>", page)
    assert "Stream accuracy over time, gated and ungated" in titles
    assert "Stream backdoor ASR over time, gated and ungated" in titles


@pytest.fixture(scope="module")
def scan_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scan --report`` on 600 digits with a BadNets patch on 5% of them."""
    root = tmp_path_factory.mktemp("scan")
    data = root / "bd.npz"
    assert main(["attack", "badnets", "digits", "--rate", "0.05", "--out", str(data)]) == 0
    with np.load(data, allow_pickle=False) as archive:
        arrays = {k: archive[k][:600] for k in archive.files if archive[k].ndim and len(archive[k]) > 600}
    np.savez(root / "bd600.npz", **arrays)
    out = root / "scan.html"
    main(["scan", str(root / "bd600.npz"), "--report", str(out)])
    return out


def test_scan_report_shows_flags_per_class_and_the_suspicious_images(scan_page: Path) -> None:
    page = scan_page.read_text()
    assert_self_contained(page)
    titles = re.findall(r"<b>Figure \d+\. (.*?)</b>", page)
    assert titles[:2] == ["Flags per class", "Scores per class"]
    assert "The most suspicious images beside typical ones of their class" in titles
    assert "What the flagged samples share" in titles  # the patch the poisons carry
    assert "bd600.npz" in page and "command" in page


def test_stream_report(tmp_path: Path) -> None:
    out = tmp_path / "s.html"
    assert main(["stream", "--batch-size", "100", "--eval-every", "4", "--report", str(out)]) == 0
    page = out.read_text()
    assert_self_contained(page)
    assert len(figures(page)) == 3 and "Poisons the learner was given" in page


needs_browser = pytest.mark.skipif(
    chromium() is None and not os.environ.get("CI"),
    reason="no chromium here (apt-get install chromium); CI installs it and runs this test",
)


@needs_browser
@pytest.mark.parametrize("which", ["grid", "scan"])
def test_reports_render_in_headless_chromium(which: str, grid_dir: Path, scan_page: Path) -> None:
    path = grid_dir / "report.html" if which == "grid" else scan_page
    rendered = open_page(path)
    assert rendered.errors == []
    assert len(rendered.figures) == len(figures(path.read_text())) >= 4
    for figure in rendered.figures:
        assert figure["width"] > 200 and figure["height"] > 100
        assert figure["shapes"] > 10
        pixels = figure["pixels"]
        assert pixels is not None and pixels.std() > 10  # drawn, not blank
        assert (pixels.min(axis=2) < 128).mean() > 0.005  # lines and text, not an empty frame
    shot = rendered.screenshot
    assert shot is not None and shot.shape[0] > 2000 and shot.std() > 10


@needs_browser
def test_the_browser_check_sees_a_script_error_and_a_blank_figure(tmp_path: Path) -> None:
    """The check above can fail: a page with a broken script and an empty figure is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><figure><svg width='300' height='200'></svg></figure>"
        "<script>undefined_function()</script></body></html>"
    )
    rendered = open_page(page)
    assert any("undefined_function" in e for e in rendered.errors)
    [figure] = rendered.figures
    assert figure["shapes"] == 0 and figure["pixels"].std() < 1
