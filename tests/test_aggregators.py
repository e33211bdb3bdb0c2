"""Robust aggregation rules: hand-computed cases, naive references, robustness and input checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonlab.errors import ConfigError, IncompatibleError, UnknownNameError
from poisonlab.federated import (
    AGGREGATORS,
    AggregationResult,
    bulyan,
    check_preconditions,
    coordinate_median,
    fedavg,
    fltrust,
    krum,
    multi_krum,
    norm_clipping,
    pairwise_sq_distances,
    trimmed_mean,
)
from poisonlab.federated.aggregators import _mean_closest_to_median

# Seven 2-D points, f = 2, so Krum sums the n − f − 2 = 3 nearest squared distances.
# Rows 0 and 6 are the outliers.
#
#   row   point      squared distances to the other rows            3 nearest   score
#   0     ( 8,  8)   1:128  2:113  3:100  4:162  5: 85  6:298     85+100+113    298
#   1     ( 0,  0)   0:128  2:  1  3:  4  4:  2  5:  5  6:106      1+2+4          7
#   2     ( 1,  0)   0:113  1:  1  3:  5  4:  5  5:  2  6:125      1+2+5          8
#   3     ( 0,  2)   0:100  1:  4  2:  5  4: 10  5:  5  6: 90      4+5+5         14
#   4     (-1, -1)   0:162  1:  2  2:  5  3: 10  5: 13  6:100      2+5+10        17
#   5     ( 2,  1)   0: 85  1:  5  2:  2  3:  5  4: 13  6:137      2+5+5         12
#   6     (-9,  5)   0:298  1:106  2:125  3: 90  4:100  5:137     90+100+106    296
#
# Krum picks row 1; Multi-Krum with m = 3 takes rows 1, 2, 5 (scores 7, 8, 12) and
# returns their mean ((0+1+2)/3, (0+0+1)/3) = (1, 1/3).
SEVEN = np.array([[8, 8], [0, 0], [1, 0], [0, 2], [-1, -1], [2, 1], [-9, 5]], dtype=np.float32)


# --------------------------------------------------------------------------- naive references


def naive_sq_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise squared distances from explicit differences, in float64."""
    x = x.astype(np.float64)
    return np.array([[float(np.sum((a - b) ** 2)) for b in x] for a in x])


def naive_krum_pick(x: np.ndarray, rows: list[int], f: int) -> int:
    """Krum on ``x[rows]``, recomputing distances; at least one neighbour, as poisonlab does."""
    r = len(rows)
    k = min(max(r - f - 2, 1), r - 1)
    best, best_score = -1, math.inf
    for i in rows:
        dists = sorted(float(np.sum((x[i] - x[j]) ** 2)) for j in rows if j != i)
        score = sum(dists[:k])
        if score < best_score:  # strict: the first (lowest position) wins a tie
            best, best_score = i, score
    return best


def naive_bulyan(x: np.ndarray, f: int) -> tuple[list[int], np.ndarray]:
    """Bulyan written out: Krum again and again on what is left, then β closest to the median."""
    x = x.astype(np.float64)
    n = len(x)
    theta, beta = n - 2 * f, n - 4 * f
    remaining, selection = list(range(n)), []
    while len(selection) < theta:
        pick = naive_krum_pick(x, remaining, f)
        selection.append(pick)
        remaining.remove(pick)
    chosen = x[selection]
    med = np.median(chosen, axis=0)
    closest = np.argsort(np.abs(chosen - med), axis=0, kind="stable")[:beta]
    return selection, np.take_along_axis(chosen, closest, axis=0).mean(axis=0)


# --------------------------------------------------------------------------- hand-computed cases


def test_krum_on_seven_points_by_hand():
    result = krum(SEVEN, f=2)
    assert result.selected.tolist() == [1]
    np.testing.assert_array_equal(result.update, [0, 0])
    assert result.weights.tolist() == [0, 1, 0, 0, 0, 0, 0]


def test_multi_krum_on_seven_points_by_hand():
    result = multi_krum(SEVEN, f=2, m=3)
    assert result.selected.tolist() == [1, 2, 5]
    np.testing.assert_allclose(result.update, [1, 1 / 3], rtol=1e-6)
    # default m = n − f = 5: the five inner points, best score first
    assert multi_krum(SEVEN, f=2).selected.tolist() == [1, 2, 5, 3, 4]


