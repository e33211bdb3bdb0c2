"""A binary Merkle tree over sample hashes, with domain separation.

- leaf ``i`` is ``H(0x00 ‖ sample_hash_i)``;
- an inner node is ``H(0x01 ‖ left ‖ right)``;
- a level with an odd number of nodes carries its last node up *unchanged* (it is
  not duplicated, so no two different leaf lists share a root, unlike the
  duplicating scheme of Bitcoin, CVE-2012-2459);
- the root of the empty set is ``H(b"")``.

``H`` is SHA-256. The leaf order is the order of the samples in the version.

Carrying odd nodes up gives the tree of RFC 6962: the root over ``n`` leaves joins
the perfect subtrees of the binary digits of ``n``, largest first, from the right.
:class:`MerkleAccumulator` uses that to reach the same root from leaves given a
block at a time, holding one block and one node per binary digit.

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


class MerkleAccumulator:
    """:func:`merkle_root` over leaves that arrive in blocks of any size, in bounded memory.

    Leaves are gathered into aligned blocks of ``block`` (a power of two); each full
    block is a perfect subtree, joined with equal-sized neighbours as they complete.

    Examples
    --------
    >>> acc = MerkleAccumulator()                                   # doctest: +SKIP
    >>> for hashes in blocks_of_sample_hashes:                      # doctest: +SKIP
    ...     acc.update(hashes)
    >>> acc.root() == merkle_root(np.concatenate(blocks_of_sample_hashes))  # doctest: +SKIP
    True
    """

    def __init__(self, block: int = 2**16) -> None:
        if block < 1 or block & (block - 1):
            raise DataError(f"a Merkle block is a power of two, got {block}")
        self._buffer = np.empty((block, 32), dtype=np.uint8)
        self._filled = 0
        self._subtrees: list[tuple[int, bytes]] = []  # (leaves, root), sizes strictly decreasing
        self.n = 0

    def update(self, leaves: np.ndarray) -> None:
        """Append the ``(k, 32)`` uint8 sample hashes ``leaves``."""
        leaves = _check_leaves(leaves)
        self.n += leaves.shape[0]
        block = self._buffer.shape[0]
        start = 0
        while start < leaves.shape[0]:
            take = min(block - self._filled, leaves.shape[0] - start)
            self._buffer[self._filled : self._filled + take] = leaves[start : start + take]
            self._filled += take
            start += take
            if self._filled == block:
                self._join(block, merkle_root(self._buffer))
                self._filled = 0

    def _join(self, size: int, node: bytes) -> None:
        while self._subtrees and self._subtrees[-1][0] == size:
            _, left = self._subtrees.pop()
            node = hashlib.sha256(NODE + left + node).digest()
            size *= 2
        self._subtrees.append((size, node))

    def root(self) -> bytes:
        """The root over every leaf so far (the leaves may go on arriving after)."""
        node = merkle_root(self._buffer[: self._filled]) if self._filled else None
        for _, left in reversed(self._subtrees):
            node = left if node is None else hashlib.sha256(NODE + left + node).digest()
        return EMPTY_ROOT if node is None else node
