"""Read-only views over a ledger: version diffs and in-toto attestations.

References
----------
.. [1] in-toto Attestation Framework, Statement layer v1.
   https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from poisonlab.provenance.chain import positions
from poisonlab.provenance.records import Diff, Event, Version

if TYPE_CHECKING:
    from poisonlab.provenance.ledger import Ledger

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://poisonlab.dev/provenance/v1"


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether two arrays hold the same bytes (NaN-safe, dtype-strict)."""
    if a.dtype != b.dtype or a.shape[1:] != b.shape[1:]:
        return np.zeros(a.shape[0], dtype=bool)
    k = a.shape[0]
    left = np.ascontiguousarray(a).reshape(k, -1).view(np.uint8)
    right = np.ascontiguousarray(b).reshape(k, -1).view(np.uint8)
    return np.all(left == right, axis=1)


def diff_versions(ledger: Ledger, old: Version, new: Version) -> Diff:
    """Ids added, removed, relabelled (same features) and modified (other features), ``old`` → ``new``."""
    before, after = ledger.membership(old), ledger.membership(new)
    in_before = positions(before.ids, after.ids)
    in_after = positions(after.ids, before.ids)
    common_new = np.nonzero(in_before >= 0)[0]
    common_old = in_before[common_new]
    changed = ~np.all(before.hashes[common_old] == after.hashes[common_new], axis=1)
    relabelled: list[Any] = []
    modified: list[Any] = []
    if changed.any():
        X_old, _, _, _ = ledger.arrays(old)
        X_new, _, _, _ = ledger.arrays(new)
        c_old, c_new = common_old[changed], common_new[changed]
        same_features = _same_rows(X_old[c_old], X_new[c_new])
        # The hash covers id, features and label: same id and features means another label.
        relabelled = after.ids[c_new[same_features]].tolist()
        modified = after.ids[c_new[~same_features]].tolist()
    return Diff(
        added=after.ids[in_before < 0].tolist(),
        removed=before.ids[in_after < 0].tolist(),
        relabelled=relabelled,
        modified=modified,
    )


def _lineage(ledger: Ledger, record: Version, events: dict[int, Event]) -> list[Event]:
    """The events that shaped ``record``, oldest first (a rollback jumps to its target)."""
    chain: list[Event] = []
    current: Version | None = record
    while current is not None:
        event = events[current.event_seq]
        chain.append(event)
        if event.kind == "rollback":
            current = ledger.version(int(event.payload["target"]))
        elif current.parent is not None:
            current = ledger.version(current.parent)
        else:
            current = None
    return chain[::-1]


def attestation(ledger: Ledger, record: Version) -> dict[str, Any]:
    """An in-toto Statement v1 whose subject is the version's Merkle root.

    The predicate (type ``https://poisonlab.dev/provenance/v1``) lists the sources
    (batches, sample counts in this version, signer keys), the transforms and
    quarantines in the version's lineage, and the hash of the event that made the
    version, which pins the whole chain before it.
    """
    events = {event.seq: event for event in ledger.log()}
    members = ledger.membership(record)
    names, counts = np.unique(members.source_names(), return_counts=True)
    batches = [b for b in ledger.batches() if b.kind == "add" and b.event_seq <= record.event_seq]
    sources = []
    for name, count in zip(names.tolist(), counts.tolist(), strict=True):
        own = [b for b in batches if b.source == name]
        sources.append(
            {
                "name": name,
                "samples": int(count),
                "batches": [b.id for b in own],
                "signers": sorted({b.public_key for b in own if b.public_key}),
            }
        )
    lineage = _lineage(ledger, record, events)
    transforms = [
        {
            "event": e.seq,
            "name": e.payload["name"],
            "params": e.payload["params"],
            "code_hash": e.payload["code_hash"],
            "input_version": e.payload["input_version"],
            "output_version": e.payload["version"],
        }
        for e in lineage
        if e.kind == "transform"
    ]
    quarantines = [
        {
            "event": e.seq,
            "reason": e.payload["reason"],
            "ids": e.payload["ids"],
            "version": e.payload["version"],
        }
        for e in lineage
        if e.kind == "quarantine"
    ]
    made_by = events[record.event_seq]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"poisonlab-dataset-v{record.number}", "digest": {"sha256": record.root}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "version": record.number,
            "samples": record.n,
            "merkle": "sha256; leaf = H(0x00 || sample hash), node = H(0x01 || left || right), "
            "odd node carried up",
            "schema": record.schema,
            "sources": sources,
            "transforms": transforms,
            "quarantines": quarantines,
            "chain": {"event": made_by.seq, "hash": made_by.hash},
        },
    }