def test_distances_on_seven_points_by_hand():
    dist = pairwise_sq_distances(SEVEN)
    assert dist[1].tolist() == [128, 0, 1, 4, 2, 5, 106]
    assert dist[0, 6] == 298
    np.testing.assert_array_equal(dist, naive_sq_distances(SEVEN))


def test_trimmed_mean_and_median_by_hand():
    # Column 0 holds 1, 2, 3, 4, 100 and column 1 holds -50, 0, 1, 2, 3 (rows shuffled).
    x = np.array([[3, 2], [100, -50], [1, 0], [4, 1], [2, 3]], dtype=np.float32)
    # beta = 0.2 trims floor(0.2·5) = 1 per side: mean(2, 3, 4) = 3 and mean(0, 1, 2) = 1.
    np.testing.assert_array_equal(trimmed_mean(x, beta=0.2).update, [3, 1])
    # beta = 0.4 trims 2 per side, leaving the median.
    np.testing.assert_array_equal(trimmed_mean(x, beta=0.4).update, [3, 1])
    # beta = 0 is the plain mean: (110/5, -44/5).
    np.testing.assert_allclose(trimmed_mean(x, beta=0).update, [22, -8.8], rtol=1e-6)
    np.testing.assert_array_equal(coordinate_median(x).update, [3, 1])
    # Even n: the mean of the two middle values (rows 1..4: column 0 is 100, 1, 4, 2 -> 3).
    np.testing.assert_array_equal(coordinate_median(x[1:]).update, [3, 0.5])


