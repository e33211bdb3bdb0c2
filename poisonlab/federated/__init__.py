"""Federated learning: robust rules for aggregating client updates, and a simulation.

Every rule takes the updates stacked as an ``(n, d)`` array and returns an
:class:`AggregationResult`; :data:`AGGREGATORS` and :data:`CLIENT_ATTACKS` are
registries whose entries carry tags (:data:`AGGREGATOR_TAGS`, :data:`CLIENT_ATTACK_TAGS`).
:func:`simulate` runs an in-process, seeded federated training with malicious
clients (:data:`CLIENT_ATTACKS`); it loads PyTorch on first use, so importing this
package stays light. :mod:`poisonlab.federated.flower` adapts the rules and the
attacks to a Flower deployment (``pip install 'poisonlab[flower]'``).
"""

from __future__ import annotations

from poisonlab.federated.aggregators import (
    AGGREGATOR_TAGS,
    AGGREGATORS,
    AggregationResult,
    MinClients,
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
from poisonlab.federated.clients import CLIENT_ATTACK_TAGS, CLIENT_ATTACKS, ClientAttack

_LAZY = {"simulate", "split_clients", "plan_simulation"}  # they import torch


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from poisonlab.federated import simulation

        return getattr(simulation, name)
    raise AttributeError(f"module 'poisonlab.federated' has no attribute {name!r}")


__all__ = [
    "AGGREGATORS",
    "AGGREGATOR_TAGS",
    "CLIENT_ATTACKS",
    "CLIENT_ATTACK_TAGS",
    "AggregationResult",
    "ClientAttack",
    "MinClients",
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
