"""The federated conformance battery: every registered rule and client attack passes it, and
each family of checks fails a deliberately broken toy component."""

from __future__ import annotations

import numpy as np
import pytest

from poisonlab.checks import CheckFailed, check_aggregator, check_client_attack, yield_aggregator_checks
from poisonlab.errors import ConfigError
from poisonlab.federated.aggregators import AGGREGATORS, AggregationResult, MinClients
from poisonlab.federated.clients import CLIENT_ATTACKS, ClientAttack, sign_flip


@pytest.mark.parametrize("entry", list(AGGREGATORS), ids=lambda e: e.name)
def test_every_aggregator_passes_its_checks(entry):
    assert "aggregator.output" in check_aggregator(entry)


@pytest.mark.parametrize("entry", list(CLIENT_ATTACKS), ids=lambda e: e.name)
def test_every_client_attack_passes_its_checks(entry):
    assert "client_attack.tags_match_parts" in check_client_attack(entry)


def test_tags_choose_the_checks():
    names = [c.name for c in yield_aggregator_checks(AGGREGATORS.get("krum"))]
    assert "aggregator.selection" in names and "aggregator.refuses_f" in names
    assert "aggregator.selection" not in [c.name for c in yield_aggregator_checks(AGGREGATORS.get("median"))]


# --------------------------------------------------------------------------- broken toy rules


def _mean(updates: np.ndarray) -> np.ndarray:
    return np.asarray(updates, dtype=np.float64).mean(axis=0)


def float64_rule(updates):
    return AggregationResult(_mean(updates))  # not float32


def mutating_rule(updates):
    update = _mean(updates).astype(np.float32)
    updates[0] = 0.0
    return AggregationResult(update)


_RNG = np.random.default_rng(0)


def random_rule(updates):
    return AggregationResult((_mean(updates) + _RNG.normal(size=updates.shape[1])).astype(np.float32))


def nan_accepting_rule(updates):
    return AggregationResult(np.nan_to_num(_mean(updates)).astype(np.float32))


def zero_rule(updates):
    if not np.isfinite(updates).all():
        raise ConfigError("NaN")
    return AggregationResult(np.zeros(updates.shape[1], dtype=np.float32))


def first_row_rule(updates):
    if not np.isfinite(updates).all():
        raise ConfigError("NaN")
    return AggregationResult(np.array(updates[0], dtype=np.float32))


def bad_selection_rule(updates, f):
    if not np.isfinite(updates).all() or not 0 <= f < len(updates) - 2 * f - 2:
        raise ConfigError("bad")
    return AggregationResult(_mean(updates).astype(np.float32), selected=np.array([len(updates)]))


def f_ignoring_rule(updates, f):
    if not np.isfinite(updates).all():
        raise ConfigError("NaN")
    return AggregationResult(_mean(updates).astype(np.float32), selected=np.arange(len(updates)))


def bad_weights_rule(updates):
    first_row = first_row_rule(updates)
    return AggregationResult(first_row.update, weights=np.full(len(updates), 1.0 / len(updates)))


@pytest.mark.parametrize(
    ("rule", "tags", "failing"),
    [
        (float64_rule, {}, "aggregator.output"),
        (bad_weights_rule, {}, "aggregator.weights"),
        (mutating_rule, {}, "aggregator.no_mutation"),
        (random_rule, {}, "aggregator.deterministic"),
        (nan_accepting_rule, {}, "aggregator.refuses_non_finite"),
        (zero_rule, {}, "aggregator.consensus"),
        (first_row_rule, {}, "aggregator.symmetric"),
        (bad_selection_rule, {"selects_clients": True, "needs_f": True}, "aggregator.selection"),
        (
            f_ignoring_rule,
            {"selects_clients": True, "needs_f": True, "min_clients": MinClients(2, 3)},
            "aggregator.refuses_f",
        ),
    ],
)
def test_a_broken_rule_fails_the_check_it_breaks(rule, tags, failing):
    with pytest.raises(CheckFailed, match=rf"^{failing}: "):
        check_aggregator(rule, **tags)


# --------------------------------------------------------------------------- broken toy attacks


def float64_craft(updates, ctx, rng):
    return -np.asarray(updates[ctx.malicious], dtype=np.float64)


def short_craft(updates, ctx, rng):
    return np.zeros((1, updates.shape[1]), dtype=np.float32)


def writing_craft(updates, ctx, rng):
    updates[ctx.benign] = 0.0
    return np.array(updates[ctx.malicious], dtype=np.float32)


def unseeded_craft(updates, ctx, rng):
    return np.random.default_rng().normal(size=(len(ctx.malicious), updates.shape[1])).astype(np.float32)


def float_label_poisoner(X, y, rng):
    return X, y.astype(np.float64)


def writing_poisoner(X, y, rng):
    y[:] = 0
    return X, y


def unseeded_poisoner(X, y, rng, *, n_classes):
    return X, np.random.default_rng().integers(0, n_classes, size=len(y))


def no_relabel_backdoor(X, y, rng, *, trigger):
    return trigger.apply(X), y.copy()


@pytest.mark.parametrize(
    ("attack", "tags", "failing"),
    [
        (ClientAttack("toy", craft=sign_flip), {"poisons_data": True}, "client_attack.tags_match_parts"),
        (ClientAttack("toy", craft=float64_craft), {}, "client_attack.craft_rows"),
        (ClientAttack("toy", craft=short_craft), {}, "client_attack.craft_rows"),
        (ClientAttack("toy", craft=writing_craft), {}, "client_attack.craft_no_write"),
        (ClientAttack("toy", craft=unseeded_craft), {}, "client_attack.craft_deterministic"),
        (ClientAttack("toy", poison_data=float_label_poisoner), {}, "client_attack.poison_shapes"),
        (ClientAttack("toy", poison_data=writing_poisoner), {}, "client_attack.poison_no_write"),
        (ClientAttack("toy", poison_data=unseeded_poisoner), {}, "client_attack.poison_deterministic"),
        (ClientAttack("toy", poison_data=no_relabel_backdoor), {"backdoor": True}, "client_attack.backdoor"),
    ],
)
def test_a_broken_client_attack_fails_the_check_it_breaks(attack, tags, failing):
    with pytest.raises(CheckFailed, match=rf"^{failing}: "):
        check_client_attack(attack, **tags)


def test_an_honest_behaviour_that_changes_things_fails():
    class Sneaky(ClientAttack):
        def craft_rows(self, updates, ctx, rng):
            return np.zeros((len(ctx.malicious), updates.shape[1]), dtype=np.float32)

    with pytest.raises(CheckFailed, match=r"^client_attack.honest: "):
        check_client_attack(Sneaky("sneaky"))
