"""The pieces that keep a scan of a million embeddings in memory and time give what the small path gives."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler

from poisonlab.data.dataset import Dataset
from poisonlab.data.scaling import standardise
from poisonlab.defenses.evidence import _stratified_draw, compute_evidence


def test_blockwise_standardising_matches_scikit_learn_in_the_arrays_own_dtype() -> None:
    rng = np.random.default_rng(0)
    X = (rng.normal(3.0, 5.0, (1_000, 12)) * np.arange(1, 13)).astype(np.float32)
    X[:, 4] = 7.0  # a constant column is centred and left unscaled
    blockwise = standardise(X, block=97, whole_below=0)
    assert blockwise.dtype == np.float32
    reference = StandardScaler().fit_transform(X.astype(np.float64))
    assert np.allclose(blockwise, reference, atol=1e-5)
    assert np.array_equal(blockwise[:, 4], np.zeros(1_000, dtype=np.float32))
    # a small array goes through scikit-learn itself
    assert np.array_equal(standardise(X), StandardScaler().fit_transform(X))


def test_the_cross_fitting_draw_keeps_every_class_and_the_proportions() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(9_000, int), np.ones(900, int), np.full(60, 2)]
    rows = rng.permutation(y.size)
    drawn = _stratified_draw(rows, y, 2_000, seed=0)
    counts = np.bincount(y[drawn], minlength=3)
    assert counts[2] == 60, "a class smaller than 100 keeps every row"
    assert counts[1] == 181 and counts[0] == 1_807  # in proportion, 100 at the least
    assert np.unique(drawn).size == drawn.size and np.isin(drawn, rows).all()
    assert np.array_equal(_stratified_draw(rows, y, 20_000, seed=0), rows)  # under the bound: every row


def test_cross_fitting_on_a_draw_gives_the_probabilities_of_cross_fitting_on_every_row() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 2, (4, 16))
    y = rng.integers(0, 4, 3_000)
    X = (centres[y] + rng.normal(0, 1, (3_000, 16))).astype(np.float32)
    data = Dataset.from_arrays(np.zeros((3_000, 1), np.float32), y, name="blobs")
    every = compute_evidence(data, features=X, losses=False).pred_probs
    drawn = compute_evidence(data, features=X, losses=False, fit_rows=600).pred_probs
    assert every is not None and drawn is not None
    assert np.mean(every.argmax(axis=1) == drawn.argmax(axis=1)) >= 0.98
    assert np.abs(every - drawn).mean() <= 0.03
