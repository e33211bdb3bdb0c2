"""The typed, frozen records a ledger hands out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Version:
    """One version of the dataset: a list of samples, fixed by its Merkle ``root``.

    Attributes
    ----------
    number : int
        1, 2, … in the order the versions were made.
    parent : int or None
        The head version when this one was made (``None`` for version 1).
    event_seq : int
        The event that made this version.
    root : str
        Hex Merkle root over the version's sample hashes, in order.
    n : int
        Number of samples.
    membership : str
        Digest of the membership object in the content store.
    schema : dict
        ``x_dtype``, ``x_shape``, ``y_dtype`` and ``ids`` of the version's arrays.
    """

    number: int
    parent: int | None
    event_seq: int
    root: str
    n: int
    membership: str
    schema: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class Event:
    """One link of the hash chain; ``hash`` is SHA-256 over the canonical JSON of the other fields."""

    seq: int
    time: str
    actor: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Batch:
    """A stored shard: an added batch (``kind="add"``) or the output of a transform."""

    id: int
    event_seq: int
    kind: str
    source: str
    shard: str
    n: int
    root: str
    public_key: str | None
    signature: str | None


@dataclass(frozen=True)
class Quarantined:
    """A sample taken out of the dataset by the quarantine event ``seq`` (it stays stored)."""

    id: int | str
    seq: int
    sample_hash: str


@dataclass(frozen=True)
class Diff:
    """Sample ids that differ between two versions.

    ``relabelled``: same id and features, another label; ``modified``: same id,
    other features (the label may also differ).
    """

    added: list[int | str]
    removed: list[int | str]
    relabelled: list[int | str]
    modified: list[int | str]

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.relabelled or self.modified)


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`Ledger.verify`.

    ``problems`` each name the record at fault (event, batch, version); ``notes``
    are harmless findings such as orphan objects left by an interrupted write.
    """

    ok: bool
    problems: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None
