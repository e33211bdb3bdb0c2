"""The conformance battery over every registered component, and proof that each check can fail."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
from conftest import CHEAP_OPTIMISATION, run_readme_example

from poisonlab.attacks import ATTACKS
from poisonlab.attacks.base import Attack, PoisonResult
from poisonlab.checks import (
    CheckFailed,
    check_attack,
    check_dataset,
    check_defense,
    check_detector,
    check_model,
    check_scenario,
    check_sklearn_estimator,
)
from poisonlab.data import DATASETS
from poisonlab.data.dataset import Dataset
from poisonlab.defenses import DEFENSES, DETECTORS, DefenseResult
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.defenses.robust_regression import ResidualSanitizer, TRIMRegressor
from poisonlab.experiments import SCENARIOS
from poisonlab.experiments.centralised import CentralisedScenario
from poisonlab.models import MODELS


def ids(entry):
    return entry.name


@pytest.mark.parametrize("entry", list(ATTACKS), ids=ids)
def test_every_attack_passes_the_battery(entry) -> None:
    # gradient-based attacks run with a few optimisation steps (the checks are about the contract)
    cheap = {k: v for k, v in CHEAP_OPTIMISATION.items() if k in entry.parameters()}
    subject = entry.create(**cheap) if cheap else entry
    assert len(check_attack(subject, tags=dict(entry.tags) if cheap else None)) >= 6


@pytest.mark.parametrize("entry", list(DETECTORS), ids=ids)
def test_every_detector_passes_the_battery(entry) -> None:
    assert len(check_detector(entry)) >= 6


@pytest.mark.parametrize("entry", list(DEFENSES), ids=ids)
def test_every_defense_passes_the_battery(entry) -> None:
    assert len(check_defense(entry)) >= 2


@pytest.mark.parametrize("entry", list(MODELS), ids=ids)
def test_every_model_passes_the_battery(entry) -> None:
    assert len(check_model(entry)) >= 5


@pytest.mark.parametrize("entry", list(SCENARIOS), ids=ids)
def test_every_scenario_passes_the_battery(entry) -> None:
    assert len(check_scenario(entry)) == 6


class _ForgetsItsSeed(CentralisedScenario):
    """Executes every spec with a fresh unseeded split: the same spec, another record."""

    def execute(self, spec, data, on_progress=None):
        import dataclasses

        record = super().execute(spec, data, on_progress)
        return dataclasses.replace(record, clean_acc=float(np.random.default_rng().uniform()))


class _ReadsAnUndeclaredKey(CentralisedScenario):
    example: ClassVar[dict[str, object]] = {**CentralisedScenario.example, "epochs": 3}


@pytest.mark.parametrize(
    ("scenario", "failing"),
    [(_ForgetsItsSeed(), "same_spec_same_record"), (_ReadsAnUndeclaredKey(), "example_declares_its_keys")],
    ids=["unseeded", "undeclared_key"],
)
def test_a_broken_scenario_fails(scenario, failing) -> None:
    with pytest.raises(CheckFailed, match=failing):
        check_scenario(scenario)


@pytest.mark.parametrize("entry", list(DATASETS), ids=ids)
def test_every_dataset_passes_the_battery(entry) -> None:
    assert check_dataset(entry) == [
        f"{entry.name}.loads_as_its_tags_say",
        f"{entry.name}.arrays_are_valid_and_read_only",
    ]


@pytest.mark.parametrize(
    "estimator", [TRIMRegressor(n_init=1, n_elemental=10, max_iter=10), ResidualSanitizer()], ids=type
)
def test_sklearn_compatible_estimators_pass_check_estimator(estimator) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_estimator warns about the checks it skips
        check_sklearn_estimator(estimator)


# --------------------------------------------------------------------------- broken toys


class _FlipsAll(Attack):
    """Flips every label, ignoring the budget."""

    keeps_features = True

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        y = (dataset.y + 1) % dataset.n_classes
        return PoisonResult(dataset.with_arrays(y=y), np.zeros(len(dataset), dtype=bool))


class _Mutates(Attack):
    keeps_features = True

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        y = dataset.y  # writes through a writeable view of the caller's labels
        y.flags.writeable = True
        y[:n_poison] = (y[:n_poison] + 1) % dataset.n_classes
        mask = np.zeros(len(dataset), dtype=bool)
        mask[:n_poison] = True
        return PoisonResult(dataset, mask)


class _Unseeded(Attack):
    keeps_features = True

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        rows = np.random.default_rng().choice(len(dataset), n_poison, replace=False)
        y = dataset.y.copy()
        y[rows] = (y[rows] + 1) % dataset.n_classes
        mask = np.zeros(len(dataset), dtype=bool)
        mask[rows] = True
        return PoisonResult(dataset.with_arrays(y=y), mask)


class _ClaimsCleanLabel(_Unseeded):
    keeps_labels = True

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        y = dataset.y.copy()
        y[:n_poison] = (y[:n_poison] + 1) % dataset.n_classes
        mask = np.zeros(len(dataset), dtype=bool)
        mask[:n_poison] = True
        return PoisonResult(dataset.with_arrays(y=y), mask)


class _IgnoresItsTags(_ClaimsCleanLabel):
    keeps_labels = False
    tasks = ("classification",)
    modalities = ("tabular",)

    def poison(self, dataset, budget, rng=None):  # skips the base class's refusal
        return self._poison(dataset, 3, np.random.default_rng(rng))


@pytest.mark.parametrize(
    ("attack", "failing"),
    [
        (_FlipsAll(), "returns_exact_mask_within_budget"),
        (_Unseeded(), "same_seed_same_poisons"),
        (_ClaimsCleanLabel(), "keeps_labels"),
        (_IgnoresItsTags(), "refuses_toy_image_classification"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Attack) else x,
)
def test_a_broken_attack_fails_the_check_that_names_its_fault(attack, failing) -> None:
    with pytest.raises(CheckFailed, match=failing):
        check_attack(attack)


def test_an_attack_that_writes_into_its_input_fails() -> None:
    with pytest.raises(CheckFailed, match=r"does_not_mutate_input|returns_exact_mask"):
        check_attack(_Mutates())


class _Random(Detector):
    """Scores at random: cannot tell poisons from clean samples."""

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        return np.random.default_rng(0).uniform(size=len(dataset))


class _Inverted(Detector):
    """Scores clean samples high (the sign convention broken)."""

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        assert evidence.pred_probs is not None
        return evidence.pred_probs[np.arange(len(dataset)), dataset.y]  # high for labels that fit


class _Loud(Detector):
    """A fair score, but its own rule flags half of any set."""

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        assert evidence.pred_probs is not None
        return 1 - evidence.pred_probs[np.arange(len(dataset)), dataset.y]

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        return scores >= np.median(scores)


class _DeclaresNothing(_Loud):
    """Reads pred_probs without declaring it in ``needs``."""

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        return np.zeros(len(dataset), dtype=bool)


@pytest.mark.parametrize(
    ("detector", "failing"),
    [
        (_Random(), "ranks_planted_poisons_high"),
        (_Inverted(), "ranks_planted_poisons_high"),
        (_Loud(), "quiet_on_clean_data"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Detector) else x,
)
def test_a_broken_detector_fails_the_check_that_names_its_fault(detector, failing) -> None:
    with pytest.raises(CheckFailed, match=failing):
        check_detector(detector)


def test_a_detector_that_declares_a_need_is_held_to_it() -> None:
    class Honest(_DeclaresNothing):
        needs = ("pred_probs",)

    assert "Honest.refuses_evidence_without_pred_probs" in check_detector(Honest())


class _DropsAndReorders:
    def apply(self, train: Dataset, rng: np.random.Generator) -> DefenseResult:
        keep = np.arange(len(train))[::-1][:-5]
        removed = np.zeros(len(train), dtype=bool)
        removed[:5] = True
        return DefenseResult(train.subset(keep), removed)


def test_a_broken_defense_fails() -> None:
    with pytest.raises(CheckFailed, match="returns_kept_rows_and_mask"):
        check_defense(_DropsAndReorders(), tags={"tasks": ("classification",)})


class _Forgetful:
    """Predicts the first training label for everything."""

    def fit(self, X, y):
        self.label_ = y[0]
        return self

    def predict(self, X):
        return np.full(len(X), self.label_)


class _NotSelf(_Forgetful):
    def fit(self, X, y):
        super().fit(X, y)
        return None


@pytest.mark.parametrize(
    ("factory", "failing"),
    [(_Forgetful, "learns_a_separable_set"), (_NotSelf, "fit_returns_self")],
    ids=["forgetful", "fit_returns_none"],
)
def test_a_broken_model_fails(factory, failing) -> None:
    with pytest.raises(CheckFailed, match=failing):
        check_model(factory, tags={"modalities": ("tabular",)})


def test_the_readme_example_of_checking_your_own_attack_runs() -> None:
    namespace = run_readme_example("check_attack(FlipToZero())")
    assert "FlipToZero.keeps_features" in check_attack(namespace["FlipToZero"]())  # type: ignore[operator]
