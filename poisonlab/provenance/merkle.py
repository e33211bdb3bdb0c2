"""A binary Merkle tree over sample hashes, with domain separation.

- leaf ``i`` is ``H(0x00 ‖ sample_hash_i)``;
- an inner node is ``H(0x01 ‖ left ‖ right)``;
- a level with an odd number of nodes carries its last node up *unchanged* (it is
  not duplicated, so no two different leaf lists share a root, unlike the
  duplicating scheme of Bitcoin, CVE-2012-2459);
- the root of the empty set is ``H(b"")``.

``H`` is SHA-256. The leaf order is the order of the samples in the version.

References
----------
.. [1] B. Laurie, A. Langley, E. Kasper. "Certificate Transparency", RFC 6962, §2.1
   (the 0x00/0x01 leaf/node prefixes). https://www.rfc-editor.org/rfc/rfc6962#section-2.1
.. [2] CVE-2012-2459: duplicated odd nodes let two transaction lists share a Merkle root.
   https://nvd.nist.gov/vuln/detail/CVE-2012-2459
"""

from __future__ import annotations

import hashlib

import numpy as np

from poisonlab.errors import DataError
from poisonlab.provenance.hashing import small_sha256

LEAF = b"\x00"
NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def _check_leaves(leaves: np.ndarray) -> np.ndarray:
    leaves = np.asarray(leaves)
    if leaves.ndim != 2 or leaves.shape[1] != 32 or leaves.dtype != np.uint8:
        raise DataError(f"Merkle leaves must be an (n, 32) uint8 array, got {leaves.dtype} {leaves.shape}")
    return np.ascontiguousarray(leaves)


def _leaf_level(leaves: np.ndarray) -> bytes:
    base = small_sha256(LEAF)
    view = leaves.reshape(-1).data.cast("B")
    out: list[bytes] = []
    append = out.append
    for start in range(0, len(view), 32):
        h = base.copy()
        h.update(view[start : start + 32])
        append(h.digest())
    return b"".join(out)


def _next_level(level: bytes) -> bytes:
    """Hash pairs of a level (a buffer of 32-byte nodes); an odd last node moves up as is."""
    base = small_sha256(NODE)
    view = memoryview(level)
    size = len(level)
    paired = size - size % 64
    out: list[bytes] = []
    append = out.append
    for start in range(0, paired, 64):
        h = base.copy()
        h.update(view[start : start + 64])
        append(h.digest())
    if paired != size:
        append(bytes(view[paired:]))
    return b"".join(out)


def merkle_root(leaves: np.ndarray) -> bytes:
    """The 32-byte root over ``leaves``, an ``(n, 32)`` uint8 array of sample hashes.

    Raises
    ------
    DataError
        If ``leaves`` is not an ``(n, 32)`` uint8 array.
    """
    leaves = _check_leaves(leaves)
    if leaves.shape[0] == 0:
        return EMPTY_ROOT
    level = _leaf_level(leaves)
    while len(level) > 32:
        level = _next_level(level)
    return level


def merkle_proof(leaves: np.ndarray, index: int) -> list[tuple[str, bytes]]:
    """The audit path for leaf ``index``: ``(side, sibling)`` pairs from the bottom up.

    ``side`` is ``"L"`` when the sibling sits on the left. Levels where the node
    is carried up unpaired contribute nothing.
    """
    leaves = _check_leaves(leaves)
    n = leaves.shape[0]
    if not 0 <= index < n:
        raise DataError(f"leaf index {index} is out of range for {n} leaves")
    level = _leaf_level(leaves)
    proof: list[tuple[str, bytes]] = []
    position = index
    while len(level) > 32:
        count = len(level) // 32
        sibling = position ^ 1
        if sibling < count:
            side = "L" if sibling < position else "R"
            proof.append((side, level[32 * sibling : 32 * sibling + 32]))
        level = _next_level(level)
        position //= 2
    return proof


def verify_proof(sample_hash: bytes, proof: list[tuple[str, bytes]], root: bytes) -> bool:
    """Whether ``sample_hash`` with the audit path ``proof`` leads to ``root``."""
    node = hashlib.sha256(LEAF + bytes(sample_hash)).digest()
    for side, sibling in proof:
        pair = sibling + node if side == "L" else node + sibling
        node = hashlib.sha256(NODE + pair).digest()
    return node == bytes(root)
