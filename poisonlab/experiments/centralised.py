"""The centralised scenario: poison a training set, defend it, train one model, evaluate.

A config (the default scenario) expands ``datasets × models × attacks ×
poison_rates × defenses × seeds`` into :class:`RunSpec` runs; the clean baseline
(attack ``none``) runs once per seed, not once per rate. Each run is a pure
function of its spec and its dataset: split → poison → defend → train → evaluate,
recorded as a :class:`~poisonlab.experiments.records.CentralisedRecord`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from poisonlab import metrics
from poisonlab.attacks import ATTACKS
from poisonlab.attacks.base import Attack, class_index
from poisonlab.data.dataset import Dataset, train_test_split
from poisonlab.defenses import DEFENSES
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.experiments.protocol import OnProgress, Scenario, Spec, data_key, identity
from poisonlab.experiments.records import CentralisedRecord
from poisonlab.experiments.spec import NONE, Component, DataRef, HashedSpec, component, listed, run_options
from poisonlab.models import MODELS

__all__ = ["CentralisedScenario", "RunSpec"]


@dataclass(frozen=True, eq=False)
class RunSpec(HashedSpec):
    """Everything one run depends on; its hash is the run's key in the results store."""

    scenario: ClassVar[str] = "centralised"

    dataset: Component
    model: Component
    attack: Component
    poison_rate: float | None
    defense: Component
    seed: int
    test_size: float = 0.25
    data_digest: str = ""  # content hash of a user data file, so edited data reruns


