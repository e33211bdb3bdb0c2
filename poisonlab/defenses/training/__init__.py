"""Training-side defenses: robust and certified training of the run's model.

Each follows the contract of :mod:`poisonlab.defenses.training.base`:
``train(train, make_model, rng) -> TrainedModel``.

- :mod:`~.partition`: Deep Partition Aggregation, certified (Levine & Feizi 2021)
- :mod:`~.finite_aggregation`: Finite Aggregation, a tighter partition certificate (Wang et al. 2022)
- :mod:`~.bagging`: bagging with its probabilistic certificate (Jia, Cao & Gong 2021)
- :mod:`~.dp`: DP-SGD through Opacus (Abadi et al. 2016)
- :mod:`~.abl`: Anti-Backdoor Learning (Li et al. 2021)
- :mod:`~.synthesised`: training on synthesised, correctly labelled poisons
"""

from poisonlab.defenses.training.abl import AntiBackdoorLearning
from poisonlab.defenses.training.bagging import BaggingCertifier, BaggingDefense
from poisonlab.defenses.training.base import (
    Certificate,
    MakeModel,
    TrainedModel,
    TrainingDefense,
    certified_accuracy,
)
from poisonlab.defenses.training.finite_aggregation import FiniteAggregation, FiniteAggregationDefense
from poisonlab.defenses.training.partition import DeepPartitionAggregation, DPADefense
from poisonlab.defenses.training.synthesised import SynthesisedPoisons

__all__ = [
    "AntiBackdoorLearning",
    "BaggingCertifier",
    "BaggingDefense",
    "Certificate",
    "DPADefense",
    "DeepPartitionAggregation",
    "FiniteAggregation",
    "FiniteAggregationDefense",
    "MakeModel",
    "SynthesisedPoisons",
    "TrainedModel",
    "TrainingDefense",
    "certified_accuracy",
]
