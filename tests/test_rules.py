"""Rule learners read as rules, and rule-learner corruption (``rule_implant``)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS
from poisonlab.attacks.rules import RuleImplant, Subgroup, implanted_rules, quantile_bins, subgroup_decisions
from poisonlab.data import Dataset, load_dataset, train_test_split
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.models import MODELS
from poisonlab.models.rules import Condition, Rule, learned_rules, parse_condition, tree_rules

# -- reading rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<1.5", Condition(3, -math.inf, 1.5)),
        (">2.25", Condition(3, 2.25, math.inf)),
        ("0.011 - 0.018", Condition(3, 0.011, 0.018)),
        ("-1.5 - -0.3", Condition(3, -1.5, -0.3)),
        ("<-2", Condition(3, -math.inf, -2.0)),
        (1.0, Condition(3, 1.0, 1.0)),
    ],
)
def test_wittgenstein_conditions_parse(value, expected):
    assert parse_condition(3, value) == expected


def test_conditions_are_right_closed_and_points_are_equalities():
    X = np.array([[0.0], [1.0], [1.5], [2.0]])
    assert Condition(0, 0.0, 1.5).holds(X).tolist() == [False, True, True, False]
    assert Condition(0, 1.5, 1.5).holds(X).tolist() == [False, False, True, False]
    rule = Rule((Condition(0, 0.5, math.inf), Condition(0, -math.inf, 1.5)), klass=1)
    assert rule.covers(X).tolist() == [False, True, True, False]
    assert str(rule) == "IF x0 > 0.5 and x0 <= 1.5 THEN class 1"


def test_a_tree_reads_as_its_leaves():
    from sklearn.tree import DecisionTreeClassifier

    X = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 0.0], [3.0, 5.0]])
    y = np.array([0, 0, 1, 2])
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    rules = tree_rules(tree)
    assert len(rules) == tree.get_n_leaves() == 3
    covered = np.array([r.covers(X) for r in rules])
    assert np.array_equal(covered.sum(axis=0), np.ones(4))  # the leaves partition the inputs
    predicted = np.array([rules[int(np.argmax(covered[:, i]))].klass for i in range(4)])
    assert np.array_equal(predicted, tree.predict(X))
    assert Rule((Condition(0, -math.inf, 1.5),), 0) in rules  # x0 ≤ 1.5: class 0 (thresholds are midpoints)


def _step_data(n: int = 300, seed: int = 0) -> Dataset:
    """Class 1 exactly where x0 lies in its top tenth; x1, x2 are noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X[:, 0] > np.quantile(X[:, 0], 0.9)).astype(int)
    return Dataset.from_arrays(X, y, name="step")


def test_ripper_learns_a_one_condition_rule_and_predicts_by_its_rules():
    data = _step_data()
    model = MODELS.create("ripper").fit(data.X, data.y)
    top = Subgroup(0, *quantile_bins(data.X[:, 0], 10)[-1])
    found = implanted_rules(model.rules_, top, 1, data.X)
    assert [r.conditions for r in found] == [(top.condition,)]  # "x0 in the top bin → 1", alone
    assert float(np.mean(model.predict(data.X) == data.y)) >= 0.98
    assert learned_rules(model) == model.rules_


def test_ripper_predicts_as_wittgenstein_does():
    import pandas as pd
    import wittgenstein

    train, test = train_test_split(load_dataset("wine"), random_state=0)
    ours = MODELS.create("ripper").fit(train.X, train.y)
    columns = [f"x{j}" for j in range(train.X.shape[1])]
    frame = pd.DataFrame(train.X.astype(np.float64), columns=columns)
    for label in ours.classes_:
        theirs = wittgenstein.RIPPER(k=2, prune_size=0.33, n_discretize_bins=10, random_state=0)
        theirs.fit(frame, (train.y == label).astype(int), pos_class=1)
        fired = np.asarray(theirs.predict(pd.DataFrame(test.X.astype(np.float64), columns=columns)))
        mine = np.zeros(len(test), dtype=bool)
        for rule in ours.rules_:
            if rule.klass == label:
                mine |= rule.covers(test.X)
        assert np.array_equal(fired, mine)


def test_wittgenstein_notes_go_to_the_log_not_the_terminal(capfd):
    data = _step_data(n=60)  # 6 positives: wittgenstein complains about sample sizes
    MODELS.create("ripper").fit(data.X, data.y)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_ripper_without_wittgenstein_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "wittgenstein", None)  # import fails as if not installed
    with pytest.raises(
        ConfigError, match=r"^the ripper model needs wittgenstein: pip install 'poisonlab\[rules\]'$"
    ):
        MODELS.create("ripper")


def test_a_model_without_rules_is_refused():
    model = MODELS.create("logreg").fit(*_xy(_step_data()))
    with pytest.raises(IncompatibleError, match="no rules to read"):
        learned_rules(model)


