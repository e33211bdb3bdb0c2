"""The shared neighbour search: exact as before on small sets; on large ones an index that keeps the votes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from poisonlab.defenses import neighbours
from poisonlab.defenses.neighbours import NeighbourSearch


def _classes(n: int, d: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (10, d))
    y = rng.integers(0, 10, n)
    return (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y


def test_exact_search_returns_what_scikit_learn_returns() -> None:
    X, _ = _classes(600)
    search = NeighbourSearch(X, exact_below=10_000)
    assert search.exact
    full = search.query(None, 7)
    expected = NearestNeighbors(n_neighbors=8).fit(X).kneighbors(X)[1][:, 1:]
    assert np.array_equal(full, expected)
    members = np.arange(0, 600, 3)
    rest = np.setdiff1d(np.arange(600), members)
    found = search.query(members, 5, exclude=members)
    expected = rest[NearestNeighbors(n_neighbors=5).fit(X[rest]).kneighbors(X[members])[1]]
    assert np.array_equal(found, expected)


def test_cosine_search_compares_directions() -> None:
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(200, 8))
    X = directions * rng.uniform(0.1, 100, (200, 1))  # lengths differ by a thousand times
    found = NeighbourSearch(X, metric="cosine").query(None, 3)
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    expected = NearestNeighbors(n_neighbors=4).fit(unit).kneighbors(unit)[1][:, 1:]
    assert np.array_equal(found, expected)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_the_index_keeps_the_label_votes_of_exact_search(metric: neighbours.Metric) -> None:
    pytest.importorskip("faiss")
    X, y = _classes(30_000, d=128)
    flipped = np.random.default_rng(2).choice(y.size, 600, replace=False)
    y[flipped] = (y[flipped] + 1) % 10
    exact = NeighbourSearch(X, metric=metric, exact_below=10**9).query(None, 10)
    index = NeighbourSearch(X, metric=metric, exact_below=0)
    assert not index.exact
    approx = index.query(None, 10)
    assert approx.shape == (30_000, 10) and approx.min() >= 0
    assert not (approx == np.arange(30_000)[:, None]).any(), "a sample is not its own neighbour"
    vote_exact = (y[exact] != y[:, None]).mean(axis=1) > 0.5
    vote_approx = (y[approx] != y[:, None]).mean(axis=1) > 0.5
    assert np.mean(vote_exact == vote_approx) >= 0.999
    assert vote_approx[flipped].mean() >= 0.99 and vote_approx.sum() <= 620


def test_the_index_never_returns_an_excluded_row_and_looks_further_when_its_cells_are_excluded() -> None:
    pytest.importorskip("faiss")
    X, y = _classes(25_000)
    index = NeighbourSearch(X, exact_below=0)
    members = np.flatnonzero(y == 3)  # a whole class: its own cells hold nothing admissible
    found = index.query(members[:500], 10, exclude=members)
    assert found.shape == (500, 10) and found.min() >= 0
    assert not np.isin(found, members).any()
    # the admissible neighbours it found are as near as exact search's, within a few percent
    rest = np.setdiff1d(np.arange(y.size), members)
    exact = rest[NearestNeighbors(n_neighbors=10).fit(X[rest]).kneighbors(X[members[:500]])[1]]

    def mean_distance(found: np.ndarray) -> float:
        return float(np.linalg.norm(X[found] - X[members[:500], None], axis=2).mean())

    assert mean_distance(found) <= 1.05 * mean_distance(exact)


def test_a_scan_on_the_index_flags_what_the_exact_scan_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted label noise and a backdoor cluster in user embeddings: F1 within 0.02 of exact search."""
    pytest.importorskip("faiss")
    from poisonlab import metrics
    from poisonlab.data.dataset import Dataset
    from poisonlab.defenses.scan import scan

    rng = np.random.default_rng(4)
    n, d = 6_000, 64
    X, y = _classes(n, d=d, seed=4)
    truth = np.zeros(n, dtype=bool)
    flipped = rng.choice(n, n // 50, replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 10, flipped.size)) % 10
    truth[flipped] = True
    others = np.setdiff1d(np.flatnonzero(y != 0), flipped)
    moved = rng.choice(others, n // 50, replace=False)
    X[moved, :6] += 6.0
    y[moved] = 0
    truth[moved] = True
    data = Dataset.from_arrays(np.zeros((n, 1), np.float32), y, name="planted")
    f1 = {}
    for name, limit in (("exact", 10**9), ("index", 0)):
        monkeypatch.setattr(neighbours, "EXACT_BELOW", limit)
        report = scan(data, features=X)
        f1[name] = metrics.detection_scores(truth, report.flags, report.scores)["f1"]
    assert f1["exact"] >= 0.9, f1
    assert abs(f1["index"] - f1["exact"]) <= 0.02, f1


def test_scan_says_how_to_get_the_index_when_a_large_set_is_searched_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from poisonlab.cli import main

    X, y = _classes(400, d=16)
    np.savez(tmp_path / "labels.npz", X=np.zeros((400, 1), np.float32), y=y)
    np.save(tmp_path / "emb.npy", X)
    argv = ["scan", str(tmp_path / "labels.npz"), "--features", str(tmp_path / "emb.npy")]
    monkeypatch.setattr(neighbours, "EXACT_BELOW", 100)
    monkeypatch.setattr(neighbours, "have_faiss", lambda: False)
    assert main(argv) in (0, 1)
    assert "pip install 'poisonlab[scale]'" in capsys.readouterr().out
    monkeypatch.setattr(neighbours, "EXACT_BELOW", 1_000)  # small enough for exact search: no note
    assert main(argv) in (0, 1)
    assert "poisonlab[scale]" not in capsys.readouterr().out
