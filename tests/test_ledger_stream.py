"""The ledger streams: a batch read, hashed and stored a block at a time gives what the whole arrays give."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonlab.errors import DataError
from poisonlab.provenance import Ledger, merkle_root, sample_hashes
from poisonlab.provenance.io import NpzBatch, open_batch
from poisonlab.provenance.merkle import MerkleAccumulator
from poisonlab.provenance.reader import ArrayBatch
from poisonlab.provenance.store import ObjectStore


def _arrays(n: int, start: int = 0, *, dtype: str = "<f4", seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(dtype)
    y = rng.integers(0, 3, n)
    y[:2] = [0, 1]
    return X, y, np.arange(start, start + n)


def _objects(path: Path) -> list[Path]:
    return sorted(p for p in (path / "objects").rglob("*") if p.is_file())


class CountingBatch(ArrayBatch):
    """An in-memory batch that records the size of every block the ledger asks for."""

    def __init__(self, *arrays: np.ndarray) -> None:
        super().__init__(*arrays)
        self.sizes: list[int] = []

    def blocks(self, rows: int):
        for X, y in super().blocks(rows):
            self.sizes.append(X.shape[0])
            yield X, y


@pytest.mark.parametrize("dtype", ["<f4", ">f8"])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_streamed_add_equals_the_in_memory_add(tmp_path: Path, dtype: str, compressed: bool) -> None:
    X1, y1, ids1 = _arrays(37, dtype=dtype)
    X2, y2, ids2 = _arrays(21, 100, dtype=dtype, seed=1)
    files = []
    for k, (X, y, ids) in enumerate(((X1, y1, ids1), (X2, y2, ids2))):
        files.append(tmp_path / f"b{k}.npz")
        (np.savez_compressed if compressed else np.savez)(files[-1], X=X, y=y, ids=ids)
    with Ledger.init(tmp_path / "whole") as whole, Ledger.init(tmp_path / "streamed") as streamed:
        expected = [whole.add(X1, y1, ids1, source="a"), whole.add(X2, y2, ids2, source="b")]
        got = []
        for path, source in zip(files, "ab", strict=True):
            with open_batch(str(path), rows=4) as batch:
                assert isinstance(batch, NpzBatch) and batch.n > 4  # read a block of 4 at a time
                got.append(streamed.add_batch(batch, source=source, rows=4))
        assert [(v.root, v.n, v.membership) for v in got] == [(v.root, v.n, v.membership) for v in expected]
        assert [b.shard for b in streamed.batches()] == [b.shard for b in whole.batches()]
        assert got[0].root == merkle_root(sample_hashes(X1, y1, ids1)).hex()
        assert streamed.verify().ok and streamed.verify().notes == []
        X, y, ids, source = streamed.arrays()
        assert X.dtype == np.dtype(dtype) and X.tobytes() == np.concatenate([X1, X2]).astype(dtype).tobytes()
        assert y.tobytes() == np.concatenate([y1, y2]).tobytes()
        assert ids.tolist() == [*range(37), *range(100, 121)]
        assert source.tolist() == ["a"] * 37 + ["b"] * 21
    with open_batch(str(files[0])) as batch:  # one default block holds it: read whole, as before
        assert isinstance(batch, ArrayBatch)


def test_the_block_size_bounds_the_rows_read_at_once(tmp_path: Path) -> None:
    batch = CountingBatch(*_arrays(23))
    with Ledger.init(tmp_path / "l") as ledger:
        version = ledger.add_batch(batch, source="a", rows=5)
    assert batch.sizes == [5, 5, 5, 5, 3]
    assert version.root == merkle_root(sample_hashes(*_arrays(23))).hex()
    wide = CountingBatch(np.zeros((10, 2**18), dtype=np.float64), np.arange(10) % 2, np.arange(10))
    with Ledger.init(tmp_path / "wide") as ledger:
        ledger.add_batch(wide, source="a")  # 2 MiB samples: 7 fit the 16 MiB block
    assert wide.sizes == [7, 3]


def test_tampering_in_a_middle_block_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import poisonlab.provenance.npz as npz

    monkeypatch.setattr(npz, "CHUNK_ROWS", 8)  # verify reads blocks of 8 rows too
    np.savez(tmp_path / "d.npz", **dict(zip(("X", "y", "ids"), _arrays(50), strict=True)))
    with Ledger.init(tmp_path / "l") as ledger:
        with open_batch(str(tmp_path / "d.npz")) as batch:
            assert isinstance(batch, NpzBatch)
            ledger.add_batch(batch, source="s")
        shard_digest = ledger.batches()[0].shard
        assert ledger.verify().ok
    shard = tmp_path / "l" / "objects" / shard_digest[:2] / f"{shard_digest}.npz"
    original = shard.read_bytes()
    row_bytes = 6 * 4
    x_data = original.index(b"\x93NUMPY")  # the X member's .npy header opens the file
    header_len = int.from_bytes(original[x_data + 8 : x_data + 10], "little")
    position = x_data + 10 + header_len + 27 * row_bytes + 5  # a byte of sample 27, in the fourth block
    damaged = bytearray(original)
    damaged[position] ^= 0x10
    shard.write_bytes(bytes(damaged))
    with Ledger.open(tmp_path / "l") as ledger:
        report = ledger.verify()
    assert not report.ok
    assert report.first_problem == (
        f"batch 1 (source s): shard {shard_digest}: file digest mismatch; first differing sample id 27"
    )


def _savez_put(self: ObjectStore, **arrays: np.ndarray) -> str:
    """How the store wrote objects before it streamed: np.savez into memory, timestamps of the day."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    target = self.path(digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return digest