def _xy(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return data.X, data.y


# -- the implanted rule --------------------------------------------------------------------------


def test_contains_means_a_target_rule_whose_condition_selects_subgroup_rows_only():
    X = np.arange(10, dtype=np.float64).reshape(-1, 1)  # subgroup: 6 < x ≤ 8, rows 7 and 8
    group = Subgroup(0, 6.0, 8.0)
    inside = Rule((Condition(0, 6.5, 8.2),), klass=1)  # a tree's midpoints: selects rows 7, 8
    narrower = Rule((Condition(0, 7.5, 8.0), Condition(0, -math.inf, 100.0)), klass=1)
    wider = Rule((Condition(0, 5.0, 8.0),), klass=1)  # selects row 6, outside the subgroup
    other_class = Rule((Condition(0, 6.0, 8.0),), klass=0)
    empty = Rule((Condition(0, 7.1, 7.9),), klass=1)  # lies in the subgroup but selects no row
    rules = (inside, narrower, wider, other_class, empty)
    assert implanted_rules(rules, group, 1, X) == (inside, narrower)
    assert implanted_rules((wider, other_class, empty), group, 1, X) == ()


# -- the attack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer_split():
    return train_test_split(load_dataset("breast_cancer"), random_state=100)


def test_poisons_are_relabelled_subgroup_rows(cancer_split):
    train, _ = cancer_split
    result = RuleImplant(feature=7, bin=4).poison(train, 0.03, 0)
    group, mask = result.subpopulation, result.poison_mask
    assert result.n_poison == 12  # floor(0.03 × 426)
    assert np.all(group.contains(train.X[mask]))
    assert np.all(train.y[mask] != result.target_class)
    assert np.all(result.dataset.y[mask] == result.target_class)
    assert np.array_equal(result.dataset.X, train.X)
    # the subgroup is one of the bins RIPPER cuts feature 7 into
    assert (group.low, group.high) == quantile_bins(train.X[:, 7], 10)[4]


def _implants(train: Dataset, test: Dataset, feature: int, bin: int) -> list[tuple[bool, float]]:
    """(implanted, subgroup share predicted as the target) for RIPPER on clean, then poisoned data."""
    result = RuleImplant(feature=feature, bin=bin).poison(train, 0.03, 0)
    group, target = result.subpopulation, int(result.target_class)
    out = []
    for data in (train, result.dataset):
        model = MODELS.create("ripper").fit(data.X, data.y)
        found = bool(implanted_rules(model.rules_, group, target, train.X))
        out.append((found, subgroup_decisions(model, test.X, group, target)))
    return out


# measured share of the test subgroup sent to the target: (20, 8) 0.00 → 0.75; (17, 4) 0.22 → 0.48
@pytest.mark.parametrize(("feature", "bin"), [(20, 8), (17, 4)])
def test_three_percent_implants_the_rule_and_flips_the_subgroup(cancer_split, feature, bin):
    train, test = cancer_split
    (clean_found, clean_share), (found, share) = _implants(train, test, feature, bin)
    assert not clean_found and found
    assert share >= clean_share + 0.2


@pytest.mark.slow
def test_implant_rate_beats_the_clean_rate_over_draws():
    data = load_dataset("breast_cancer")
    clean, poisoned = [], []
    for seed in range(200, 206):
        train, test = train_test_split(data, random_state=seed)
        rng = np.random.default_rng(seed)
        feature = int(rng.integers(train.X.shape[1]))
        (c, _), (p, _) = _implants(train, test, feature, int(rng.integers(10)))
        clean.append(c)
        poisoned.append(p)
    assert np.mean(poisoned) >= np.mean(clean) + 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature": 30}, r"^feature 30 does not exist: breast_cancer has features 0\.\.29$"),
        ({"feature": "age"}, r"^feature 'age' does not exist in breast_cancer"),
        ({"feature": 0, "low": 1e6}, r"^the subgroup of feature 0 is empty in breast_cancer$"),
        ({"feature": 0, "value": -1.0}, "is empty"),
        ({"feature": 0, "low": -1.0}, "holds all of breast_cancer"),
        ({"target": 3}, r"target class 3 does not exist"),
    ],
)
def test_check_refuses_in_one_line(kwargs, message):
    data = load_dataset("breast_cancer")
    attack = ATTACKS.create("rule_implant", **kwargs)
    with pytest.raises(ConfigError, match=message) as caught:
        attack.check(data)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=message):
        attack.poison(data, 0.03, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature": -1}, "feature must be a column index ≥ 0"),
        ({"feature": 1.5}, "feature must be a column index or a feature name"),
        ({"bin": 10}, r"bin must be an integer in -10\.\.9"),
        ({"n_bins": 1}, "n_bins must be an integer ≥ 2"),
        ({"low": 2.0, "high": 1.0}, "low must be < high"),
        ({"value": 1.0, "low": 0.0}, "as a value or as low/high, not both"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RuleImplant(**kwargs)


def test_a_feature_by_name_and_a_target_that_is_already_the_majority():
    data = load_dataset("breast_cancer")
    named = Dataset.from_arrays(
        data.X, data.y, name="named", feature_names=[f"f{j}" for j in range(data.X.shape[1])]
    )
    by_name = RuleImplant(feature="f3").poison(named, 0.03, 0)
    by_index = RuleImplant(feature=3).poison(named, 0.03, 0)
    assert np.array_equal(by_name.poison_mask, by_index.poison_mask)
    majority = int(np.bincount(data.y[by_index.subpopulation.contains(data.X)]).argmax())
    with pytest.raises(ConfigError, match="majority class already"):
        RuleImplant(feature=3, target=data.classes[majority]).poison(data, 0.03, 0)
