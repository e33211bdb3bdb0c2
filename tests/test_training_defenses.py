"""Training-side defenses: DPA's certificate (sound and tight under real retraining), bagging's bound,
DP-SGD's accounting, Anti-Backdoor Learning, synthesised poisons, and the runner and CLI around them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from poisonlab.cli import main
from poisonlab.data import load_dataset
from poisonlab.data.dataset import train_test_split
from poisonlab.defenses import DEFENSES
from poisonlab.defenses.training import (
    AntiBackdoorLearning,
    BaggingCertifier,
    DeepPartitionAggregation,
    FiniteAggregation,
    SynthesisedPoisons,
    certified_accuracy,
)
from poisonlab.defenses.training.abl import lga_loss
from poisonlab.defenses.training.bagging import bagging_radius
from poisonlab.defenses.training.dp import DPSGD, check_private_layers
from poisonlab.defenses.training.ensembles import top_two
from poisonlab.defenses.training.partition import content_hash, partition_of
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.experiments import parse_config
from poisonlab.models import MODELS


@pytest.fixture(scope="module")
def digits_split():
    train, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=0)
    return train.X.reshape(len(train), -1), train.y, test.X.reshape(len(test), -1), test.y


# -- Deep Partition Aggregation ---------------------------------------------------------------


def test_the_tie_break_and_the_radius_follow_the_paper() -> None:
    votes = np.array([[3, 3, 0], [0, 5, 5], [6, 2, 2], [1, 4, 4], [0, 0, 0]])
    winner, n_top, rival = top_two(votes)
    assert winner.tolist() == [0, 1, 0, 1, 0]  # ties go to the smaller class index
    # a rival with a smaller index than the winner wins ties, so it counts one vote more
    assert rival.tolist() == [3, 5, 2, 4, 0]
    # the plurality winner always holds at zero changes, so DPA's radius is never below 0
    assert np.floor_divide(n_top - rival, 2).tolist() == [0, 0, 2, 0, 0]


def test_a_sample_s_partition_depends_on_its_own_features_only(digits_split) -> None:
    X = digits_split[0]
    whole = partition_of(X, 50)
    keep = np.random.default_rng(0).permutation(len(X))[: len(X) // 2]
    assert np.array_equal(partition_of(X[keep], 50), whole[keep])  # others removed or reordered
    assert np.bincount(whole, minlength=50).min() > 0
    assert content_hash(X[:1])[0] == content_hash(X[:1].copy())[0]


def test_dpa_on_digits_reaches_the_issue_s_certified_accuracy(digits_split) -> None:
    X, y, X_test, y_test = digits_split
    dpa = DeepPartitionAggregation(LogisticRegression(max_iter=2000), n_partitions=50).fit(X, y)
    certificate = dpa.certify(X_test)
    curve = certified_accuracy(y_test, certificate, [0, 5, 10])
    assert curve[0] == pytest.approx(np.mean(dpa.predict(X_test) == y_test))
    assert curve[1] >= 0.5  # the bar: ≥ 50% at radius 5 with k = 50 (measured 0.83)
    assert curve[0] >= curve[1] >= curve[2]


def _nearest_in(X: np.ndarray, rows: np.ndarray, x: np.ndarray) -> int:
    return int(rows[np.argmin(((X[rows] - x) ** 2).sum(axis=1))])


def _worst_relabelling(
    dpa: DeepPartitionAggregation, X: np.ndarray, y: np.ndarray, x: np.ndarray, changes: int
) -> np.ndarray:
    """Labels after the most harmful ``changes`` relabellings for input ``x`` (1-NN base learners).

    Each relabelling takes a partition that votes for the winner and gives its sample
    nearest to ``x`` the runner-up's label, so that partition's vote moves to the
    runner-up: the worst one change can do (two units of the gap).
    """
    votes = dpa.votes(x[None])[0]
    winner, _, _ = top_two(votes[None])
    favoured = votes + (np.arange(votes.size) < winner[0])
    favoured[winner[0]] = -1
    runner_up = dpa.classes_[int(np.argmax(favoured))]
    part = partition_of(X, dpa.n_partitions)
    y = y.copy()
    voting = [
        i
        for i, m in enumerate(dpa.models_)
        if m is not None and m.predict(x[None])[0] == dpa.classes_[winner[0]]
    ]
    for i in voting[:changes]:
        y[_nearest_in(X, np.flatnonzero(part == i), x)] = runner_up
    return y


def test_dpa_certificate_is_sound_and_tight_under_real_retraining(digits_split) -> None:
    X, y, X_test, _ = digits_split
    knn = KNeighborsClassifier(n_neighbors=1)
    dpa = DeepPartitionAggregation(knn, n_partitions=25).fit(X, y)
    certificate = dpa.certify(X_test)
    rng = np.random.default_rng(0)
    sampled = rng.choice(np.flatnonzero(certificate.radius >= 1), size=6, replace=False)
    for i in sampled:
        r = int(certificate.radius[i])
        before = certificate.prediction[i]
        within = DeepPartitionAggregation(knn, n_partitions=25).fit(
            X, _worst_relabelling(dpa, X, y, X_test[i], r)
        )
        assert within.predict(X_test[i : i + 1])[0] == before, f"input {i}: {r} changes flipped it"
        beyond = DeepPartitionAggregation(knn, n_partitions=25).fit(
            X, _worst_relabelling(dpa, X, y, X_test[i], r + 1)
        )
        assert beyond.predict(X_test[i : i + 1])[0] != before, f"input {i}: the bound {r} is not tight"


def test_dpa_certificate_holds_against_inserted_samples(digits_split) -> None:
    """Insert near-copies of the input, labelled as the runner-up, steered into winner-voting partitions."""
    X, y, X_test, _ = digits_split
    knn = KNeighborsClassifier(n_neighbors=1)
    k = 25
    dpa = DeepPartitionAggregation(knn, n_partitions=k).fit(X, y)
    certificate = dpa.certify(X_test)
    i = int(np.flatnonzero(certificate.radius >= 2)[0])
    x, r = X_test[i], int(certificate.radius[i])
    votes = dpa.votes(x[None])[0]
    winner = int(top_two(votes[None])[0][0])
    favoured = votes + (np.arange(votes.size) < winner)
    favoured[winner] = -1
    runner_up = dpa.classes_[int(np.argmax(favoured))]
    voting = [
        j
        for j, m in enumerate(dpa.models_)
        if m is not None and m.predict(x[None])[0] == dpa.classes_[winner]
    ]

    def insert(n: int) -> tuple[np.ndarray, np.ndarray]:
        extra = []
        for j in voting[:n]:
            step = 0
            while True:  # nudge one feature by a hair until the copy hashes into partition j
                copy = x.astype(np.float32).copy()
                copy[0] += np.float32(1e-6 * (step + 1))
                if partition_of(copy[None], k)[0] == j:
                    break
                step += 1
            extra.append(copy)
        return np.vstack([X, *extra]), np.concatenate([y, np.full(n, runner_up)])

    assert (
        DeepPartitionAggregation(knn, n_partitions=k).fit(*insert(r)).predict(x[None])[0]
        == certificate.prediction[i]
    )
    assert (
        DeepPartitionAggregation(knn, n_partitions=k).fit(*insert(r + 1)).predict(x[None])[0]
        != certificate.prediction[i]
    )


@pytest.mark.parametrize(
    ("estimator", "k", "says"),
    [
        (LogisticRegression(), 1, "partitions must be an integer ≥ 2"),
        (LogisticRegression(), 10_000, "10000 partitions for 1347 training samples"),
        (object(), 10, "has no fit/predict"),
    ],
)
def test_dpa_refuses_bad_settings_in_one_line(digits_split, estimator, k, says) -> None:
    with pytest.raises(ConfigError, match=says):
        DeepPartitionAggregation(estimator, n_partitions=k).fit(*digits_split[:2])


def test_a_base_learner_that_cannot_be_cloned_is_refused(digits_split) -> None:
    class Unclonable:
        def __init__(self, c: float = 1.0) -> None:
            self.c = 2 * c  # stores something other than it was given: scikit-learn's clone refuses

        def get_params(self, deep: bool = True) -> dict:
            return {"c": self.c}

        def set_params(self, **params):
            return self

        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.zeros(len(X))

    with pytest.raises(ConfigError, match="cannot be cloned"):
        DeepPartitionAggregation(Unclonable(), n_partitions=10).fit(*digits_split[:2])


# -- Finite Aggregation -----------------------------------------------------------------------


def test_finite_aggregation_with_spread_one_is_dpa(digits_split) -> None:
    X, y, X_test, _ = digits_split
    dpa = (
        DeepPartitionAggregation(LogisticRegression(max_iter=500), n_partitions=20).fit(X, y).certify(X_test)
    )
    fa = (
        FiniteAggregation(LogisticRegression(max_iter=500), n_partitions=20, spread=1)
        .fit(X, y)
        .certify(X_test)
    )
    assert np.array_equal(dpa.prediction, fa.prediction) and np.array_equal(dpa.radius, fa.radius)


def test_finite_aggregation_certificate_is_sound_under_real_retraining(digits_split) -> None:
    """Relabel, in each of the r most harmful buckets, its sample nearest the input, then retrain."""
    X, y, X_test, _ = digits_split
    knn = KNeighborsClassifier(n_neighbors=1)
    fa = FiniteAggregation(knn, n_partitions=10, spread=3).fit(X, y)
    certificate = fa.certify(X_test)
    bucket = (content_hash(X) % np.uint64(fa.n_buckets_)).astype(np.int64)
    users = (np.arange(fa.n_buckets_)[:, None] - np.arange(3)[None, :]) % fa.n_buckets_
    sampled = np.random.default_rng(1).choice(np.flatnonzero(certificate.radius >= 1), size=5, replace=False)
    for i in sampled:
        x, r = X_test[i], int(certificate.radius[i])
        ballots = fa._ballots(x[None])[:, 0]
        c = int(np.searchsorted(fa.classes_, certificate.prediction[i]))
        for rival in (k for k in range(fa.classes_.size) if k != c):
            harm = 3 + (ballots[users] == c).sum(axis=1) - (ballots[users] == rival).sum(axis=1)
            labels = y.copy()
            for b in np.argsort(-harm, kind="stable")[:r]:
                labels[_nearest_in(X, np.flatnonzero(bucket == b), x)] = fa.classes_[rival]
            again = FiniteAggregation(knn, n_partitions=10, spread=3).fit(X, labels)
            assert again.predict(x[None])[0] == certificate.prediction[i], f"input {i}, rival {rival}"


# -- bagging ----------------------------------------------------------------------------------


def test_bagging_radius_is_the_largest_r_that_satisfies_the_bound() -> None:
    p_a, p_b, n, s = np.array([0.9, 0.6, 0.5, 0.3]), np.array([0.05, 0.3, 0.5, 0.6]), 1000, 30
    radius = bagging_radius(p_a, p_b, n, s)
    for pa, pb, r in zip(p_a, p_b, radius, strict=True):
        holds = [pa - pb > 2 * (1 - ((n - t) / n) ** s) for t in range(n)]
        expected = max((t for t, ok in enumerate(holds) if ok), default=-1)
        assert r == expected
    assert radius[0] > radius[1] > 0 and radius[2] == -1 and radius[3] == -1


def test_bagging_certifies_digits_with_a_stated_confidence(digits_split) -> None:
    X, y, X_test, y_test = digits_split
    bag = BaggingCertifier(LogisticRegression(max_iter=500), n_models=60, subsample=50).fit(X, y)
    certificate = bag.certify(X_test)
    assert certificate.confidence == 0.999
    assert np.array_equal(certificate.prediction, bag.predict(X_test))
    curve = certified_accuracy(y_test, certificate, [0, 3])
    assert np.mean(bag.predict(X_test) == y_test) >= curve[0] >= curve[1] > 0.3


# -- DP-SGD -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_digits():
    return load_dataset("digits").subset(np.arange(400))


def _dp(small_digits, **params):
    make = lambda seed: MODELS.create("mlp", epochs=5, random_state=seed)  # noqa: E731
    return DPSGD(**params).train(small_digits, make, np.random.default_rng(0))


def test_dp_sgd_spends_less_privacy_with_more_noise(small_digits) -> None:
    spent = [_dp(small_digits, noise_multiplier=s).extras["dp_epsilon"] for s in (0.7, 1.5)]
    assert spent[0] > spent[1] > 0
    aimed = _dp(small_digits, target_epsilon=4.0)
    assert 3.2 <= aimed.extras["dp_epsilon"] <= 4.0  # within the target, and not far below it
    assert np.mean(aimed.model.predict(small_digits.X) == small_digits.y) > 0.5  # it still learns


def test_dp_sgd_refuses_an_unreachable_epsilon_and_a_layer_it_cannot_train(small_digits) -> None:
    from torch import nn

    with pytest.raises(ConfigError, match=r"target ε = 1e-06 cannot be reached in 5 epochs"):
        _dp(small_digits, target_epsilon=1e-6)
    with pytest.raises(ConfigError, match="BatchNorm"):
        check_private_layers(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))


# -- Anti-Backdoor Learning and synthesised poisons -------------------------------------------


def test_lga_holds_losses_near_gamma() -> None:
    import torch

    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0]], requires_grad=True)
    loss = lga_loss(0.5)(logits, torch.tensor([0, 0]))
    low, high = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]), reduction="none").tolist()
    assert low < 0.5 < high
    assert loss.item() == pytest.approx((-low + high) / 2)  # the low loss is pushed up, the high one down


def test_abl_sets_apart_its_isolation_share(small_digits) -> None:
    make = lambda seed: MODELS.create("cnn", epochs=3, random_state=seed)  # noqa: E731
    abl = AntiBackdoorLearning(isolation_epochs=2, unlearning_epochs=2, isolation_ratio=0.05)
    trained = abl.train(small_digits, make, np.random.default_rng(0))
    assert trained.removed_mask.sum() == 20 == trained.extras["n_isolated"]
    with pytest.raises(ConfigError, match="trains a torch model; FlatClassifier is not one"):
        abl.train(small_digits, lambda seed: MODELS.create("logreg"), np.random.default_rng(0))


def test_synthesised_poisons_keep_labels_and_pixel_range(small_digits) -> None:
    from poisonlab.defenses.training.synthesised import synthesise

    rows, source = synthesise(small_digits.X, 200, ("patch", "blend"), np.random.default_rng(0))
    assert rows.shape == (200, 1, 8, 8) and rows.min() >= 0 and rows.max() <= 1
    assert np.mean(np.any(rows != small_digits.X[source], axis=(1, 2, 3))) > 0.95
    seen = []
    trained = SynthesisedPoisons(share=0.5).train(
        small_digits, lambda seed: _Recorder(seen), np.random.default_rng(0)
    )
    assert trained.extras["n_synthesised"] == 200 and len(seen[0]) == 600


class _Recorder:
    def __init__(self, seen: list) -> None:
        self.seen = seen

    def fit(self, X, y):
        self.seen.append(y)
        return self


# -- in a grid and from the shell -------------------------------------------------------------


def test_a_grid_records_certified_accuracy_and_privacy_spent(tmp_path) -> None:
    from poisonlab.experiments import run_grid

    config = {
        "datasets": ["digits"],
        "models": [{"name": "mlp", "epochs": 5}],
        "attacks": ["label_flip"],
        "poison_rates": [0.02],
        "defenses": [{"name": "dpa", "partitions": 20}, {"name": "dp_sgd", "noise_multiplier": 1.0}],
        "seeds": [0],
        "baseline": False,
    }
    run_grid(parse_config(config), tmp_path)
    import json

    rows = {r["defense"]: r for r in json.loads((tmp_path / "summary.json").read_text())["runs"]}
    dpa = rows["dpa[partitions=20]"]
    # 2% of 1,347 rows relabelled: 27 changes, beyond any radius 20 partitions can certify
    assert dpa["status"] == "ok" and dpa["certified_acc"] == 0.0 and dpa["clean_acc"] > 0.5
    dp = rows["dp_sgd[noise_multiplier=1.0]"]
    assert dp["status"] == "ok" and 0 < dp["dp_epsilon"] < math.inf and dp["certified_acc"] is None


def test_a_grid_refuses_a_torch_defense_for_a_scikit_learn_model() -> None:
    config = {"datasets": ["digits"], "models": ["logreg"], "attacks": ["badnets"], "defenses": ["abl"]}
    with pytest.raises(
        IncompatibleError, match=r"model 'logreg' has torch False.*would work: cnn, mlp, linear"
    ):
        parse_config(config)


def test_a_grid_refuses_an_unreachable_epsilon_before_any_run() -> None:
    config = {
        "datasets": ["digits"],
        "models": [{"name": "cnn", "epochs": 3}],
        "attacks": ["badnets"],
        "defenses": [{"name": "dp_sgd", "target_epsilon": 1e-3}],
    }
    with pytest.raises(
        ConfigError, match=r"target ε = 0.001 cannot be reached in 3 epochs .* on 1347 samples"
    ):
        parse_config(config)
    config["defenses"] = [{"name": "dp_sgd", "target_epsilon": 8.0}]
    parse_config(config)  # reachable: planned without complaint


def test_certify_prints_the_curve_and_writes_radii(tmp_path, capsys) -> None:
    out = tmp_path / "radii.csv"
    assert main(["certify", "digits", "--partitions", "50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "certified accuracy" in printed and "inserted, deleted or relabelled" in printed
    lines = out.read_text().splitlines()
    assert lines[0] == "index,id,label,prediction,certified_radius" and len(lines) == 451
    radii = np.array([int(line.rsplit(",", 1)[1]) for line in lines[1:]])
    assert radii.max() <= 25 and np.mean(radii >= 5) > 0.5


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--partitions", "1"], "--partitions must lie in 2..1347"),
        (["--partitions", "2000"], "--partitions must lie in 2..1347"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "ridge"], "is for regression"),
        (["--test-size", "1.5"], "--test-size must lie in"),
        (["--out", "."], "is a folder"),
    ],
)
def test_certify_refuses_bad_input_in_one_line(args, says, capsys) -> None:
    assert main(["certify", "digits", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_certify_with_finite_aggregation(capsys) -> None:
    assert main(["certify", "digits", "--method", "fa", "--partitions", "20", "--spread", "2"]) == 0
    assert "20 partitions × spread 2" in capsys.readouterr().out
    assert main(["certify", "digits", "--method", "fa", "--spread", "0"]) == 2
    assert "--spread must be >= 1" in capsys.readouterr().err


def test_certify_refuses_regression_data(capsys) -> None:
    assert main(["certify", "diabetes"]) == 2
    assert "certify needs classification data" in capsys.readouterr().err


def test_every_training_defense_is_listed_with_its_stage() -> None:
    training = {e.name for e in DEFENSES.where(stage="training")}
    assert training == {"dpa", "finite_aggregation", "bagging", "dp_sgd", "abl", "synthesised_poisons"}
    assert {e.name for e in DEFENSES.where(certifies=True)} == {"dpa", "finite_aggregation", "bagging"}


def test_the_readme_example_of_certifying_runs() -> None:
    from conftest import run_readme_example

    namespace = run_readme_example("DeepPartitionAggregation(LogisticRegression")
    curve = namespace["curve"]
    assert curve[0] >= curve[1] >= 0.5 and curve[1] >= curve[2]  # type: ignore[index, operator]
