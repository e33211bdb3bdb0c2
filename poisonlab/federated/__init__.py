"""Federated learning: robust rules for aggregating client updates, and a simulation.

Every rule takes the updates stacked as an ``(n, d)`` array and returns an
:class:`AggregationResult`; :data:`AGGREGATORS` maps rule names to the functions.
:func:`simulate` runs an in-process, seeded federated training with malicious
clients (:data:`CLIENT_ATTACKS`); it loads PyTorch on first use, so importing this
package stays light. :mod:`poisonlab.federated.flower` adapts the rules and the
attacks to a Flower deployment (``pip install 'poisonlab[flower]'``).
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
from poisonlab.federated.clients import CLIENT_ATTACKS

_LAZY = {"simulate", "split_clients", "plan_simulation"}  # they import torch


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from poisonlab.federated import simulation

        return getattr(simulation, name)
    raise AttributeError(f"module 'poisonlab.federated' has no attribute {name!r}")


__all__ = [
    "AGGREGATORS",
    "CLIENT_ATTACKS",
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
    "plan_simulation",
    "simulate",
    "split_clients",
    "trimmed_mean",
]
