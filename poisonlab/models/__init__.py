"""Models: the fast PyTorch trainer, scikit-learn classifiers and regressors, all by name.

Every model has ``fit(X, y) -> self`` and ``predict(X)``; the torch models also
have ``predict_proba`` and ``representations`` (penultimate layer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from poisonlab.models.rules import RipperClassifier
from poisonlab.models.sklearn_models import FlatClassifier, FlatRegressor, sklearn_classifier
from poisonlab.registry import Registry

if TYPE_CHECKING:
    from poisonlab.models.torch_models import TorchClassifier


class Classifier(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...
    def predict(self, X: np.ndarray) -> np.ndarray: ...


#: ``task``: what the model learns. ``modalities``: the data it takes. ``torch``: a
#: :class:`TorchClassifier` (``predict_proba``, ``representations``, a scan proxy).
#: ``federated``: the federated simulation and the stream can train its network.
MODELS: Registry[Classifier] = Registry(
    "model",
    tags={"task": "classification", "modalities": ("image", "tabular"), "torch": False, "federated": False},
)


def _torch_factory(
    arch: str, *, default_batch_size: int, default_width: int, default_lr: float = 3e-3
) -> Any:
    """A registry factory for one architecture; its keyword defaults are the model's defaults."""

    def factory(
        *,
        epochs: int = 30,
        batch_size: int = default_batch_size,
        lr: float = default_lr,
        width: int = default_width,
        weight_decay: float = 0.0,
        random_state: int = 0,
    ) -> TorchClassifier:
        from poisonlab.models.torch_models import TorchClassifier  # PyTorch loads on first use

        return TorchClassifier(
            arch=arch,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            width=width,
            weight_decay=weight_decay,
            random_state=random_state,
        )

    factory.__name__ = arch
    return factory


MODELS.add(
    "cnn",
    _torch_factory("cnn", default_batch_size=128, default_width=16),
    "Small PyTorch CNN for images (2 conv layers), 30 epochs of Adam",
    modalities=("image",),
    torch=True,
    federated=True,
)
MODELS.add(
    "mlp",
    _torch_factory("mlp", default_batch_size=64, default_width=32),
    "PyTorch MLP (2 hidden layers) on standardised, flattened features",
    torch=True,
    federated=True,
)
MODELS.add(
    "linear",
    # one layer learns slower than the MLP: at 3e-3 it had not converged after its 30
    # epochs on a 120-row set (training accuracy 0.47; 0.93 at 1e-2)
    _torch_factory("linear", default_batch_size=64, default_width=32, default_lr=1e-2),
    "PyTorch linear layer on standardised, flattened features (softmax regression), Adam at 1e-2",
    torch=True,
    federated=True,
)


_SKLEARN: list[tuple[str, str, str, bool, dict[str, Any], str]] = [
    (
        "logreg",
        "sklearn.linear_model",
        "LogisticRegression",
        True,
        {"max_iter": 2000},
        "scikit-learn logistic regression",
    ),
    ("svm", "sklearn.svm", "SVC", True, {}, "scikit-learn SVC (RBF kernel)"),
    ("linear_svm", "sklearn.svm", "SVC", True, {"kernel": "linear"}, "scikit-learn SVC with a linear kernel"),
    (
        "random_forest",
        "sklearn.ensemble",
        "RandomForestClassifier",
        False,
        {"n_estimators": 100},
        "scikit-learn random forest",
    ),
    (
        "gradient_boosting",
        "sklearn.ensemble",
        "GradientBoostingClassifier",
        False,
        {},
        "scikit-learn gradient boosting",
    ),
    ("decision_tree", "sklearn.tree", "DecisionTreeClassifier", False, {}, "scikit-learn decision tree"),
    (
        "knn",
        "sklearn.neighbors",
        "KNeighborsClassifier",
        True,
        {"n_neighbors": 5},
        "scikit-learn k-nearest neighbours",
    ),
    ("naive_bayes", "sklearn.naive_bayes", "GaussianNB", False, {}, "scikit-learn Gaussian naive Bayes"),
]
for _name, _module, _cls, _scale, _defaults, _desc in _SKLEARN:
    MODELS.add(_name, sklearn_classifier(_module, _cls, scale=_scale, **_defaults), _desc)

_REGRESSORS: list[tuple[str, str, dict[str, Any], str]] = [
    ("ols", "LinearRegression", {}, "Regression: ordinary least squares (scikit-learn)"),
    ("ridge", "Ridge", {"alpha": 1.0}, "Regression: ridge regression (scikit-learn)"),
    ("lasso", "Lasso", {"alpha": 0.01}, "Regression: lasso (scikit-learn)"),
    ("elastic_net", "ElasticNet", {"alpha": 0.01, "l1_ratio": 0.5}, "Regression: elastic net (scikit-learn)"),
]
for _name, _cls, _defaults, _desc in _REGRESSORS:
    MODELS.add(
        _name,
        sklearn_classifier("sklearn.linear_model", _cls, scale=True, regressor=True, **_defaults),
        _desc,
        task="regression",
        modalities=("tabular",),
    )
MODELS.add(
    "mlp_regressor",
    sklearn_classifier(
        "sklearn.neural_network",
        "MLPRegressor",
        scale=True,
        regressor=True,
        hidden_layer_sizes=(64, 64),
        alpha=1e-3,
        max_iter=2000,
        early_stopping=True,
    ),
    "Regression: MLP with two hidden layers of 64 (scikit-learn), early stopping",
    task="regression",
    modalities=("tabular",),
)
MODELS.add(
    "ripper",
    RipperClassifier,
    "RIPPER rule sets, one-vs-rest, on equal-frequency bins (Cohen 1995; pip install 'poisonlab[rules]')",
    modalities=("tabular",),
)


def _kge_factory(interaction: str) -> Any:
    """A registry factory for one PyKEEN interaction; its keyword defaults are the model's."""

    def factory(*, dim: int = 64, epochs: int = 100, lr: float = 0.03, random_state: int = 0) -> Any:
        from poisonlab.models.kge import KGEModel  # PyKEEN loads on first use

        return KGEModel(interaction=interaction, dim=dim, epochs=epochs, lr=lr, random_state=random_state)

    factory.__name__ = interaction
    return factory


for _name, _desc in (
    (
        "transe",
        "Knowledge graph: PyKEEN's TransE, h + r ≈ t (Bordes et al. 2013; pip install 'poisonlab[kg]')",
    ),
    ("distmult", "Knowledge graph: PyKEEN's DistMult, a diagonal bilinear score (Yang et al. 2015)"),
    ("complex", "Knowledge graph: PyKEEN's ComplEx, complex bilinear scores (Trouillon et al. 2016)"),
):
    MODELS.add(_name, _kge_factory(_name), _desc, task="link_prediction", modalities=("graph",))


def __getattr__(name: str) -> Any:
    if name in ("MLP", "SmallCNN", "TorchClassifier"):
        from poisonlab.models import torch_models

        return getattr(torch_models, name)
    raise AttributeError(f"module 'poisonlab.models' has no attribute {name!r}")


__all__ = [
    "MLP",
    "MODELS",
    "Classifier",
    "FlatClassifier",
    "FlatRegressor",
    "RipperClassifier",
    "SmallCNN",
    "TorchClassifier",
]
