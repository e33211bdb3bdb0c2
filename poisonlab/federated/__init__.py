"""Federated learning: robust rules for aggregating client updates, and a simulation.

Every rule takes the updates stacked as an ``(n, d)`` array and returns an
:class:`AggregationResult`; :data:`AGGREGATORS` maps rule names to the functions.
:mod:`poisonlab.federated.simulation` runs an in-process, seeded federated
training with malicious clients (:mod:`poisonlab.federated.clients`); it loads
PyTorch, so it is imported from its module rather than from here.
"""

from __future__ import annotations

from poisonlab.federated.aggregators import (
    AGGREGATORS,
    AggregationResult,
    bulyan,
    check_preconditions,
    coordinate_median,
    fedavg,
    fltrust,
    krum,
    multi_krum,
    norm_clipping,
    pairwise_sq_distances,
    trimmed_mean,
)

__all__ = [
    "AGGREGATORS",
    "AggregationResult",
    "bulyan",
    "check_preconditions",
    "coordinate_median",
    "fedavg",
    "fltrust",
    "krum",
    "multi_krum",
    "norm_clipping",
    "pairwise_sq_distances",
    "trimmed_mean",
]