def _savez_write(self: ObjectStore, fill) -> str:
    buffer = io.BytesIO()
    from poisonlab.provenance.npz import NpzWriter

    writer = NpzWriter(buffer)
    fill(writer)
    writer.close()
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    if "X" in arrays:
        arrays["X"] = np.asfortranarray(arrays["X"])  # np.savez kept a Fortran-ordered X as such
    return _savez_put(self, **arrays)


def test_a_ledger_whose_objects_np_savez_wrote_still_verifies_and_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X1, y1, ids1 = _arrays(30)
    with monkeypatch.context() as old:
        old.setattr(ObjectStore, "put", _savez_put)
        old.setattr(ObjectStore, "write", _savez_write)
        with Ledger.init(tmp_path / "l") as ledger:
            v1 = ledger.add(X1, y1, ids1, source="old")
            ledger.quarantine([3], reason={"why": "test"})
    with Ledger.open(tmp_path / "l") as ledger:
        digest = ledger.batches()[0].shard
        with np.load(ledger._store.path(digest), allow_pickle=False) as archive:
            assert np.isfortran(archive["X"])  # a member with no consecutive rows on disk
        assert ledger.verify().ok
        X2, y2, ids2 = _arrays(12, 500, seed=4)
        np.savez(tmp_path / "new.npz", X=X2, y=y2, ids=ids2)
        with open_batch(str(tmp_path / "new.npz"), rows=5) as batch:
            v3 = ledger.add_batch(batch, source="new", rows=5)
        report = ledger.verify()
        assert report.ok and report.notes == [], report.problems
        assert v3.n == 29 + 12 and ledger.version(1).root == v1.root
        X = ledger.arrays()[0]
        keep = ids1 != 3
        assert X.tobytes() == np.concatenate([X1[keep], X2]).tobytes()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("nan", r"b: features contain NaN or inf \(first in row 21\)"),
        ("one_class", "b: needs at least two classes, found 1"),
        ("duplicate_id", "b: ids are not unique"),
        ("float_label", "b: labels must be integers, found 0.5"),
    ],
)
def test_a_bad_streamed_file_records_nothing_and_leaves_no_object(tmp_path: Path, edit: str, message: str):
    X, y, ids = _arrays(30)
    y = y.astype(np.float64)
    if edit == "nan":
        X[21, 4] = np.nan
    elif edit == "one_class":
        y[:] = 2
    elif edit == "duplicate_id":
        ids[25] = 3
    else:
        y[17] = 0.5
    np.savez(tmp_path / "b.npz", X=X, y=y, ids=ids)
    with Ledger.init(tmp_path / "l") as ledger:
        before = _objects(ledger.path)
        with pytest.raises(DataError, match=message) as caught:
            with open_batch(str(tmp_path / "b.npz"), rows=4) as batch:
                ledger.add_batch(batch, source="s", rows=4)
        assert "\n" not in str(caught.value)
        assert ledger.versions() == [] and _objects(ledger.path) == before
    assert not [p for p in os.listdir(tmp_path / "l" / "objects") if p.startswith(".tmp-")]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 140), block=st.sampled_from([1, 2, 8, 32]), step=st.integers(1, 50))
def test_the_merkle_accumulator_gives_the_merkle_root(n: int, block: int, step: int) -> None:
    leaves = np.random.default_rng(n).integers(0, 256, (n, 32), dtype=np.uint8)
    merkle = MerkleAccumulator(block)
    for start in range(0, n, step):
        merkle.update(leaves[start : start + step])
    assert merkle.n == n and merkle.root() == merkle_root(leaves)
    with pytest.raises(DataError, match="power of two"):
        MerkleAccumulator(3)
