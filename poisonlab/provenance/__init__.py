"""Provenance ledger: who added which samples, signed by whom, changed how, and whether it still holds.

A ledger folder keeps every batch of samples bit-exact in a content-addressed
store, a version per change (add, transform, quarantine, rollback) fixed by a
Merkle root over per-sample SHA-256 hashes, and a hash-chained event log; batches
may carry an Ed25519 signature. :meth:`Ledger.verify` recomputes all of it.

Modules::

    hashing     per-sample hashes over a canonical, dtype-aware encoding
    merkle      the Merkle root (and audit paths) over sample hashes
    signing     Ed25519 keys and signatures
    store       the content-addressed .npz object store and version memberships
    ledger      the Ledger (writes, reads, exports)
    transforms  the recorded transforms, by name in TRANSFORMS
    scans       scan reports matched to the version they scanned
    report      diffs and in-toto attestations
    verify      the integrity check
"""

from poisonlab.provenance.hashing import sample_hashes
from poisonlab.provenance.ledger import Ledger
from poisonlab.provenance.merkle import merkle_proof, merkle_root, verify_proof
from poisonlab.provenance.records import Batch, Diff, Event, Quarantined, VerifyReport, Version
from poisonlab.provenance.scans import ScanReport
from poisonlab.provenance.signing import generate_key, load_private_key, sign, verify_signature

__all__ = [
    "Batch",
    "Diff",
    "Event",
    "Ledger",
    "Quarantined",
    "ScanReport",
    "VerifyReport",
    "Version",
    "generate_key",
    "load_private_key",
    "merkle_proof",
    "merkle_root",
    "sample_hashes",
    "sign",
    "verify_proof",
    "verify_signature",
]
