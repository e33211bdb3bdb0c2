"""Attacks on the training data, one module per family, resolved by name through ``ATTACKS``."""

from poisonlab.attacks.backdoor import BadNets, Blended, FeatureTrigger
from poisonlab.attacks.base import Attack, PoisonResult, Trigger, resolve_budget
from poisonlab.attacks.label_flip import FarthestFirstLabelFlip, RandomLabelFlip, TargetedLabelFlip
from poisonlab.attacks.none import NoAttack
from poisonlab.attacks.regression import OptP, StatP
from poisonlab.registry import Registry

#: Tags every attack declares (class attributes of :class:`Attack`, with these defaults).
ATTACK_TAGS = {
    "tasks": Attack.tasks,
    "modalities": Attack.modalities,
    "backdoor": Attack.backdoor,
    "keeps_labels": Attack.keeps_labels,
    "keeps_features": Attack.keeps_features,
    "needs_model": Attack.needs_model,
}
ATTACKS: Registry[Attack] = Registry("attack", tags=ATTACK_TAGS)
ATTACKS.add("none", NoAttack, "No poisoning: the clean baseline every grid compares against")
ATTACKS.add("label_flip", RandomLabelFlip, "Random label flipping: chosen samples get another class")
ATTACKS.add(
    "targeted_flip", TargetedLabelFlip, "Targeted flipping: source-class samples relabelled as the target"
)
ATTACKS.add(
    "farthest_flip",
    FarthestFirstLabelFlip,
    "Model-aware flipping: relabel the samples a clean surrogate is most sure of (Xiao et al. 2015)",
)
ATTACKS.add("badnets", BadNets, "BadNets patch-trigger backdoor on images (Gu et al. 2017)")
ATTACKS.add("blended", Blended, "Blended backdoor: alpha-blended key pattern on images (Chen et al. 2017)")
ATTACKS.add("feature_trigger", FeatureTrigger, "Tabular backdoor: chosen features set to rare values")
ATTACKS.add(
    "optp",
    OptP,
    "Regression: poison points optimised against ridge regression (OptP, Jagielski et al. 2018)",
)
ATTACKS.add(
    "statp",
    StatP,
    "Regression: poison points sampled from the data's moments (StatP, Jagielski et al. 2018)",
)

__all__ = [
    "ATTACKS",
    "ATTACK_TAGS",
    "Attack",
    "BadNets",
    "Blended",
    "FarthestFirstLabelFlip",
    "FeatureTrigger",
    "NoAttack",
    "OptP",
    "PoisonResult",
    "RandomLabelFlip",
    "StatP",
    "TargetedLabelFlip",
    "Trigger",
    "resolve_budget",
]