def test_trimmed_mean_count_forgives_float_products():
    # 0.29 * 100 = 28.999999999999996 in floating point; it must still trim 29 per side.
    x = np.arange(100, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(trimmed_mean(x, beta=0.29).update, [np.mean(np.arange(29, 71))])


def test_mean_closest_to_median_by_hand():
    block = np.array(
        [
            [1, 2, 3, 10, 11],  # median 3: closest 3, 2, 1 -> 2
            [0, 4, 5, 6, 100],  # median 5: closest 5, 4, 6 -> 5
            [-9, 7, 8, 9, 30],  # median 8: closest 8, 7, 9 -> 8
            [0, 1, 2, 2.5, 3],  # median 2: closest 2, 2.5, 1 or 3 (tie at 1: the lower window) -> 5.5/3
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(_mean_closest_to_median(block, 3), [2, 5, 8, 5.5 / 3])


@pytest.mark.parametrize(("m", "beta"), [(5, 3), (6, 2), (7, 3), (60, 20), (11, 11), (9, 1)])
def test_mean_closest_to_median_matches_argsort_reference(m, beta):
    block = np.sort(np.random.default_rng(m * 100 + beta).standard_normal((500, m)), axis=1)
    med = np.median(block, axis=1, keepdims=True)
    closest = np.argsort(np.abs(block - med), axis=1, kind="stable")[:, :beta]
    expected = np.take_along_axis(block, closest, axis=1).mean(axis=1)
    np.testing.assert_allclose(_mean_closest_to_median(block, beta), expected, rtol=1e-12, atol=1e-12)


def test_norm_clipping_by_hand():
    x = np.array([[3, 4], [0, 1], [6, 8]], dtype=np.float32)  # norms 5, 1, 10
    # max_norm 2: (1.2, 1.6), (0, 1), (1.2, 1.6) -> mean (0.8, 1.4)
    result = norm_clipping(x, max_norm=2)
    np.testing.assert_allclose(result.update, [0.8, 1.4], rtol=1e-6)
    np.testing.assert_allclose(result.weights, [2 / 5 / 3, 1 / 3, 2 / 10 / 3])
    # default: the median norm, 5: (3, 4), (0, 1), (3, 4) -> mean (2, 3)
    np.testing.assert_allclose(norm_clipping(x).update, [2, 3], rtol=1e-6)


def test_fedavg_by_hand():
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    np.testing.assert_array_equal(fedavg(x).update, [2, 3])
    result = fedavg(x, weights=np.array([10, 30]))
    np.testing.assert_array_equal(result.update, [2.5, 3.5])
    np.testing.assert_array_equal(result.weights, [0.25, 0.75])


def test_fltrust_by_hand():
    server = np.array([1, 0], dtype=np.float32)
    x = np.array([[2, 0], [-3, 0], [1, 1]], dtype=np.float32)
    # cosines 1, -1, 1/√2 -> trust 1, 0, 1/√2; rescaled to ‖server‖ = 1: (1, 0), -, (1/√2, 1/√2).
    # Aggregate: (1·(1, 0) + (1/√2)·(1/√2, 1/√2)) / (1 + 1/√2) = (1.5, 0.5) / (1 + 1/√2).
    result = fltrust(x, server)
    s = 1 + 1 / math.sqrt(2)
    np.testing.assert_allclose(result.update, [1.5 / s, 0.5 / s], rtol=1e-6)
    assert result.weights[1] == 0  # points opposite the server update: no weight at all
    np.testing.assert_allclose(result.weights, [1 / 2 / s, 0, 1 / math.sqrt(2) / math.sqrt(2) / s])


def test_fltrust_ignores_size_and_opposite_updates():
    rng = np.random.default_rng(3)
    server = rng.standard_normal(50).astype(np.float32)
    honest = server + 0.5 * rng.standard_normal((6, 50)).astype(np.float32)
    base = fltrust(honest, server).update
    # An opposite update, however large, gets weight 0 and changes nothing.
    attacked = np.vstack([honest, -1e6 * server])
    result = fltrust(attacked, server)
    assert result.weights[-1] == 0
    np.testing.assert_allclose(result.update, base, rtol=1e-6)
    # Rescaling one honest update does not change its influence.
    scaled = honest.copy()
    scaled[0] *= 1000
    np.testing.assert_allclose(fltrust(scaled, server).update, base, rtol=1e-5)
    # The aggregate is a convex combination of vectors of norm ‖server‖.
    assert np.linalg.norm(result.update) <= np.linalg.norm(server) * (1 + 1e-6)


def test_fltrust_with_no_trust_returns_zero():
    server = np.array([1, 1], dtype=np.float32)
    x = np.array([[-1, -1], [-2, 0], [0, 0]], dtype=np.float32)  # cosines -1, -1/√2 and 0 (zero update)
    result = fltrust(x, server)
    np.testing.assert_array_equal(result.update, [0, 0])
    np.testing.assert_array_equal(result.weights, [0, 0, 0])
    np.testing.assert_array_equal(fltrust(x, np.zeros(2)).update, [0, 0])


# --------------------------------------------------------------------------- Bulyan against a naive reference


@pytest.mark.parametrize(
    ("n", "f", "d", "seed"), [(7, 1, 5, 0), (11, 2, 40, 1), (15, 3, 30, 2), (20, 4, 25, 3)]
)
def test_bulyan_matches_naive_reference(n, f, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:f] += rng.uniform(2, 5, size=(f, 1)).astype(np.float32)  # some outliers to make the order matter
    selection, expected = naive_bulyan(x, f)
    result = bulyan(x, f)
    assert result.selected.tolist() == selection
    assert result.weights is None
    np.testing.assert_allclose(result.update, expected, rtol=1e-6, atol=1e-6)


def test_coordinate_rules_across_blocks_and_workers():
    # d spans three 4096-column blocks, split over worker threads.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((11, 2 * 4096 + 123)).astype(np.float32)
    np.testing.assert_array_equal(coordinate_median(x).update, np.median(x, axis=0))
    s = np.sort(x.astype(np.float64), axis=0)
    np.testing.assert_allclose(trimmed_mean(x, beta=0.2).update, s[2:-2].mean(axis=0), rtol=1e-6)
    selection, expected = naive_bulyan(x, 2)
    result = bulyan(x, 2)
    assert result.selected.tolist() == selection
    np.testing.assert_allclose(result.update, expected, rtol=1e-6, atol=1e-6)


def test_bulyan_with_f_zero_is_the_mean():
    x = np.random.default_rng(4).standard_normal((5, 8)).astype(np.float32)
    result = bulyan(x, 0)
    assert sorted(result.selected.tolist()) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(result.update, x.mean(axis=0), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- robustness


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    f=st.integers(1, 3),
    sign=st.sampled_from([1.0, -1.0]),
    spread=st.booleans(),
)
def test_huge_byzantine_updates_are_contained(seed, f, sign, spread):
    rng = np.random.default_rng(seed)
    n, d = 4 * f + 3, 30
    x = rng.standard_normal((n, d)).astype(np.float32)
    bad = rng.choice(n, size=f, replace=False)
    x[bad] = sign * 1e6
    if spread:  # colluding but not identical
        x[bad] *= rng.uniform(0.5, 2, size=(f, 1)).astype(np.float32)
    honest = np.delete(x, bad, axis=0)
    low, high = honest.min(axis=0), honest.max(axis=0)

    results = {
        "median": coordinate_median(x),
        "trimmed_mean": trimmed_mean(x, beta=f / n),
        "krum": krum(x, f),
        "multi_krum": multi_krum(x, f),
        "bulyan": bulyan(x, f),
    }
    for name, result in results.items():
        inside = (result.update >= low) & (result.update <= high)
        assert inside.all(), name
    for name in ("krum", "multi_krum"):
        assert not set(results[name].selected.tolist()) & set(bad.tolist()), name
    # Bulyan's last Krum round runs on 2f + 1 updates with f − 1 neighbours, below Krum's own
    # n >= 2f + 3: f identical colluders are then each other's neighbours at distance 0 and one
    # of them is selected (seed 0, f = 2 does it). Never more than one, and the trimmed mean
    # around the median keeps it out of the output (checked above).
    assert len(set(results["bulyan"].selected.tolist()) & set(bad.tolist())) <= 1
    # FedAvg is dragged out of the honest range in every coordinate (by about f·10⁶/n).
    mean = fedavg(x).update
    assert ((mean < low) | (mean > high)).all()
    # Norm clipping at the median norm bounds the damage instead: honest norms are about √30 ≈ 5.5.
    assert np.linalg.norm(norm_clipping(x).update) <= np.linalg.norm(honest, axis=1).max()


def test_bulyan_last_round_admits_one_of_identical_colluders():
    # Documented limitation: the last Krum round sees 2f + 1 = 5 updates and sums f − 1 = 1
    # neighbour, so the two identical colluders (rows 0 and 6) score 0 and row 0 is picked last.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 30)).astype(np.float32)
    x[[0, 6]] = 1e6
    result = bulyan(x, 2)
    assert result.selected.tolist()[-1] == 0
    assert not set(result.selected.tolist()[:-1]) & {0, 6}
    honest = np.delete(x, [0, 6], axis=0)
    assert ((result.update >= honest.min(axis=0)) & (result.update <= honest.max(axis=0))).all()


def test_krum_survives_float32_overflow_in_the_gram_product():
    # 1e20² overflows float32 (max ≈ 3.4e38): the product is redone in float64.
    x = np.random.default_rng(5).standard_normal((11, 100)).astype(np.float32)
    x[[2, 7]] = 1e20
    dist = pairwise_sq_distances(x)
    assert np.isfinite(dist).all()
    assert dist[2, 0] == pytest.approx(100 * 1e40, rel=1e-3)
    assert krum(x, 2).selected[0] not in (2, 7)
    low, high = np.delete(x, [2, 7], axis=0).min(axis=0), np.delete(x, [2, 7], axis=0).max(axis=0)
    update = bulyan(x, 2).update
    assert ((update >= low) & (update <= high)).all()


# --------------------------------------------------------------------------- distances and precision


def test_duplicate_updates_are_at_distance_exactly_zero():
    rng = np.random.default_rng(6)
    x = (1000 * rng.standard_normal((30, 10_007))).astype(np.float32)  # 3 Gram blocks, large norms
    x[17] = x[5]
    x[12] = x[0]
    x[29] = x[0]
    dist = pairwise_sq_distances(x)
    assert dist[5, 17] == 0 and dist[17, 5] == 0
    assert dist[0, 12] == dist[0, 29] == dist[12, 29] == 0
    assert not np.isnan(dist).any()
    assert (dist >= 0).all()
    assert (np.diag(dist) == 0).all()
    np.testing.assert_array_equal(dist, dist.T)


def test_krum_on_duplicates_picks_the_first_copy():
    x = np.random.default_rng(7).standard_normal((7, 20)).astype(np.float32)
    x[[1, 3, 4, 6]] = x[3]  # four copies: each has its three nearest neighbours at distance 0
    result = krum(x, 2)
    assert result.selected.tolist() == [1]


@pytest.mark.parametrize(
    ("offset", "scale"),
    [
        (0.0, 1.0),
        # A large common part, as when full model weights are aggregated: without centring, a
        # float32 Gram product got every distance wrong here (relative error ~1.5e3 measured),
        # with centring the error is ~1.5e-7.
        (100.0, 1e-3),
        (1.0, 1e-4),
    ],
)
def test_distances_and_krum_match_a_float64_reference(offset, scale):
    rng = np.random.default_rng(8)
    n, f, d = 20, 4, 10_000  # three Gram blocks
    x = (offset + scale * rng.standard_normal((n, d))).astype(np.float32)
    x[:f] += np.float32(3 * scale)  # shifted outliers
    reference = naive_sq_distances(x)
    dist = pairwise_sq_distances(x)
    off = ~np.eye(n, dtype=bool)
    # Measured relative error of each distance: at most 2.3e-5, for two shifted outliers in the
    # (100, 1e-3) case, whose distance (0.02) is 1/5 of their distances to the centre (0.11);
    # the error scales with the latter, as documented in pairwise_sq_distances.
    assert (np.abs(dist - reference)[off] <= 1e-4 * reference[off]).all()
    assert krum(x, f).selected[0] == naive_krum_pick(x, list(range(n)), f)
    others = reference + np.diag(np.full(n, np.inf))
    ref_scores = np.sort(others, axis=1)[:, : n - f - 2].sum(axis=1)
    assert multi_krum(x, f).selected.tolist() == np.argsort(ref_scores, kind="stable")[: n - f].tolist()
    assert bulyan(x, f).selected.tolist() == naive_bulyan(x, f)[0]


# --------------------------------------------------------------------------- API, dtypes, registry

PARAMS: dict[str, dict[str, object]] = {
    "fedavg": {},
    "median": {},
    "trimmed_mean": {"beta": 0.2},
    "krum": {"f": 2},
    "multi_krum": {"f": 2, "m": 4},
    "bulyan": {"f": 2},
    "norm_clipping": {},
    "fltrust": {},
}


def _call(name: str, x: np.ndarray) -> AggregationResult:
    params = dict(PARAMS[name])
    entry = AGGREGATORS.get(name)
    if entry.tag("needs_server_update"):
        params["server_update"] = x.mean(axis=0)
    return entry.factory(x, **params)


def test_registry_names_and_tags():
    assert set(AGGREGATORS.names()) == set(PARAMS)
    assert AGGREGATORS.get("median").factory is coordinate_median
    assert {e.name for e in AGGREGATORS.where(needs_f=True)} == {"krum", "multi_krum", "bulyan"}
    assert {e.name for e in AGGREGATORS.where(selects_clients=True)} == {"krum", "multi_krum", "bulyan"}
    assert [e.name for e in AGGREGATORS.where(needs_server_update=True)] == ["fltrust"]
    assert [e.name for e in AGGREGATORS.where(trims=True)] == ["trimmed_mean"]
    assert repr(AGGREGATORS.get("bulyan").tag("min_clients")) == "n >= 4f + 3"
    assert all("\n" not in e.description for e in AGGREGATORS)


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_rule_returns_float32_and_consistent_weights(name, dtype):
    x = np.random.default_rng(9).standard_normal((11, 33)).astype(dtype)
    before = x.copy()
    result = _call(name, x)
    assert isinstance(result, AggregationResult)
    assert result.update.dtype == np.float32 and result.update.shape == (33,)
    np.testing.assert_array_equal(x, before)  # the input is not modified
    if result.weights is not None:
        np.testing.assert_allclose(result.update, result.weights @ x, rtol=1e-5, atol=1e-6)
    if result.selected is not None:
        assert result.selected.dtype == np.int64


def test_results_are_frozen_and_do_not_alias_the_input():
    x = np.random.default_rng(10).standard_normal((7, 5)).astype(np.float32)
    result = krum(x, 2)
    picked = x[result.selected[0]].copy()
    x[:] = 0
    np.testing.assert_array_equal(result.update, picked)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.update = picked  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        result.update[0] = 1


def test_integer_updates_are_accepted():
    x = np.array([[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(coordinate_median(x).update, [3, 4])


# --------------------------------------------------------------------------- preconditions and input errors


def _message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: krum(np.zeros((10, 3)), 4), "krum needs n >= 2f + 3 clients, got n=10, f=4"),
        (lambda: multi_krum(np.zeros((8, 3)), 3), "multi_krum needs n >= 2f + 3 clients, got n=8, f=3"),
        (lambda: bulyan(np.zeros((10, 3)), 2), "bulyan needs n >= 4f + 3 clients, got n=10, f=2"),
        (
            lambda: check_preconditions("krum", 10, 4),
            "krum needs n >= 2f + 3 clients, got n=10, f=4; "
            "rules that tolerate f=4 of n=10: median, trimmed_mean",
        ),
        (
            lambda: check_preconditions("bulyan", 14, 3),
            "bulyan needs n >= 4f + 3 clients, got n=14, f=3; rules that tolerate f=3 of n=14: "
            "median, trimmed_mean, krum, multi_krum",
        ),
        (lambda: check_preconditions("median", 4, 2), "median needs n >= 2f + 1 clients, got n=4, f=2"),
        (lambda: check_preconditions("fedavg", 5, 5), "fedavg: f must be < n, got n=5, f=5"),
        (lambda: check_preconditions("fltrust", 0, 0), "fltrust: n must be >= 1, got n=0"),
        (lambda: krum(np.zeros((10, 3)), -1), "krum: f must be >= 0, got f=-1"),
        (lambda: krum(np.zeros((10, 3)), 1.5), "krum: f must be an integer, got 1.5"),
        (lambda: krum(np.zeros((10, 3)), True), "krum: f must be an integer, got True"),
        (
            lambda: check_preconditions("trimmed_mean", 10, 2, beta=0.1),
            "trimmed_mean with beta=0.1 trims 1 per side, fewer than f=2",
        ),
        (
            lambda: trimmed_mean(np.zeros((4, 2)), 0.5),
            "trimmed_mean: beta must be a number in [0, 0.5), got 0.5",
        ),
        (
            lambda: trimmed_mean(np.zeros((4, 2)), -0.1),
            "trimmed_mean: beta must be a number in [0, 0.5), got -0.1",
        ),
        (lambda: multi_krum(np.zeros((7, 2)), 2, m=8), "multi_krum: m must be in [1, n], got m=8, n=7"),
        (lambda: multi_krum(np.zeros((7, 2)), 2, m=0), "multi_krum: m must be in [1, n], got m=0, n=7"),
        (
            lambda: krum(np.zeros(5), 0),
            "krum: updates must be a 2-D array (n clients, d parameters), got shape (5,)",
        ),
        (lambda: fedavg(np.zeros((0, 3))), "fedavg: needs at least one update, got n=0"),
        (lambda: fedavg(np.zeros((3, 0))), "fedavg: updates have no parameters (d=0)"),
        (lambda: coordinate_median(np.array([[1.0, np.nan]])), "median: updates contain NaN or inf"),
        (lambda: bulyan(np.full((7, 2), np.inf), 1), "bulyan: updates contain NaN or inf"),
        (
            lambda: coordinate_median(np.array([["a"]])),
            "median: updates must be real numbers, got dtype <U1",
        ),
        (
            lambda: fedavg(np.ones((2, 2)), weights=[1, 2, 3]),
            "fedavg: weights must have shape (2,), got (3,)",
        ),
        (
            lambda: fedavg(np.ones((2, 2)), weights=[0, 0]),
            "fedavg: weights must be finite, >= 0 and not all zero",
        ),
        (
            lambda: norm_clipping(np.ones((2, 2)), max_norm=0),
            "norm_clipping: max_norm must be a finite number > 0, got 0",
        ),
        (
            lambda: fltrust(np.ones((2, 3)), np.ones(2)),
            "fltrust: server_update must have shape (3,), got (2,)",
        ),
        (
            lambda: fltrust(np.ones((2, 2)), np.array([1, np.nan])),
            "fltrust: server_update contains NaN or inf",
        ),
    ],
)
def test_input_errors_have_one_clear_line(call, message):
    with pytest.raises(ConfigError) as excinfo:
        call()
    assert _message(excinfo) == message


def test_an_f_the_rule_cannot_tolerate_is_an_incompatibility():
    with pytest.raises(IncompatibleError):
        check_preconditions(AGGREGATORS.get("krum"), 10, 4)


def test_preconditions_that_hold():
    check_preconditions("krum", 7, 2)
    check_preconditions("multi_krum", 100, 48)
    check_preconditions("bulyan", 11, 2)
    check_preconditions("median", 5, 2)
    check_preconditions("trimmed_mean", 10, 2, beta=0.2)
    for name in ("fedavg", "norm_clipping", "fltrust"):  # no condition beyond 0 <= f < n
        check_preconditions(name, 10, 9)


def test_unknown_aggregator_name():
    with pytest.raises(UnknownNameError, match="unknown aggregator 'average'; known: fedavg, median"):
        check_preconditions("average", 10, 1)
