"""Privacy scenarios in the run config: Truth Serum measured by LiRA, with and without a defense.

A config with ``scenario = "privacy"`` expands ``datasets × models × defenses ×
attacks × seeds`` into :class:`PrivacySpec` runs of
:func:`poisonlab.privacy.membership_audit`::

    scenario = "privacy"
    datasets = ["digits"]
    models = ["mlp"]         # dp_sgd trains torch models ("logreg" with defenses = ["none"])
    attacks = [{ name = "truth_serum", copies = 4 }, { name = "truth_serum", copies = 8 }]
    targets = 50             # pool rows attacked per run, drawn from the seed
    shadow_models = 16       # models on random halves; each is the victim once
    defenses = ["none", "dp_sgd"]
    seeds = [0, 1]

One run trains ``shadow_models`` models on random halves of the dataset, once clean
and once with the attack's wrong-label copies of every target added (shadows
included, as in the paper), and runs LiRA on the targets. Its record
(:class:`~poisonlab.experiments.records.PrivacyRecord`) holds both sides of the
comparison, so the clean audit needs no run of its own: LiRA's TPR at 0.1% and 1%
FPR and its AUC, poisoned (``lira_tpr_01``, ``lira_tpr_1``, ``lira_auc``) and clean
(the same with ``_clean``), the models' accuracy on the rows outside their half
with the poisons (``clean_acc``) and what the poisons cost it (``acc_drop``), the
poisons added (``n_modified``) and, with ``dp_sgd``, the ε spent.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError
from poisonlab.experiments.protocol import OnProgress, Scenario, Spec, data_key, identity
from poisonlab.experiments.records import PrivacyRecord
from poisonlab.experiments.spec import (
    NONE,
    Component,
    DataRef,
    HashedSpec,
    bounded_int,
    component,
    listed,
    run_options,
)

__all__ = ["PRIVACY_KEYS", "PrivacyScenario", "PrivacySpec"]

#: Top-level keys a privacy config may hold.
PRIVACY_KEYS = {"scenario", "datasets", "models", "attacks", "targets", "shadow_models", "defenses", "seeds"}
#: The attacks a membership audit runs.
ATTACK = "truth_serum"
#: Most targets and shadow models per run.
MAX_TARGETS = 10_000
MAX_MODELS = 1_000


@dataclass(frozen=True, eq=False)
class PrivacySpec(HashedSpec):
    """Everything one privacy run depends on; its hash is the run's key in the store."""

    scenario: ClassVar[str] = "privacy"

    dataset: Component
    model: Component
    attack: Component
    targets: int
    shadow_models: int
    defense: Component
    seed: int
    data_digest: str = ""

    @property
    def test_size(self) -> float:
        """Every model is tested on the rows outside its own half; there is no split."""
        return 0.0