class CentralisedScenario(Scenario):
    """``run``'s default scenario (see the module docstring)."""

    example: ClassVar[dict[str, Any]] = {
        "datasets": ["wine"],
        "models": ["logreg"],
        "attacks": ["label_flip"],
        "poison_rates": [0.1],
    }
    keys = frozenset(
        {
            "scenario",
            "datasets",
            "models",
            "attacks",
            "defenses",
            "poison_rates",
            "seeds",
            "test_size",
            "baseline",
        }
    )

    def parse(self, raw: Mapping[str, Any], datasets: Sequence[DataRef]) -> list[Spec]:
        models = [component(e, "models") for e in listed(raw, "models")]
        attacks = [component(e, "attacks") for e in listed(raw, "attacks")]
        defenses = [component(e, "defenses") for e in listed(raw, "defenses", [NONE])]
        rates = [_rate(r) for r in listed(raw, "poison_rates", [0.05])]
        seeds, test_size, baseline = run_options(raw)
        for registry, comps in ((MODELS, models), (ATTACKS, attacks), (DEFENSES, defenses)):
            for comp in comps:
                registry.get(comp.name).check_params(comp.params)  # names first, then the data
        if baseline and not any(a.name == NONE for a in attacks):
            attacks.insert(0, Component(NONE))
        runs: list[Spec] = []
        for ref in datasets:
            for model, defense, attack in itertools.product(models, defenses, attacks):
                # The clean baseline and inference-time attacks poison nothing: no rate, one run per seed.
                unpoisoned = attack.name == NONE or ATTACKS.get(attack.name).tag("phase") == "inference"
                attack_rates: list[float | None] = [None] if unpoisoned else list(rates)
                runs += [
                    RunSpec(ref.component, model, attack, rate, defense, seed, test_size, ref.digest)
                    for rate, seed in itertools.product(attack_rates, seeds)
                ]
        return runs

    def plan(self, specs: Sequence[Spec], data: Mapping[str, Dataset]) -> None:
        """Every name known, every parameter accepted, every component's tags fit its data."""
        checked: set[tuple[str, str, str]] = set()
        for spec in cast(Sequence[RunSpec], specs):
            dataset = data[data_key(spec.dataset, spec.data_digest)]
            what = f"dataset {spec.dataset.label!r} ({dataset.modality} {dataset.task})"
            for registry, comp, wanted in (
                (MODELS, spec.model, {"task": dataset.task, "modalities": dataset.modality}),
                (ATTACKS, spec.attack, {"tasks": dataset.task, "modalities": dataset.modality}),
                (DEFENSES, spec.defense, {"tasks": dataset.task}),
            ):
                key = (registry.kind, comp.label, what)
                if key in checked:
                    continue
                checked.add(key)
                registry.require(comp.name, what, **wanted)
                try:  # a bad parameter value fails here, not in every run
                    built = registry.create(comp.name, **comp.params)
                except IncompatibleError:
                    raise
                except ConfigError as exc:
                    raise ConfigError(f"{registry.kind} {comp.label!r}: {exc}") from None
                if registry is ATTACKS:
                    try:  # a class the data lacks, a patch larger than its images
                        cast(Attack, built).check(dataset)
                    except ConfigError as exc:
                        raise IncompatibleError(
                            f"attack {comp.label!r} cannot work with {what}: {exc}"
                        ) from None
            if ATTACKS.get(spec.attack.name).tag("phase") == "inference":
                needs = f"attack {spec.attack.label!r}, which takes a torch model's gradients"
                MODELS.require(spec.model.name, needs, torch=True)
            if DEFENSES.get(spec.defense.name).tag("needs_torch"):
                needs = f"defense {spec.defense.label!r}, which trains a torch model"
                MODELS.require(spec.model.name, needs, torch=True)
            key = ("fit", f"{spec.defense.label} {spec.model.label} {spec.test_size}", what)
            if key not in checked:  # a setting that the training set's size rules out (DP-SGD's ε)
                checked.add(key)
                built_defense = DEFENSES.create(spec.defense.name, **spec.defense.params)
                if hasattr(built_defense, "check_fit"):
                    n_train = len(dataset) - math.ceil(spec.test_size * len(dataset))  # the split's size
                    model = MODELS.create(spec.model.name, **spec.model.params)
                    try:
                        built_defense.check_fit(n_train, model)
                    except ConfigError as exc:
                        raise ConfigError(f"defense {spec.defense.label!r} on {what}: {exc}") from None

    def execute(self, spec: Spec, data: Dataset, on_progress: OnProgress | None = None) -> CentralisedRecord:
        """Split → poison → defend → train → evaluate.

        ``asr`` is BackdoorBench's attack success rate for backdoors (on the source
        class's test inputs for a backdoor that names one), for a targeted label
        flip the share of source-class test inputs predicted as the target, and for
        an attack on one input (tag ``targets_instance``) 1 or 0: whether that input,
        drawn from the test split outside the attacker's class, is predicted as the
        attacker's class, so its mean over seeds is the success rate of
        "Just How Toxic is Data Poisoning?" (Schwarzschild et al. 2021); ``ra``
        (robust accuracy) exists for backdoors only. Regression runs
        report ``test_mse`` instead of accuracies.
        """
        run = cast(RunSpec, spec)
        train, test = train_test_split(data, test_size=run.test_size, random_state=run.seed)
        attack = ATTACKS.create(run.attack.name, **run.attack.params)
        at_inference = ATTACKS.get(run.attack.name).tag("phase") == "inference"
        aimed_at: int | None = None
        if attack.targets_instance:
            aimed_at = _target_instance(test, attack, np.random.default_rng([run.seed, 3]))
            attack = attack.aim(test.X[aimed_at])  # type: ignore[attr-defined]
        if at_inference:  # the training data stay clean; the attack comes after training
            poisoned = ATTACKS.create(NONE).poison(train, None, np.random.default_rng([run.seed, 1]))
        else:
            poisoned = attack.poison(train, run.poison_rate, np.random.default_rng([run.seed, 1]))
        entry = DEFENSES.get(run.defense.name)
        defense = entry.create(**run.defense.params)

        def make_model(seed: int) -> Any:
            return MODELS.create(run.model.name, random_state=seed, **run.model.params)

        out: dict[str, Any] = {
            "n_poison": poisoned.n_poison,
            "n_test": len(test),
            "phase": "inference" if at_inference else "training",
            "n_modified": len(test) if at_inference else poisoned.n_poison,
            "perturbation": _budget(attack) if at_inference or attack.keeps_labels else None,
        }
        removed: np.ndarray | None
        scores: np.ndarray | None = None
        if entry.tag("stage") == "training":
            trained = defense.train(poisoned.dataset, make_model, np.random.default_rng([run.seed, 2]))
            model, removed = trained.model, trained.removed_mask
            out["n_train"] = len(poisoned.dataset)
            out.update({k: v for k, v in trained.extras.items() if k in _TRAINING_FIGURES})
        else:
            defended = defense.apply(poisoned.dataset, np.random.default_rng([run.seed, 2]))
            model = make_model(run.seed)
            model.fit(defended.dataset.X, defended.dataset.y)
            removed, scores = defended.removed_mask, defended.scores
            out["n_train"] = len(defended.dataset)
        out["n_removed"] = int(removed.sum()) if removed is not None else 0
        if entry.tag("certifies"):
            certificate = model.certify(test.X)
            changes = certificate.changes_of(*metrics.changed_samples(train, poisoned.dataset))
            out["certified_acc"] = metrics.certified_accuracy(
                test.y, certificate.prediction, certificate.radius, changes
            )
        if data.is_regression:
            out["test_mse"] = metrics.mean_squared_error(test.y, model.predict(test.X))
        else:
            out["clean_acc"] = metrics.clean_accuracy(test.y, model.predict(test.X))
        if run.defense.name != NONE and removed is not None:
            detection = metrics.detection_scores(poisoned.poison_mask, removed, scores)
            out.update({f"det_{k}": v for k, v in detection.items()})
        if at_inference:
            predicted = model.predict(test.X)
            X_adv = attack.perturb(model, test.X, test.y, np.random.default_rng([run.seed, 4]))
            adversarial = model.predict(X_adv)
            if getattr(attack, "eps", None) is None:  # no ε ball: say how far it went
                l2 = np.linalg.norm((X_adv - test.X).reshape(len(test), -1), axis=1)
                out["perturbation"] = f"L2 median {float(np.median(l2)):.2f}"
            out["ra"] = metrics.clean_accuracy(test.y, adversarial)
            out["asr"] = metrics.evasion_success_rate(test.y, predicted, adversarial)
        elif aimed_at is not None and poisoned.target_class is not None:
            sent = model.predict(test.X[aimed_at : aimed_at + 1])
            out["asr"] = metrics.targeted_flip_success(
                test.y[aimed_at : aimed_at + 1], sent, int(test.y[aimed_at]), poisoned.target_class
            )
        elif poisoned.trigger is not None and poisoned.target_class is not None:
            eligible = metrics.non_target_mask(test.y, poisoned.target_class)
            if poisoned.source_class is not None:  # a source-specific backdoor is measured on its source
                eligible &= test.y == poisoned.source_class
            triggered = poisoned.trigger.apply(test.X[eligible])
            y_pred = model.predict(triggered)
            y_true = test.y[eligible]
            out["asr"] = metrics.attack_success_rate(y_true, y_pred, poisoned.target_class)
            out["ra"] = metrics.robust_accuracy(y_true, y_pred, poisoned.target_class)
        elif poisoned.subpopulation is not None:  # accuracy on the group and on the rest, and their drops
            inside = poisoned.subpopulation.contains(test.X)
            clean = make_model(run.seed).fit(train.X, train.y).predict(test.X)
            hit = model.predict(test.X) == test.y
            was = clean == test.y
            for name, rows in (("subpop", inside), ("rest", ~inside)):
                if rows.any():
                    out[f"{name}_acc"] = float(hit[rows].mean())
                    out[f"{name}_drop"] = float(was[rows].mean() - hit[rows].mean())
        elif poisoned.source_class is not None and poisoned.target_class is not None:
            out["asr"] = metrics.targeted_flip_success(
                test.y, model.predict(test.X), poisoned.source_class, poisoned.target_class
            )
        return CentralisedRecord(**_identity(run), **out)

    def stub(self, spec: Spec) -> CentralisedRecord:
        return CentralisedRecord(**_identity(cast(RunSpec, spec)))


def _budget(attack: Any) -> str | None:
    """What one poison or perturbed input may change, in words (an evasion attack's or a clean-label ε)."""
    if hasattr(attack, "budget"):
        return str(attack.budget())
    eps = getattr(attack, "eps", None)
    return None if eps is None else f"L∞ ≤ {eps:g}"


#: figures a training defense reports that the run record keeps
_TRAINING_FIGURES = ("dp_epsilon",)


def _identity(spec: RunSpec) -> dict[str, Any]:
    return {
        **identity(spec),
        "poison_rate": spec.poison_rate,
        "defense": spec.defense.label,
    }


def _target_instance(test: Dataset, attack: Any, rng: np.random.Generator) -> int:
    """A test input for a targeted-instance attack: drawn among those outside the attacker's class."""
    target = class_index(attack.target, test, "target")
    eligible = np.flatnonzero(test.y != target)
    if eligible.size == 0:
        raise ConfigError(f"the test split of {test.name} has no input outside target class {attack.target}")
    return int(rng.choice(eligible))


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"poison rate must lie in (0, 1], got {value!r}")
    return float(value)
