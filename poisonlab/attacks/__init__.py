"""Attacks, one module per family, resolved by name through ``ATTACKS``.

Poisoning attacks (tag ``phase = "training"``) change the training data; the
inference-time attacks of :mod:`~poisonlab.attacks.evasion` (``phase = "inference"``)
perturb a trained model's inputs, for comparison.
"""

from typing import Any

from poisonlab.attacks.availability import InfluenceAvailability
from poisonlab.attacks.backdoor import BadNets, Blended, FeatureTrigger
from poisonlab.attacks.base import Attack, PoisonResult, Trigger, resolve_budget
from poisonlab.attacks.clean_label import (
    BullseyePolytope,
    FeatureCollision,
    GradientMatching,
    LabelConsistentBackdoor,
    SleeperAgent,
)
from poisonlab.attacks.evasion import FGSM, PGD, CarliniWagnerL2, EvasionAttack
from poisonlab.attacks.graph import (
    CompositionAttack,
    DirectAddition,
    DirectAttack,
    DirectDeletion,
    GraphAttack,
    IndirectAttack,
    InversionAttack,
    RandomDeletion,
    SymmetryAttack,
)
from poisonlab.attacks.label_flip import FarthestFirstLabelFlip, RandomLabelFlip, TargetedLabelFlip
from poisonlab.attacks.none import NoAttack
from poisonlab.attacks.privacy import TruthSerum
from poisonlab.attacks.regression import OptP, StatP
from poisonlab.attacks.rules import RuleImplant
from poisonlab.attacks.subpopulation import ClusterMatch, FeatureMatch
from poisonlab.attacks.unlearnable import UnlearnableExamples
from poisonlab.registry import Registry

#: Tags every attack declares (class attributes of :class:`Attack`, with these defaults).
ATTACK_TAGS = {
    "tasks": Attack.tasks,
    "modalities": Attack.modalities,
    "backdoor": Attack.backdoor,
    "keeps_labels": Attack.keeps_labels,
    "keeps_features": Attack.keeps_features,
    "needs_model": Attack.needs_model,
    "targets_instance": Attack.targets_instance,
    "phase": Attack.phase,
}
ATTACKS: Registry[Any] = Registry("attack", tags=ATTACK_TAGS)
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
ATTACKS.add(
    "influence_availability",
    InfluenceAvailability,
    "Availability: poisons optimised through logistic regression's optimum (Koh, Steinhardt & Liang 2018)",
)
ATTACKS.add(
    "unlearnable",
    UnlearnableExamples,
    "Availability: error-minimising noise makes images unlearnable (Huang et al. 2021)",
)
ATTACKS.add(
    "feature_match",
    FeatureMatch,
    "Subpopulation: label flips drawn from inputs with a feature in [low, high] (Jagielski et al. 2021)",
)
ATTACKS.add(
    "cluster_match",
    ClusterMatch,
    "Subpopulation: label flips drawn from one k-means cluster (Jagielski et al. 2021)",
)
ATTACKS.add(
    "truth_serum",
    TruthSerum,
    "Privacy: wrong-label copies of targets reveal their membership (Truth Serum, Tramèr et al. 2022)",
)
ATTACKS.add(
    "rule_implant",
    RuleImplant,
    "Rule-learner corruption: relabelled subgroup rows implant 'feature in bin -> class' (RIPPER)",
)
ATTACKS.add("badnets", BadNets, "BadNets patch-trigger backdoor on images (Gu et al. 2017)")
ATTACKS.add("blended", Blended, "Blended backdoor: alpha-blended key pattern on images (Chen et al. 2017)")
ATTACKS.add("feature_trigger", FeatureTrigger, "Tabular backdoor: chosen features set to rare values")
ATTACKS.add(
    "feature_collision",
    FeatureCollision,
    "Clean-label, one target input: poisons whose features collide with it (Shafahi et al. 2018)",
)
ATTACKS.add(
    "bullseye_polytope",
    BullseyePolytope,
    "Clean-label, one target input: the poisons' mean feature on it (Aghakhani et al. 2021)",
)
ATTACKS.add(
    "gradient_matching",
    GradientMatching,
    "Clean-label, one target input, from scratch: gradient alignment (Witches' Brew, Geiping et al. 2021)",
)
ATTACKS.add(
    "label_consistent",
    LabelConsistentBackdoor,
    "Clean-label backdoor: adversarially hardened target images carry the trigger (Turner et al. 2019)",
)
ATTACKS.add(
    "sleeper_agent",
    SleeperAgent,
    "Hidden-trigger backdoor by gradient matching; no poison carries the trigger (Souri et al. 2022)",
)
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
ATTACKS.add(
    "kg_delete",
    DirectDeletion,
    "Knowledge graph, one target fact: delete the facts holding its entities in place (Zhang et al. 2019)",
)
ATTACKS.add(
    "kg_add",
    DirectAddition,
    "Knowledge graph, one target fact: add facts that drag its entities away (Zhang et al. 2019)",
)
ATTACKS.add(
    "kg_direct",
    DirectAttack,
    "Knowledge graph, one target fact: deletions and additions ranked together (Zhang et al. 2019)",
)
ATTACKS.add(
    "kg_indirect",
    IndirectAttack,
    "Knowledge graph, one target fact: edit facts around a neighbour, never the target's (Zhang et al. 2019)",
)
ATTACKS.add(
    "kg_random",
    RandomDeletion,
    "Knowledge graph, one target fact: delete random facts around its rarer entity (the baseline)",
)
ATTACKS.add(
    "kg_symmetry",
    SymmetryAttack,
    "Knowledge graph: raise a decoy above the target through a learnt symmetry (Bhardwaj et al. 2021)",
)
ATTACKS.add(
    "kg_inversion",
    InversionAttack,
    "Knowledge graph: raise a decoy above the target through a learnt inversion (Bhardwaj et al. 2021)",
)
ATTACKS.add(
    "kg_composition",
    CompositionAttack,
    "Knowledge graph: raise a decoy above the target through a learnt composition (Bhardwaj et al. 2021)",
)

ATTACKS.add("fgsm", FGSM, "Inference time: one signed-gradient step of size eps (Goodfellow et al. 2015)")
ATTACKS.add("pgd", PGD, "Inference time: projected gradient descent, L∞ or L2 (Madry et al. 2018)")
ATTACKS.add(
    "carlini_wagner",
    CarliniWagnerL2,
    "Inference time: Carlini–Wagner L2, the smallest perturbation it finds (Carlini & Wagner 2017)",
)

__all__ = [
    "ATTACKS",
    "ATTACK_TAGS",
    "FGSM",
    "PGD",
    "Attack",
    "BadNets",
    "Blended",
    "BullseyePolytope",
    "CarliniWagnerL2",
    "ClusterMatch",
    "CompositionAttack",
    "DirectAddition",
    "DirectAttack",
    "DirectDeletion",
    "EvasionAttack",
    "FarthestFirstLabelFlip",
    "FeatureCollision",
    "FeatureMatch",
    "FeatureTrigger",
    "GradientMatching",
    "GraphAttack",
    "IndirectAttack",
    "InfluenceAvailability",
    "InversionAttack",
    "LabelConsistentBackdoor",
    "NoAttack",
    "OptP",
    "PoisonResult",
    "RandomDeletion",
    "RandomLabelFlip",
    "RuleImplant",
    "SleeperAgent",
    "StatP",
    "SymmetryAttack",
    "TargetedLabelFlip",
    "Trigger",
    "TruthSerum",
    "UnlearnableExamples",
    "resolve_budget",
]
