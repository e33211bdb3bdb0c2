"""Online learning from a stream of batches, some sources poisoned, behind a gate.

:class:`StreamGate` checks each batch against a trusted history (a clean seed plus
every sample it admitted) and returns a :class:`GateDecision` whose ``rejected`` mask
says which samples go to quarantine. :func:`simulate_stream` runs a seeded stream on
a :class:`~poisonlab.data.Dataset` with backdoor-poisoning sources, with or without
the gate, and returns a :class:`StreamResult` (per-batch records, final accuracy and
attack success rate, totals, and the quarantined samples); its ``on_gate`` hook sees
every batch as a :class:`GateEvent` before the learner does, and
:class:`LedgerRecorder` is that hook recording the stream in a provenance ledger.
Learners come from :data:`LEARNERS` (one :class:`Learner` protocol); PyTorch is
imported only when a torch learner is used.
"""

from __future__ import annotations

from poisonlab.stream.gate import GateDecision, StreamGate
from poisonlab.stream.learners import LEARNERS, Learner
from poisonlab.stream.recorder import LedgerRecorder, LedgerSummary
from poisonlab.stream.simulation import (
    BatchRecord,
    GateEvent,
    StreamResult,
    simulate_stream,
)

__all__ = [
    "LEARNERS",
    "BatchRecord",
    "GateDecision",
    "GateEvent",
    "Learner",
    "LedgerRecorder",
    "LedgerSummary",
    "StreamGate",
    "StreamResult",
    "simulate_stream",
]
