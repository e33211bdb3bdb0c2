"""The foundation's attack bars on digits with the CNN, one seed (the benchmark runs three)."""

from __future__ import annotations

import pytest

from poisonlab.attacks import BadNets
from poisonlab.data import load_dataset, train_test_split
from poisonlab.experiments import parse_config, run_experiment
from poisonlab.models import MODELS


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    exp = parse_config(
        {
            "datasets": ["digits"],
            "models": ["cnn"],
            "attacks": ["badnets", "blended"],
            "poison_rates": [0.05, 0.1],
            "seeds": [0],
        }
    )
    wanted = {("none", None), ("badnets", 0.05), ("blended", 0.1)}
    records = [run_experiment(s) for s in exp.runs if (s.attack.name, s.poison_rate) in wanted]
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    return {r["attack"]: r for r in records}


def test_badnets_at_5_percent_implants_a_backdoor_without_hurting_clean_accuracy(results: dict) -> None:
    assert results["badnets"]["asr"] >= 0.90
    assert results["none"]["clean_acc"] - results["badnets"]["clean_acc"] <= 0.02
    assert results["badnets"]["ra"] <= 0.10  # triggered inputs lose their true class


def test_blended_at_10_percent_reaches_80_percent_asr(results: dict) -> None:
    assert results["blended"]["asr"] >= 0.80


def test_clean_model_is_not_fooled_by_the_trigger_alone() -> None:
    # Without poisoning, stamping the BadNets patch must not send inputs to the target.
    train, test = train_test_split(load_dataset("digits"), random_state=0)
    model = MODELS.create("cnn", random_state=0).fit(train.X, train.y)
    trigger = BadNets(target=0).poison(train, 1, 0).trigger
    assert trigger is not None
    eligible = test.y != 0
    asr_clean_model = (model.predict(trigger.apply(test.X[eligible])) == 0).mean()
    assert asr_clean_model <= 0.10
