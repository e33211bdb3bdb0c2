"""The objects an add writes, a block of rows at a time: the batch's shard and the new membership.

A shard holds ``X``, ``y`` and ``ids`` exactly as given; while its rows go to the
store, their sample hashes go to a scratch file and into the batch's Merkle root, so
no more than a block of features is ever in memory. The new version's membership is
then the head's membership followed by the batch, copied member by member.
"""

from __future__ import annotations

import math
from typing import IO

import numpy as np

from poisonlab.errors import DataError
from poisonlab.provenance.hashing import HASH_SIZE, sample_hashes
from poisonlab.provenance.merkle import MerkleAccumulator
from poisonlab.provenance.npz import Member, NpzReader, NpzWriter, block_rows
from poisonlab.provenance.reader import BatchReader


def write_shard(
    writer: NpzWriter,
    batch: BatchReader,
    *,
    rows: int,
    hashes: IO[bytes],
    labels: IO[bytes],
    merkle: MerkleAccumulator,
) -> None:
    """Write ``batch`` as a shard (``X``, ``y``, ``ids``); its sample hashes go to ``hashes`` and ``merkle``.

    ``labels`` is scratch space: the labels wait there while ``X`` is written.
    """
    n, done = batch.n, 0
    with writer.member("X", batch.x_dtype, (n, *batch.x_shape)) as write_x:
        for X, y in batch.blocks(rows):
            if X.dtype != batch.x_dtype or y.dtype != batch.y_dtype or X.shape[1:] != batch.x_shape:
                raise DataError(f"block {done // rows} of the batch changed dtype or shape")
            k = X.shape[0]
            digests = sample_hashes(X, y, batch.ids[done : done + k])
            write_x(X)
            labels.write(np.ascontiguousarray(y).tobytes())
            hashes.write(digests.tobytes())
            merkle.update(digests)
            done += k
            if done > n:
                break
        if done != n:
            raise DataError(f"the batch holds {done} samples, not the {n} it announced")
    copy_rows(writer, "y", labels, batch.y_dtype, (n,))
    writer.array("ids", batch.ids)


def copy_rows(
    writer: NpzWriter,
    name: str,
    spool: IO[bytes],
    dtype: np.dtype,
    shape: tuple[int, ...],
    *,
    merkle: MerkleAccumulator | None = None,
    before: Member | None = None,
) -> None:
    """Member ``name`` from the rows of ``before`` (if any), then the raw rows in ``spool``."""
    row_bytes = dtype.itemsize * math.prod(shape[1:])
    step = block_rows(row_bytes)
    with writer.member(name, dtype, shape) as write:
        if before is not None:
            while before.done < len(before):
                block = before.read(step)
                write(block)
                if merkle is not None:
                    merkle.update(np.ascontiguousarray(block))
        spool.seek(0)
        while raw := spool.read(step * row_bytes):
            array = np.frombuffer(raw, dtype=dtype).reshape(-1, *shape[1:])
            write(array)
            if merkle is not None:
                merkle.update(array)


def _index_of(values: list[str], value: str) -> tuple[list[str], int]:
    if value in values:
        return values, values.index(value)
    return [*values, value], len(values)


def write_extended_membership(
    writer: NpzWriter,
    parent: NpzReader | None,
    *,
    hashes: IO[bytes],
    shard: str,
    ids: np.ndarray,
    source: str,
    merkle: MerkleAccumulator | None,
) -> int:
    """The membership ``parent`` (an open membership object, or ``None``), then every row of ``shard``.

    ``hashes`` holds the batch's sample hashes; when ``merkle`` is given it receives
    every sample hash of the new version, in order. Returns the number of samples.
    """
    n = ids.shape[0]

    def opened(name: str) -> Member | None:
        return None if parent is None else parent.member(name)

    def small(name: str) -> list[str]:
        member = opened(name)
        return [] if member is None else member.rest().tolist()

    shards, shard_index = _index_of(small("shards"), shard)
    sources, source_index = _index_of(small("sources"), source)
    before = {name: opened(name) for name in ("hashes", "shard", "row", "ids", "source")}
    lengths = {0 if member is None else len(member) for member in before.values()}
    if len(lengths) != 1:
        raise DataError("the head's membership arrays differ in length")
    n_parent = lengths.pop()
    total = n_parent + n
    copy_rows(writer, "hashes", hashes, np.dtype(np.uint8), (total, HASH_SIZE), merkle=merkle,
              before=before["hashes"])  # fmt: skip
    step = block_rows(8)

    def column(name: str, dtype: np.dtype, new: np.ndarray | int, *, arange: bool = False) -> None:
        with writer.member(name, dtype, (total,)) as write:
            old = before[name]
            while old is not None and old.done < len(old):
                write(old.read(step))
            for start in range(0, n, step):
                stop = min(n, start + step)
                if isinstance(new, np.ndarray):
                    write(new[start:stop])
                elif arange:
                    write(np.arange(start, stop, dtype=dtype))
                else:
                    write(np.full(stop - start, new, dtype=dtype))

    column("shard", np.dtype(np.int32), shard_index)
    column("row", np.dtype(np.int64), 0, arange=True)
    writer.array("shards", np.array(shards, dtype="<U64"))
    old_ids = before["ids"]
    ids_dtype = ids.dtype if old_ids is None or n_parent == 0 else np.result_type(old_ids.dtype, ids.dtype)
    column("ids", ids_dtype, ids)
    column("source", np.dtype(np.int32), source_index)
    writer.array("sources", np.array(sources) if sources else np.zeros(0, dtype="<U1"))
    return total
