"""The stream gate and the online-learning poisoning simulation: rules, bars, quarantine, seeding."""

from __future__ import annotations

import numpy as np
import pytest

import poisonlab.stream as stream
from poisonlab.data import load_dataset, train_test_split
from poisonlab.errors import ConfigError, DataError, IncompatibleError, NotFittedError, UnknownNameError
from poisonlab.stream import BatchRecord, StreamGate, StreamResult, simulate_stream


@pytest.fixture(scope="module")
def digits():
    return train_test_split(load_dataset("digits"), random_state=0)


def _blobs(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian classes in 5-D."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 5, [8.0] * 5, [-8.0, 8.0, -8.0, 8.0, -8.0]])
    X = np.concatenate([rng.normal(c, 1.0, (n_per_class, 5)) for c in centres])
    y = np.repeat(np.arange(3), n_per_class)
    order = rng.permutation(len(y))
    return X[order], y[order]


# --------------------------------------------------------------------------- the gate


def test_gate_rejects_exactly_the_flipped_samples_of_a_mostly_clean_batch() -> None:
    X_seed, y_seed = _blobs(50, seed=0)
    gate = StreamGate().fit(X_seed, y_seed)
    assert gate.seed_suspicious_rate_ == 0.0 and gate.base_rate_ == pytest.approx(0.01)
    X, y = _blobs(17, seed=1)
    X, y = X[:50], y[:50].copy()
    y[[3, 30]] = (y[[3, 30]] + 1) % 3
    decision = gate.check(X, y)
    assert not decision.batch_rejected
    assert np.flatnonzero(decision.rejected).tolist() == [3, 30]
    assert decision.scores[[3, 30]].min() == 1.0 and np.delete(decision.scores, [3, 30]).max() == 0.0
    assert decision.n_rejected == 2 and decision.admitted.sum() == 48
    assert "2/50" in decision.reason


def test_a_batch_far_above_the_base_rate_is_rejected_whole_and_its_source_distrusted() -> None:
    X_seed, y_seed = _blobs(50, seed=0)
    gate = StreamGate(distrust_after=2).fit(X_seed, y_seed)
    X, y = _blobs(17, seed=2)
    X, y = X[:50], y[:50]
    flipped = y.copy()
    flipped[:12] = (flipped[:12] + 1) % 3
    for _ in range(2):
        decision = gate.check(X, flipped, source="crowd")
        assert decision.batch_rejected and decision.rejected.all()
        assert decision.p_value < 1e-3 and "batch rejected" in decision.reason
    assert gate.distrusted_ == {"crowd"} and gate.source_rejections_ == {"crowd": 2}
    # A clean batch from the distrusted source is quarantined; from another source admitted.
    later = gate.check(X, y, source="crowd")
    assert later.rejected.all() and "distrusted" in later.reason
    assert not gate.check(X, y, source="vendor").rejected.any()
    assert gate.source_batches_ == {"crowd": 3, "vendor": 1}


def test_admit_grows_the_history_and_the_cap_keeps_the_trusted_seed() -> None:
    X_seed, y_seed = _blobs(20, seed=0)
    gate = StreamGate(k=5, max_history=80).fit(X_seed, y_seed)
    X, y = _blobs(20, seed=3)
    gate.admit(X, y)
    assert len(gate.history_y_) == 80
    gate.admit(X[:10], y[:10])
    assert len(gate.history_y_) == 80
    np.testing.assert_array_equal(gate.history_y_[:60], y_seed)
    np.testing.assert_array_equal(gate.history_y_[-10:], y[:10])
    empty = gate.admit(X[:0], y[:0]).check(X[:0], y[:0])
    assert empty.rejected.shape == (0,) and not empty.batch_rejected


def test_gate_scores_images_and_validates() -> None:
    with pytest.raises(ConfigError, match="k must be"):
        StreamGate(k=0).fit(*_blobs(5, seed=0))
    for method in ("check", "admit", "score_samples"):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(StreamGate(), method)(*_blobs(5, seed=0))
    gate = StreamGate().fit(*_blobs(10, seed=0))
    with pytest.raises(DataError, match="features"):
        gate.check(np.zeros((2, 4)), np.zeros(2, dtype=int))
    with pytest.raises(DataError, match="rows"):
        gate.check(np.zeros((2, 5)), np.zeros(3, dtype=int))
    images = load_dataset("digits").subset(np.arange(300))
    scores = StreamGate().fit(images.X[:200], images.y[:200]).score_samples(images.X[200:], images.y[200:])
    shuffled = (
        StreamGate()
        .fit(images.X[:200], images.y[:200])
        .score_samples(images.X[200:], (images.y[200:] + 1) % 10)
    )
    assert scores.mean() < 0.2 < 0.8 < shuffled.mean()


def test_a_batch_is_checked_in_milliseconds_and_check_leaves_the_history_alone(digits) -> None:
    import time

    train, _ = digits
    gate = StreamGate().fit(train.X[:200], train.y[:200]).admit(train.X[200:1200], train.y[200:1200])
    before = gate.history_X_.copy()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        gate.check(train.X[1200:1250], train.y[1200:1250], source="s")
        times.append(time.perf_counter() - start)
    assert float(np.median(times)) < 0.05  # measured ~1 ms on a shared two-core machine
    np.testing.assert_array_equal(gate.history_X_, before)


# --------------------------------------------------------------------------- the simulation


def test_bars_backdoor_lands_without_the_gate_and_not_with_it(digits) -> None:
    train, test = digits
    open_ = simulate_stream(train, test, gate=False, seed=0)
    gated = simulate_stream(train, test, gate=True, seed=0)
    assert open_.asr > 0.9  # measured 1.00
    assert gated.asr < 0.05  # measured 0.00
    assert open_.n_poison_admitted == open_.n_poison == round(0.1 * open_.n_stream)
    assert gated.n_poison_admitted == 0
    assert open_.accuracy - gated.accuracy < 0.04  # measured 0.96 vs 0.95
    assert gated.accuracy > 0.9


def test_blended_is_stopped_too(digits) -> None:
    train, test = digits
    assert simulate_stream(train, test, attack="blended", gate=False, seed=1).asr > 0.9  # 0.99
    assert simulate_stream(train, test, attack="blended", gate=True, seed=1).asr < 0.05  # 0.00


def test_quarantine_is_returned_and_totals_add_up(digits) -> None:
    train, test = digits
    gate = StreamGate()
    seen: list[BatchRecord] = []
    result = simulate_stream(train, test, gate=gate, seed=0, on_batch=seen.append)
    assert isinstance(result, StreamResult) and list(result.records) == seen
    n_rejected = sum(r.n_rejected for r in result.records)
    assert n_rejected == len(result.quarantined) == len(result.quarantined_source) > 0
    assert result.quarantine is not None and len(result.quarantine) == n_rejected
    np.testing.assert_array_equal(result.quarantine.ids, train.ids[result.quarantined])
    np.testing.assert_array_equal(result.quarantine.source, result.quarantined_source)
    assert set(result.poison_index) <= set(result.quarantined)
    # the quarantine holds what the gate received: the poisons are relabelled to the target
    is_poison = np.isin(result.quarantined, result.poison_index)
    assert (result.quarantine.y[is_poison] == 0).all()
    assert result.n_clean_admitted + result.n_clean_rejected + result.n_poison == result.n_stream
    assert result.n_poison_rejected == result.n_poison
    assert sum(r.n for r in result.records) == result.n_stream == len(train) - 200
    assert all(r.n_poison == 0 for r in result.records if r.source != "crowd")
    assert {r.source for r in result.records} == {"vendor-a", "vendor-b", "crowd"}
    assert gate.distrusted_ == {"crowd"}
    measured = [r for r in result.records if r.accuracy is not None]
    assert [r.step for r in measured] == [5, 10, 15, 20, 23]


def test_same_seed_same_records_other_seed_other_stream(digits) -> None:
    train, test = digits
    small = train.subset(np.arange(500))
    a = simulate_stream(small, test, trusted=100, seed=3)
    b = simulate_stream(small, test, trusted=100, seed=3)
    c = simulate_stream(small, test, trusted=100, seed=4)
    assert a.records == b.records and (a.accuracy, a.asr) == (b.accuracy, b.asr)
    np.testing.assert_array_equal(a.quarantined, b.quarantined)
    np.testing.assert_array_equal(a.poison_index, b.poison_index)
    assert not np.array_equal(a.poison_index, c.poison_index)


@pytest.mark.parametrize("learner", ["mlp", "mlp_sk", "cnn"])
def test_every_learner_runs_and_is_seeded(digits, learner, single_threaded) -> None:
    train, test = digits
    small = train.subset(np.arange(400))
    a = simulate_stream(small, test, learner=learner, trusted=100, gate=False, epochs_per_batch=2, seed=0)
    b = simulate_stream(small, test, learner=learner, trusted=100, gate=False, epochs_per_batch=2, seed=0)
    assert a.records == b.records
    assert a.accuracy > 0.6 and a.n_poison_admitted == a.n_poison == 30


def test_no_poison_and_tabular_streams(digits) -> None:
    train, test = digits
    clean = simulate_stream(train, test, poison_share=0.0, seed=0)
    assert clean.n_poison == 0 and clean.asr < 0.1 and clean.accuracy > 0.9
    # without poison the gate rejects few clean samples and no whole batch
    assert clean.n_clean_rejected < 0.05 * clean.n_stream
    assert not any(r.batch_rejected for r in clean.records)
    tab_train, tab_test = train_test_split(
        load_dataset("synthetic", n_samples=600, n_features=8, n_informative=4, n_classes=3, class_sep=2.0)
    )
    result = simulate_stream(tab_train, tab_test, attack="feature_trigger", trusted=100, seed=0)
    assert result.n_poison == round(0.1 * result.n_stream)
    assert result.n_poison_admitted < result.n_poison


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poison_share": 1.0}, "poison_share must lie in"),
        ({"poison_share": -0.1}, "poison_share must lie in"),
        ({"poison_share": 0.9}, "poisoned sources send only"),
        ({"trusted": 10_000}, "trusted"),
        ({"poisoned_sources": ("nobody",)}, "poisoned source 'nobody'"),
        ({"sources": ("a", "a"), "poisoned_sources": ("a",)}, "distinct"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"epochs_per_batch": 0}, "epochs_per_batch must be"),
        ({"target": 42}, "target class 42"),
        ({"gate": "yes"}, "gate must be"),
    ],
)
def test_invalid_settings_fail_in_one_line(digits, kwargs, message) -> None:
    train, test = digits
    with pytest.raises(ConfigError, match=message) as info:
        simulate_stream(train, test, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"learner": "xgboost"}, UnknownNameError, "unknown learner 'xgboost'; known: sgd, mlp_sk, mlp, cnn"),
        ({"attack": "trojan"}, UnknownNameError, "unknown attack 'trojan'; known: "),
        (
            {"attack": "label_flip"},
            IncompatibleError,
            "attack 'label_flip' has backdoor False, so it cannot work with the stream on 'digits' "
            "(image data), which plants a backdoor; attacks that would work: badnets, blended",
        ),
        (
            {"attack": "feature_trigger"},
            IncompatibleError,
            "attack 'feature_trigger' is for tabular data, so it cannot work with the stream on 'digits' "
            "(image data), which plants a backdoor; attacks that would work: badnets, blended",
        ),
        ({"learner": object()}, ConfigError, "learner must be a name (sgd, mlp_sk, mlp, cnn) or an object"),
    ],
)
def test_names_resolve_through_the_registries_and_misfits_are_refused_in_one_line(
    digits, kwargs, error, message
) -> None:
    train, test = digits
    with pytest.raises(error) as info:
        simulate_stream(train, test, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_tabular_data_refuses_the_cnn_and_image_backdoors() -> None:
    tab_train, tab_test = train_test_split(load_dataset("wine"), random_state=0)
    with pytest.raises(IncompatibleError) as info:
        simulate_stream(tab_train, tab_test, attack="badnets", trusted=50, batch_size=10)
    assert str(info.value) == (
        "attack 'badnets' is for image data, so it cannot work with the stream on 'wine' (tabular data), "
        "which plants a backdoor; attacks that would work: feature_trigger"
    )
    with pytest.raises(
        IncompatibleError, match=r"learner 'cnn' is for image data.*would work: sgd, mlp_sk, mlp$"
    ):
        simulate_stream(tab_train, tab_test, attack="feature_trigger", learner="cnn", trusted=50)


def test_a_learner_object_is_used_as_given(digits) -> None:
    from poisonlab.stream.learners import SGDLearner

    train, test = digits
    small = train.subset(np.arange(400))
    by_name = simulate_stream(small, test, learner="sgd", trusted=100, gate=False, seed=2)
    given = simulate_stream(small, test, learner=SGDLearner(random_state=2), trusted=100, gate=False, seed=2)
    assert by_name.records == given.records


def test_regression_data_is_refused() -> None:
    data = load_dataset("synthetic_regression", n_samples=200, n_features=8, n_informative=8)
    train, test = train_test_split(data)
    with pytest.raises(ConfigError, match="classification"):
        simulate_stream(train, test)


def test_the_trusted_seed_must_leave_a_stream(digits) -> None:
    train, test = digits
    with pytest.raises(ConfigError, match="must be smaller than"):
        simulate_stream(train, test, trusted=len(train))


def test_public_names_resolve() -> None:
    for name in stream.__all__:
        assert getattr(stream, name) is not None