class PrivacyScenario(Scenario):
    """``scenario = "privacy"``: Truth Serum and LiRA, clean against poisoned (see the module docstring)."""

    keys = frozenset(PRIVACY_KEYS)
    example: ClassVar[dict[str, Any]] = {
        "scenario": "privacy",
        "datasets": ["wine"],
        "models": ["logreg"],
        "attacks": [{"name": "truth_serum", "copies": 2}],
        "targets": 5,
        "shadow_models": 6,
    }

    def parse(self, raw: Mapping[str, Any], datasets: Sequence[DataRef]) -> list[Spec]:
        from poisonlab.privacy.audit import MIN_MODELS

        models = [component(e, "models") for e in listed(raw, "models", ["logreg"])]
        attacks = [component(e, "attacks") for e in listed(raw, "attacks", [ATTACK])]
        defenses = [component(e, "defenses") for e in listed(raw, "defenses", [NONE])]
        targets = bounded_int(raw.get("targets", 50), "targets (pool rows attacked per run)", 1, MAX_TARGETS)
        shadows = bounded_int(raw.get("shadow_models", 16), "shadow_models", MIN_MODELS, MAX_MODELS)
        seeds, _, _ = run_options(raw)
        for attack in attacks:
            if attack.name != ATTACK:
                raise ConfigError(
                    f"a privacy config measures {ATTACK!r}, got attack {attack.name!r} "
                    "(each run measures the clean models beside the poisoned ones)"
                )
            if "targets" in attack.params:
                raise ConfigError(f"{ATTACK}: set the targets with the config's 'targets', not the attack's")
        for model in models:
            if "random_state" in model.params:
                raise ConfigError(f"model {model.name!r}: each shadow model's seed sets random_state")
        return [
            PrivacySpec(ref.component, model, attack, targets, shadows, defense, seed, ref.digest)
            for ref in datasets
            for model, defense, attack, seed in itertools.product(models, defenses, attacks, seeds)
        ]

    def plan(self, specs: Sequence[Spec], data: Mapping[str, Dataset]) -> None:
        """Every model gives class probabilities for the data, every defense trains them, the pool fits."""
        from poisonlab.attacks import ATTACKS
        from poisonlab.defenses import DEFENSES
        from poisonlab.models import MODELS

        checked: set[tuple[Any, ...]] = set()
        for spec in cast(Sequence[PrivacySpec], specs):
            key = data_key(spec.dataset, spec.data_digest)
            dataset = data[key]
            what = f"dataset {spec.dataset.label!r} ({dataset.modality} {dataset.task})"
            if ("model", spec.model.label, key) not in checked:
                checked.add(("model", spec.model.label, key))
                entry = MODELS.require(
                    spec.model.name, what, task="classification", modalities=dataset.modality
                )
                entry.create(random_state=0, **spec.model.params)
            if ("attack", spec.attack.label, key) not in checked:
                checked.add(("attack", spec.attack.label, key))
                ATTACKS.require(spec.attack.name, what, modalities=dataset.modality, tasks=dataset.task)
                ATTACKS.create(spec.attack.name, **spec.attack.params)
            if spec.defense.name != NONE and ("defense", spec.defense.label) not in checked:
                checked.add(("defense", spec.defense.label))
                entry = DEFENSES.require(
                    spec.defense.name,
                    "a membership audit, which trains each of its models through it",
                    stage="training",
                    certifies=False,
                )
                if entry.tag("needs_torch"):
                    MODELS.require(spec.model.name, f"defense {spec.defense.name!r}", torch=True)
                DEFENSES.create(spec.defense.name, **spec.defense.params)
            if spec.targets > len(dataset):
                raise ConfigError(
                    f"targets ({spec.targets}) must not exceed the {len(dataset)} rows "
                    f"of {spec.dataset.label!r}"
                )

    def execute(self, spec: Spec, data: Dataset, on_progress: OnProgress | None = None) -> PrivacyRecord:
        from poisonlab.attacks import ATTACKS
        from poisonlab.defenses import DEFENSES
        from poisonlab.privacy import membership_audit

        run = cast(PrivacySpec, spec)
        copies = ATTACKS.create(run.attack.name, **run.attack.params).copies
        defense = (
            None if run.defense.name == NONE else DEFENSES.create(run.defense.name, **run.defense.params)
        )
        audit = membership_audit(
            data,
            model=run.model.name,
            model_params=run.model.params,
            n_models=run.shadow_models,
            targets=run.targets,
            copies=copies,
            defense=defense,
            random_state=run.seed,
        )
        return PrivacyRecord(
            **_identity(run),
            n_train=len(data) // 2,
            n_targets=int(audit.targets.size),
            n_modified=float(audit.targets.size * audit.copies),
            clean_acc=audit.poisoned_accuracy,
            acc_drop=round(audit.clean_accuracy - audit.poisoned_accuracy, 6),
            lira_tpr_01=audit.poisoned.tpr_at_0_1pct_fpr,
            lira_tpr_1=audit.poisoned.tpr_at_1pct_fpr,
            lira_auc=audit.poisoned.auc,
            lira_tpr_01_clean=audit.clean.tpr_at_0_1pct_fpr,
            lira_tpr_1_clean=audit.clean.tpr_at_1pct_fpr,
            lira_auc_clean=audit.clean.auc,
            dp_epsilon=audit.epsilon,
        )

    def stub(self, spec: Spec) -> PrivacyRecord:
        return PrivacyRecord(**_identity(cast(PrivacySpec, spec)))


def _identity(spec: PrivacySpec) -> dict[str, Any]:
    return {**identity(spec), "defense": spec.defense.label, "shadow_models": spec.shadow_models}
