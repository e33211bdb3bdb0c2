"""Federated learning: robust rules for aggregating client updates.

Every rule takes the updates stacked as an ``(n, d)`` array and returns an
:class:`AggregationResult`; :data:`AGGREGATORS` maps rule names to the functions.
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
