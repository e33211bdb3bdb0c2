"""Online learning from a stream of batches, some sources poisoned, behind a gate.

:class:`StreamGate` checks each batch against a trusted history (a clean seed plus
every sample it admitted) and returns a :class:`GateDecision` whose ``rejected`` mask
says which samples go to quarantine. :func:`simulate_stream` runs a seeded stream on
a :class:`~poisonlab.data.Dataset` with backdoor-poisoning sources, with or without
the gate, and returns a :class:`StreamResult` (per-batch records, final accuracy and
attack success rate, totals, and the quarantined samples); its ``on_gate`` hook sees
every batch as a :class:`GateEvent` before the learner does. PyTorch is imported only
when a torch learner is used.
"""

from __future__ import annotations

from poisonlab.stream.gate import GateDecision, StreamGate
from poisonlab.stream.simulation import (
    ATTACK_NAMES,
    LEARNERS,
    BatchRecord,
    GateEvent,
    StreamResult,
    simulate_stream,
)

__all__ = [
    "ATTACK_NAMES",
    "LEARNERS",
    "BatchRecord",
    "GateDecision",
    "GateEvent",
    "StreamGate",
    "StreamResult",
    "simulate_stream",
]
