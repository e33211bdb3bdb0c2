"""Recording a stream in a provenance ledger: the ``on_gate`` hook of :func:`.simulate_stream`.

Each batch is added to the ledger with its source, then the samples the gate
rejected are quarantined with the gate's reason, so they stay stored and accounted
for instead of being dropped. The ledger is created at the first batch (after the
simulation validated its arguments), so a run refused up front leaves nothing on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from poisonlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from poisonlab.data.dataset import Dataset
    from poisonlab.provenance import Ledger
    from poisonlab.stream.simulation import GateEvent

__all__ = ["LedgerRecorder", "LedgerSummary"]

#: The actor the stream's events are recorded under.
ACTOR = "poisonlab-stream"


@dataclass(frozen=True)
class LedgerSummary:
    """The recorded ledger: its head, how many samples it holds and quarantined, and whether it verifies."""

    path: str
    head_version: int
    n_samples: int
    n_quarantined: int
    verified: bool
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "head_version": self.head_version,
            "n_samples": self.n_samples,
            "n_quarantined": self.n_quarantined,
            "verified": self.verified,
            "problems": list(self.problems),
        }


class LedgerRecorder:
    """Record every batch of a stream in the ledger at ``path`` (created if missing or empty).

    Parameters
    ----------
    path : path-like
        The ledger folder: a ledger, an empty folder or a path that does not exist yet.
    actor : str
        Who the events are recorded as.

    Examples
    --------
    >>> recorder = LedgerRecorder("stream-ledger").check(train)      # doctest: +SKIP
    >>> with recorder:                                               # doctest: +SKIP
    ...     simulate_stream(train, test, on_gate=recorder)
    >>> recorder.summary().verified                                  # doctest: +SKIP
    True
    """

    def __init__(self, path: str | os.PathLike[str], *, actor: str = ACTOR) -> None:
        self.path = Path(path)
        self.actor = actor
        self.ledger: Ledger | None = None

    # ------------------------------------------------------------------ before the stream
    def _existing(self) -> bool:
        """Whether ``path`` is a ledger to open (``False``: one to create); refuses anything else."""
        from poisonlab.provenance.ledger import DB_NAME

        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} exists and is not a folder, so it cannot hold a ledger")
        if not self.path.exists() or not any(self.path.iterdir()):
            return False
        if not (self.path / DB_NAME).is_file():
            raise ConfigError(f"{self.path} is a folder that is not empty and is not a poisonlab ledger")
        return True

    def check(self, train: Dataset) -> Self:
        """Fail now, before any write, if the stream of ``train`` cannot be recorded here.

        Raises
        ------
        ConfigError
            If the path is a file, or a folder that is neither empty nor a ledger.
        DataError
            If the ledger's samples have another schema, or it already records (or
            quarantined) one of ``train``'s ids.
        """
        from poisonlab.provenance import Ledger
        from poisonlab.provenance.chain import describe_schema, schema_of

        if not self._existing():
            return self
        with Ledger.open(self.path) as ledger:
            versions = ledger.versions()
            if not versions:
                return self
            head = versions[-1]
            schema = schema_of(train.X[:1], train.original_labels(train.y[:1]), train.ids[:1])
            if head.schema != schema:
                raise DataError(
                    f"the ledger {self.path}: the stream's samples ({describe_schema(schema)}) do not match "
                    f"the ledger's schema ({describe_schema(head.schema)})"
                )
            # The ledger refuses ids already in its head; a quarantined id coming back is as suspect.
            recorded = set(ledger.membership(head).ids.tolist()) | {q.id for q in ledger.quarantined()}
            clash = next((i for i in train.ids.tolist() if i in recorded), None)
            if clash is not None:
                raise DataError(
                    f"the ledger {self.path} already records sample id {clash!r} of {train.name}; "
                    "record this stream in a new ledger"
                )
        return self

    # ------------------------------------------------------------------ the hook
    def __call__(self, event: GateEvent) -> None:
        """Add the batch with its source, then quarantine what the gate rejected, with its reason."""
        from poisonlab.provenance import Ledger

        if self.ledger is None:  # created at the first batch: every option has been checked
            self.ledger = Ledger.open(self.path) if self._existing() else Ledger.init(self.path)
        self.ledger.add(
            event.X,
            event.y,
            event.ids,
            source=event.source,
            actor=self.actor,
            note=f"stream step {event.step}",
        )
        if event.rejected.any():
            reason = {"gate": "StreamGate", "step": event.step, "reason": event.reason}
            self.ledger.quarantine(event.ids[event.rejected], reason=reason, actor=self.actor)

    def close(self) -> None:
        """Close the ledger; the batches recorded so far stay recorded."""
        if self.ledger is not None:
            self.ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ afterwards
    def summary(self) -> LedgerSummary | None:
        """The ledger's head, quarantine count and integrity (``None`` if nothing was recorded)."""
        if self.ledger is None:
            return None
        from poisonlab.provenance import Ledger

        with Ledger.open(self.path) as ledger:
            head = ledger.head()
            report = ledger.verify()
            return LedgerSummary(
                path=str(self.path),
                head_version=head.number,
                n_samples=head.n,
                n_quarantined=len(ledger.quarantined()),
                verified=report.ok,
                problems=tuple(report.problems),
            )
