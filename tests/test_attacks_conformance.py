"""The attack contract, checked for every registered attack, plus attack-specific checks.

The battery iterates ``ATTACKS``: an attack registered later is checked without
editing this file. Each attack runs on every modality it declares.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import (
    aimed,
    attack_params,
    dataset_for,
    modalities_of,
    tiny_image,
    tiny_regression,
    tiny_tabular,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonlab.attacks import (
    ATTACKS,
    BadNets,
    Blended,
    FarthestFirstLabelFlip,
    FeatureTrigger,
    RandomLabelFlip,
    TargetedLabelFlip,
)
from poisonlab.data import Dataset, load_dataset, train_test_split
from poisonlab.errors import ConfigError
from poisonlab.models import MODELS

#: The poisoning attacks of tables and images (inference-time attacks have their own
#: contract, checked by ``poisonlab.checks`` and tests/test_evasion.py; graph attacks add
#: and delete facts, checked by the battery's graph branch and tests/test_graph.py).
CASES = [
    pytest.param(entry.name, modality, id=f"{entry.name}-{modality}")
    for entry in ATTACKS.where(phase="training")
    for modality in modalities_of(entry)
    if modality != "graph"
]
#: Modalities an attack refuses. Regression attacks are left out: there is no image
#: regression data, and their task check is tested on its own.
EXCLUDED = [
    pytest.param(entry.name, modality, id=f"{entry.name}-{modality}")
    for entry in ATTACKS.where(phase="training")
    for modality in ("image", "tabular")
    if modality not in modalities_of(entry) and "classification" in entry.factory.tasks
]
POISONING = [case for case in CASES if case.values[0] != "none"]
#: Small enough that every attack can spend the whole budget on the tiny sets (the
#: targeted flip's source class holds 30 of the 300 image rows).
RATES = (0.01, 0.05, 0.1)
#: Attacks whose choice of rows does not depend on the seed: ``none`` poisons nothing;
#: ``farthest_flip`` and ``influence_availability`` (which starts from it) rank rows by a
#: deterministic surrogate margin (the seed only breaks ties).
SEED_INDEPENDENT = {"none", "farthest_flip", "influence_availability"}


def with_provenance(ds: Dataset) -> Dataset:
    """The dataset with string ids and a per-row source, to check attacks keep both."""
    return Dataset.from_arrays(
        ds.X,
        ds.original_labels(),
        ids=np.array([f"row-{i:04d}" for i in range(len(ds))]),
        source=np.array([f"vendor{i % 3}" for i in range(len(ds))]),
        name=ds.name,
        task=ds.task,
    )


def setup(name: str, modality: str, **extra):
    entry = ATTACKS.get(name)
    ds = with_provenance(dataset_for(entry, modality))
    return aimed(entry.create(**attack_params(entry, ds), **extra), ds), ds


def changed_rows(before: Dataset, after: Dataset) -> np.ndarray:
    x_changed = (before.X != after.X).reshape(len(before), -1).any(axis=1)
    return x_changed | (before.y != after.y)


# -- the contract, for every attack ----------------------------------------------------------


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_shapes_dtypes_ids_source_kept(name, modality):
    attack, ds = setup(name, modality)
    out = attack.poison(ds, 0.1, 0).dataset
    assert out.X.shape == ds.X.shape and out.X.dtype == ds.X.dtype == np.float32
    assert out.y.shape == ds.y.shape and out.y.dtype == ds.y.dtype
    assert out.y.dtype == (np.float64 if ds.is_regression else np.int64)
    assert np.array_equal(out.ids, ds.ids)
    assert np.array_equal(out.source, ds.source)
    assert out.classes == ds.classes and out.task == ds.task
    assert out.modality == ds.modality
    if not ds.is_regression:
        assert out.y.min() >= 0 and out.y.max() < ds.n_classes
    if modality == "image":
        assert out.X.min() >= 0.0 and out.X.max() <= 1.0


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_input_not_mutated(name, modality):
    attack, ds = setup(name, modality)
    X, y, ids, source = ds.X.copy(), ds.y.copy(), ds.ids.copy(), ds.source.copy()
    result = attack.poison(ds, 0.1, 0)
    assert np.array_equal(ds.X, X)
    assert np.array_equal(ds.y, y)
    assert np.array_equal(ds.ids, ids)
    assert np.array_equal(ds.source, source)
    if name != "none":
        assert result.dataset is not ds


@pytest.mark.parametrize(("name", "modality"), CASES)
@pytest.mark.parametrize("rate", RATES)
def test_budget(name, modality, rate):
    attack, ds = setup(name, modality)
    result = attack.poison(ds, rate, 0)
    budget = math.floor(rate * len(ds))
    assert result.poison_mask.dtype == np.bool_
    assert result.poison_mask.shape == (len(ds),)
    assert result.n_poison == int(result.poison_mask.sum())
    assert result.n_poison <= budget
    if result.subpopulation is not None:  # a subpopulation attack relabels at most its group's other rows
        group = result.subpopulation.contains(ds.X) & (ds.y != result.target_class)
        assert result.n_poison == min(budget, int(group.sum()))
    else:
        assert result.n_poison == (0 if name == "none" else budget)


@pytest.mark.parametrize(("name", "modality"), POISONING)
def test_budget_as_a_count(name, modality):
    attack, ds = setup(name, modality)
    assert attack.poison(ds, 7, 0).n_poison == 7
    assert attack.poison(ds, np.int64(4), 0).n_poison == 4


@pytest.mark.parametrize(("name", "modality"), CASES)
@pytest.mark.parametrize("rate", [0.05, 0.1])
def test_mask_is_exact(name, modality, rate):
    attack, ds = setup(name, modality)
    result = attack.poison(ds, rate, 3)
    assert np.array_equal(result.poison_mask, changed_rows(ds, result.dataset))


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_seeded(name, modality):
    attack, ds = setup(name, modality)
    # 0.05: below every pool (a budget equal to the pool leaves the seed nothing to choose)
    a = attack.poison(ds, 0.05, 0)
    b = attack.poison(ds, 0.05, 0)
    c = attack.poison(ds, 0.05, np.random.default_rng(0))
    for other in (b, c):
        assert np.array_equal(a.dataset.X, other.dataset.X)
        assert np.array_equal(a.dataset.y, other.dataset.y)
        assert np.array_equal(a.poison_mask, other.poison_mask)
    d = attack.poison(ds, 0.05, 1)
    if name in SEED_INDEPENDENT:
        assert np.array_equal(a.poison_mask, d.poison_mask)
    else:
        assert not np.array_equal(a.poison_mask, d.poison_mask)


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_triggers_and_targets(name, modality):
    attack, ds = setup(name, modality)
    result = attack.poison(ds, 0.1, 0)
    mask = result.poison_mask
    if ATTACKS.get(name).tag("keeps_labels"):  # clean-label: poisons of the target class, labels kept
        assert np.array_equal(result.dataset.y, ds.y)
        if result.target_class is not None and not ATTACKS.get(name).tag("targets_instance"):
            assert np.all(ds.y[mask] == result.target_class)
        if result.trigger is not None:
            assert not np.array_equal(result.trigger.apply(ds.X[:20]), ds.X[:20])
        return
    if result.target_class is not None:
        assert 0 <= result.target_class < ds.n_classes
        assert np.all(result.dataset.y[mask] == result.target_class)
    if result.trigger is None:  # not a backdoor: a label attack leaves features alone
        if ds.is_regression:  # regression poison points move features and response together
            assert not np.array_equal(result.dataset.y[mask], ds.y[mask]) or result.n_poison == 0
        elif ATTACKS.get(name).tag("keeps_features"):
            assert np.array_equal(result.dataset.X, ds.X)
        else:  # an availability attack moves its points' features and flips their labels
            assert np.all(result.dataset.y[mask] != ds.y[mask])
            assert np.array_equal(result.dataset.X[~mask], ds.X[~mask])
        return
    assert result.target_class is not None
    assert not np.any(ds.y[mask] == result.target_class)  # all-to-one: drawn from other classes
    # the trigger reproduces the poisoned rows from the clean ones
    assert np.array_equal(result.trigger.apply(ds.X[mask]), result.dataset.X[mask])
    clean = ds.X[:20].copy()
    kept = clean.copy()
    triggered = result.trigger.apply(clean)
    assert np.array_equal(clean, kept)  # input not mutated
    assert triggered.shape == clean.shape and triggered.dtype == np.float32
    assert not np.array_equal(triggered, clean)
    assert np.array_equal(result.trigger.apply(ds.X[:20]), triggered)  # read-only input is fine


@pytest.mark.parametrize(("name", "modality"), POISONING)
@pytest.mark.parametrize("rate", [0, 0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_rate_outside_unit_interval(name, modality, rate):
    attack, ds = setup(name, modality)
    with pytest.raises(ConfigError, match="must lie in"):
        attack.poison(ds, rate, 0)


@pytest.mark.parametrize(("name", "modality"), POISONING)
@pytest.mark.parametrize("budget", [True, "0.1", None])
def test_budget_of_the_wrong_type(name, modality, budget):
    attack, ds = setup(name, modality)
    with pytest.raises(ConfigError, match="poison budget must be"):
        attack.poison(ds, budget, 0)


@pytest.mark.parametrize(("name", "modality"), POISONING)
def test_count_larger_than_the_dataset(name, modality):
    attack, ds = setup(name, modality)
    with pytest.raises(ConfigError, match=f"poison count must lie in 1..{len(ds)}"):
        attack.poison(ds, len(ds) + 1, 0)


def test_tasks_are_checked_before_anything_else():
    with pytest.raises(ConfigError, match="OptP poisons regression data; digits is a classification dataset"):
        ATTACKS.create("optp").poison(tiny_image(), 0.1, 0)
    with pytest.raises(ConfigError, match=r"RandomLabelFlip poisons classification data; .* is a regression"):
        ATTACKS.create("label_flip").poison(tiny_regression(), 0.1, 0)


def test_a_regression_budget_must_leave_more_clean_rows_than_features():
    ds = tiny_regression()  # 200 rows, 8 features: at most 191 poisoned
    with pytest.raises(ConfigError, match=r"leaves 8 clean samples of .*, fewer than its 8 features"):
        ATTACKS.create("statp").poison(ds, 192, 0)
    assert ATTACKS.create("statp").poison(ds, 191, 0).n_poison <= 191


@pytest.mark.parametrize(("name", "modality"), EXCLUDED)
def test_unsupported_modality(name, modality):
    attack = ATTACKS.create(name)
    ds = tiny_image() if modality == "image" else tiny_tabular()
    with pytest.raises(ConfigError, match=f"not on {modality} data"):
        attack.poison(ds, 0.1, 0)


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False))
def test_random_flip_spends_exactly_the_budget(rate):
    ds = tiny_tabular()
    result = RandomLabelFlip().poison(ds, rate, 0)
    exact = rate * len(ds)
    expected = math.floor(exact)
    if math.isclose(exact, round(exact), rel_tol=0.0, abs_tol=1e-9):  # float error at k/n
        expected = round(exact)
    assert result.n_poison == expected
    assert int(result.poison_mask.sum()) == result.n_poison
    assert np.all(result.dataset.y[result.poison_mask] != ds.y[result.poison_mask])


# -- label flipping ---------------------------------------------------------------------------


def test_random_flip_reaches_every_other_class():
    ds = tiny_image()
    result = RandomLabelFlip().poison(ds, 1.0, 0)
    assert result.n_poison == len(ds)
    assert np.all(result.dataset.y != ds.y)
    # uniform over the 9 other classes: each (old, new) pair from class 0 shows up
    new_for_zero = set(result.dataset.y[ds.y == 0].tolist())
    assert new_for_zero == set(range(1, 10))


def _relabelled(ds: Dataset, labels: list[int]) -> Dataset:
    return Dataset.from_arrays(ds.X, np.asarray(labels)[ds.y], name=ds.name)


def test_targeted_flip_only_flips_source_to_target():
    ds = _relabelled(tiny_tabular(), [10, 20, 30])  # class labels in the user's space
    result = TargetedLabelFlip(source=20, target=30).poison(ds, 0.2, 0)
    mask = result.poison_mask
    assert result.n_poison == 40
    assert result.source_class == 1 and result.target_class == 2
    assert np.all(ds.original_labels()[mask] == 20)
    assert np.all(result.dataset.original_labels()[mask] == 30)
    assert np.array_equal(result.dataset.y[~mask], ds.y[~mask])


def test_targeted_flip_can_take_the_whole_source_class():
    ds = tiny_image()
    n_source = int(np.sum(ds.y == 1))
    result = TargetedLabelFlip(source=1, target=7).poison(ds, n_source, 0)
    assert np.array_equal(result.poison_mask, ds.y == 1)
    assert np.all(result.dataset.y[ds.y == 1] == 7)


def test_targeted_flip_budget_beyond_the_source_class():
    ds = tiny_image()
    n_source = int(np.sum(ds.y == 1))
    assert n_source == 30
    with pytest.raises(ConfigError, match="budget of 31 samples exceeds the 30 samples of source class 1"):
        TargetedLabelFlip(source=1, target=7).poison(ds, 31, 0)
    with pytest.raises(ConfigError, match="exceeds the 30 samples"):
        TargetedLabelFlip(source=1, target=7).poison(ds, 0.2, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": 1, "target": 12}, r"target class 12 does not exist .*labels: \[0, 1, 2"),
        ({"source": -1, "target": 7}, "source class -1 does not exist"),
        ({"source": 1.0, "target": 7}, "source class must be an integer label"),
        ({"source": True, "target": 7}, "source class must be an integer label"),
    ],
)
def test_targeted_flip_unknown_class(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TargetedLabelFlip(**kwargs).poison(tiny_image(), 0.05, 0)


def test_targeted_flip_needs_distinct_classes():
    with pytest.raises(ConfigError, match="differ"):
        TargetedLabelFlip(source=3, target=3)


def test_targeted_flip_in_a_remapped_label_space_rejects_indices():
    ds = _relabelled(tiny_tabular(), [10, 20, 30])
    with pytest.raises(ConfigError, match=r"source class 1 does not exist .*\[10, 20, 30\]"):
        TargetedLabelFlip(source=1, target=2).poison(ds, 0.1, 0)


def test_farthest_flip_changes_class_on_multiclass_data():
    ds = tiny_tabular()
    result = FarthestFirstLabelFlip().poison(ds, 0.3, 0)
    mask = result.poison_mask
    assert result.n_poison == 60
    assert np.all(result.dataset.y[mask] != ds.y[mask])
    assert np.array_equal(result.dataset.y[~mask], ds.y[~mask])
    # more than one class is used as a replacement on 3-class data
    assert len(set(result.dataset.y[mask].tolist())) > 1


def test_farthest_flip_hurts_more_than_random_flip():
    train, test = train_test_split(load_dataset("breast_cancer"), random_state=0)

    def accuracy(poisoned: Dataset) -> float:
        model = MODELS.create("logreg").fit(poisoned.X, poisoned.y)
        return float(np.mean(model.predict(test.X) == test.y))

    clean = accuracy(train)
    farthest = accuracy(FarthestFirstLabelFlip().poison(train, 0.2, 0).dataset)
    random = np.mean([accuracy(RandomLabelFlip().poison(train, 0.2, s).dataset) for s in range(3)])
    # measured: clean 0.958, farthest 0.706, random 0.928 (mean of seeds 0-2)
    assert clean >= 0.94
    assert clean - farthest >= 0.15
    assert random - farthest >= 0.10


def test_farthest_flip_rejects_bad_c():
    with pytest.raises(ConfigError, match="C must be > 0"):
        FarthestFirstLabelFlip(C=0)


# -- backdoors ---------------------------------------------------------------------------------


CHECKERBOARD_3 = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float32)


@pytest.mark.parametrize(
    ("position", "row", "col"),
    [
        ("bottom-right", 5, 5),
        ("bottom-left", 5, 0),
        ("top-right", 0, 5),
        ("top-left", 0, 0),
        ([2, 4], 2, 4),
        ((0, 5), 0, 5),
    ],
)
def test_badnets_patch_lands_where_configured(position, row, col):
    ds = tiny_image()
    result = BadNets(target=0, position=position).poison(ds, 0.1, 0)
    mask = result.poison_mask
    before, after = ds.X[mask], result.dataset.X[mask]
    region = (slice(None), slice(None), slice(row, row + 3), slice(col, col + 3))
    assert np.array_equal(after[region], np.broadcast_to(CHECKERBOARD_3, after[region].shape))
    outside = np.ones(ds.X.shape[1:], dtype=bool)
    outside[:, row : row + 3, col : col + 3] = False
    assert np.array_equal(after[:, outside], before[:, outside])


@pytest.mark.parametrize("pattern", ["white", "random"])
def test_badnets_patterns(pattern):
    ds = tiny_image()
    result = BadNets(target=3, patch_size=2, pattern=pattern, position="top-left").poison(ds, 0.1, 0)
    patch = result.dataset.X[result.poison_mask][:, 0, :2, :2]
    assert np.all(patch == patch[0])  # the same pattern on every poisoned image
    if pattern == "white":
        assert np.all(patch == 1.0)
    else:
        assert len(np.unique(patch[0])) == 4 and 0.0 <= patch.min() and patch.max() <= 1.0
    assert np.all(result.dataset.y[result.poison_mask] == 3)
    assert not np.any(ds.y[result.poison_mask] == 3)


def test_badnets_random_pattern_follows_pattern_seed():
    ds = tiny_image()
    a = BadNets(pattern="random", pattern_seed=0).poison(ds, 0.05, 0)
    b = BadNets(pattern="random", pattern_seed=1).poison(ds, 0.05, 0)
    assert np.array_equal(a.poison_mask, b.poison_mask)
    assert not np.array_equal(a.dataset.X, b.dataset.X)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": 0}, "patch_size must be >= 1"),
        ({"pattern": "stripes"}, "pattern must be"),
        ({"position": "middle"}, "position must be one of"),
    ],
)
def test_badnets_bad_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BadNets(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": 9}, "patch_size 9 does not fit 8×8 images"),
        ({"position": [6, 0]}, r"patch at \[6, 0\] does not fit"),
        ({"position": [0, -1]}, r"patch at \[0, -1\] does not fit"),
        ({"target": 10}, "target class 10 does not exist"),
    ],
)
def test_badnets_does_not_fit(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BadNets(**kwargs).poison(tiny_image(), 0.1, 0)


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.5])
def test_blended_changes_every_pixel_by_at_most_alpha(alpha):
    ds = tiny_image()
    result = Blended(alpha=alpha).poison(ds, 0.1, 0)
    mask = result.poison_mask
    delta = np.abs(result.dataset.X[mask] - ds.X[mask])
    assert delta.max() <= alpha + 1e-6
    assert delta.max() >= 0.8 * alpha  # the key pattern is visible, not a no-op
    assert np.mean(delta > 0) > 0.9  # it touches (nearly) every pixel, unlike a patch


def test_blended_alpha_one_is_the_pattern():
    ds = tiny_image()
    result = Blended(alpha=1.0).poison(ds, 0.05, 0)
    poisoned = result.dataset.X[result.poison_mask]
    assert np.allclose(poisoned, poisoned[0], atol=1e-6)
    pattern = np.random.default_rng(0).random(ds.X.shape[1:]).astype(np.float32)
    assert np.allclose(poisoned[0], pattern, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, -0.2, 1.5])
def test_blended_bad_alpha(alpha):
    with pytest.raises(ConfigError, match=r"alpha must lie in \(0, 1\]"):
        Blended(alpha=alpha)


def test_trigger_rejects_wrong_shapes():
    result = BadNets().poison(tiny_image(), 0.05, 0)
    with pytest.raises(Exception, match="trigger expects N×1×8×8"):
        result.trigger.apply(np.zeros((2, 1, 6, 6), dtype=np.float32))
    tab = FeatureTrigger().poison(tiny_tabular(), 0.05, 0)
    with pytest.raises(Exception, match="trigger expects N×8 inputs"):
        tab.trigger.apply(np.zeros((2, 5), dtype=np.float32))


def test_feature_trigger_sets_chosen_features_to_their_maximum():
    ds = tiny_tabular()
    result = FeatureTrigger(target=2, features=[1, 6]).poison(ds, 0.1, 0)
    mask = result.poison_mask
    after, before = result.dataset.X[mask], ds.X[mask]
    assert np.array_equal(after[:, [1, 6]], np.broadcast_to(ds.X[:, [1, 6]].max(axis=0), (mask.sum(), 2)))
    others = [f for f in range(ds.X.shape[1]) if f not in (1, 6)]
    assert np.array_equal(after[:, others], before[:, others])
    assert np.all(result.dataset.y[mask] == 2)


def test_feature_trigger_draws_features_with_the_seed():
    ds = tiny_tabular()
    a = FeatureTrigger(n_trigger=2).poison(ds, 0.1, 0)
    b = FeatureTrigger(n_trigger=2).poison(ds, 0.1, 0)
    assert np.array_equal(a.trigger.features, b.trigger.features)
    assert a.trigger.features.shape == (2,)
    seen = {tuple(FeatureTrigger(n_trigger=2).poison(ds, 0.1, s).trigger.features) for s in range(6)}
    assert len(seen) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": [8]}, r"trigger features must lie in 0..7"),
        ({"features": []}, r"trigger features must lie in 0..7"),
        ({"n_trigger": 9}, "n_trigger 9 exceeds the 8 features"),
    ],
)
def test_feature_trigger_bad_features(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FeatureTrigger(**kwargs).poison(tiny_tabular(), 0.1, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"quantile": 1.5}, "quantile must lie in"), ({"n_trigger": 0}, "n_trigger must be >= 1")],
)
def test_feature_trigger_bad_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FeatureTrigger(**kwargs)


def test_backdoor_budget_beyond_the_non_target_rows():
    ds = tiny_image()
    assert int(np.sum(ds.y == 7)) == 29
    message = "budget of 300 samples exceeds the 271 samples outside target class 7"
    with pytest.raises(ConfigError, match=message):
        BadNets(target=7).poison(ds, 1.0, 0)
