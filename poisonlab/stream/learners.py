"""The stream's online learners, resolved by name through :data:`LEARNERS`.

Every learner follows one protocol (:class:`Learner`): it is built with keyword-only
hyperparameters (``random_state`` among them), initialised once on the trusted seed
with :meth:`~Learner.warm_up`, updated with :meth:`~Learner.learn` on each admitted
batch and asked for labels with :meth:`~Learner.predict`. Labels are class indices
``0..n_classes-1``. A learner never writes to the arrays it is given, and the same
``random_state`` and the same ``rng`` give the same predictions.

Tags: ``modalities`` (the data it takes: ``"image"``, ``"tabular"``) and ``torch``
(it loads PyTorch). ``poisonlab.checks.check_learner`` runs the protocol's checks on
any learner, built-in or your own.

``"mlp"`` and ``"cnn"`` build the networks of :mod:`poisonlab.models` ``"mlp"`` and
``"cnn"`` with the same builder
(:func:`~poisonlab.models.torch_models.build_network`) and ``width`` knob; the
stream's ``mlp`` defaults to width 16 (two hidden layers of 64) where ``poisonlab run``'s
defaults to 32 (128), so a batch of 50 gets a few cheap Adam steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from poisonlab.errors import NotFittedError
from poisonlab.registry import Registry

if TYPE_CHECKING:  # torch loads only when a torch learner warms up
    import torch

__all__ = [
    "LEARNERS",
    "LEARNER_TAGS",
    "Learner",
    "SGDLearner",
    "SklearnMLPLearner",
    "TorchCNNLearner",
    "TorchMLPLearner",
]

#: Passes over the trusted seed that initialise every built-in learner.
WARMUP_EPOCHS = 30
_IMAGE_MIN_SPREAD = 0.1


@runtime_checkable
class Learner(Protocol):
    """What :func:`~poisonlab.stream.simulate_stream` asks of an online learner.

    ``X`` is N×d (tabular) or N×C×H×W (images), ``y`` class indices. ``rng`` is the
    stream's generator: drawing from it (shuffles) keeps a seeded stream reproducible.
    """

    def warm_up(self, X: np.ndarray, y: np.ndarray, *, n_classes: int, rng: np.random.Generator) -> None:
        """Initialise on the trusted seed; ``n_classes`` is the number of classes of the whole data."""

    def learn(self, X: np.ndarray, y: np.ndarray, *, epochs: int, rng: np.random.Generator) -> None:
        """Update on one admitted batch with ``epochs`` passes over it."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices, one per row of ``X``; :class:`NotFittedError` before ``warm_up``."""


def standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the trusted seed's flattened inputs.

    For images the spread is floored at 0.1 (pixels lie in [0, 1]): border pixels that
    are blank in every seed image would otherwise be divided by ~0, turning any trigger
    pixel there into an input of size 1e5 and the model's answer on triggered inputs
    into an all-or-nothing switch that flips from one batch to the next.
    """
    flat = X.reshape(X.shape[0], -1).astype(np.float64)
    spread = flat.std(axis=0)
    scale = np.maximum(spread, _IMAGE_MIN_SPREAD) if X.ndim == 4 else spread + 1e-6
    return flat.mean(axis=0), scale


class _Base:
    """Tags and the not-fitted guard every built-in learner shares."""

    modalities: ClassVar[tuple[str, ...]] = ("image", "tabular")

    def _fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise NotFittedError(f"this {type(self).__name__} has not warmed up; call warm_up first")


class _SklearnLearner(_Base):
    """``partial_fit`` on flattened inputs, standardised with the trusted seed's statistics."""

    def _model(self) -> Any:
        raise NotImplementedError

    def _flat(self, X: np.ndarray) -> np.ndarray:
        return (X.reshape(X.shape[0], -1) - self.mean_) / self.scale_

    def warm_up(self, X: np.ndarray, y: np.ndarray, *, n_classes: int, rng: np.random.Generator) -> None:
        self.classes_ = np.arange(n_classes)
        self.model_ = self._model()
        self.mean_, self.scale_ = standardiser(X)
        self.learn(X, y, epochs=WARMUP_EPOCHS, rng=rng)

    def learn(self, X: np.ndarray, y: np.ndarray, *, epochs: int, rng: np.random.Generator) -> None:
        self._fitted()
        # One call over the epochs' shuffles laid end to end: the same SGD steps as one
        # call per epoch, without paying partial_fit's per-call overhead (~20 ms) each time.
        order = np.concatenate([rng.permutation(len(y)) for _ in range(epochs)])
        self.model_.partial_fit(self._flat(X[order]), y[order], classes=self.classes_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._fitted()
        return np.asarray(self.model_.predict(self._flat(X)))


class SGDLearner(_SklearnLearner):
    """scikit-learn's ``SGDClassifier(loss="log_loss")`` updated with ``partial_fit``.

    Parameters
    ----------
    alpha : float
        L2 penalty.
    random_state : int
        Seeds the classifier.
    """

    def __init__(self, *, alpha: float = 1e-4, random_state: int = 0) -> None:
        self.alpha = alpha
        self.random_state = random_state

    def _model(self) -> Any:
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(loss="log_loss", alpha=self.alpha, random_state=self.random_state)


class SklearnMLPLearner(_SklearnLearner):
    """scikit-learn's ``MLPClassifier`` (one hidden layer) updated with ``partial_fit``.

    Parameters
    ----------
    hidden : int
        Units of the hidden layer.
    lr : float
        Adam's initial learning rate.
    random_state : int
        Seeds the classifier.
    """

    def __init__(self, *, hidden: int = 64, lr: float = 3e-3, random_state: int = 0) -> None:
        self.hidden = hidden
        self.lr = lr
        self.random_state = random_state

    def _model(self) -> Any:
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(
            hidden_layer_sizes=(self.hidden,), learning_rate_init=self.lr, random_state=self.random_state
        )


class _TorchLearner(_Base):
    """A poisonlab network trained by Adam, mini-batches of ``batch_size``, on each admitted batch."""

    #: Whether inputs are flattened and standardised (the MLP) or used as they are (the CNN).
    flat: ClassVar[bool] = True

    def __init__(
        self, *, width: int = 16, lr: float = 3e-3, batch_size: int = 32, random_state: int = 0
    ) -> None:
        for name, value in (("width", width), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.width = width
        self.lr = lr
        self.batch_size = batch_size
        self.random_state = random_state

    #: The architecture of :func:`~poisonlab.models.torch_models.build_network` it trains.
    arch: ClassVar[str] = "mlp"

    def _network(self, sample_shape: tuple[int, ...], n_classes: int) -> torch.nn.Module:
        from poisonlab.models.torch_models import build_network

        # One builder for run, fl and the stream: the same name is the same network.
        return build_network(self.arch, sample_shape, n_classes, width=self.width)

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float32)
        if self.flat:
            X = ((X.reshape(X.shape[0], -1) - self.mean_) / self.scale_).astype(np.float32)
        return self._torch.from_numpy(np.array(X, dtype=np.float32, copy=True))

    def warm_up(self, X: np.ndarray, y: np.ndarray, *, n_classes: int, rng: np.random.Generator) -> None:
        import torch

        self._torch = torch
        # Seeded right before the weights are drawn: the network starts the same for one seed.
        torch.manual_seed(self.random_state)
        self.net_ = self._network(tuple(X.shape[1:]), n_classes)
        self.optimiser_ = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        self.loss_ = torch.nn.CrossEntropyLoss()
        self.mean_, self.scale_ = standardiser(X)
        self.learn(X, y, epochs=WARMUP_EPOCHS, rng=rng)

    def learn(self, X: np.ndarray, y: np.ndarray, *, epochs: int, rng: np.random.Generator) -> None:
        self._fitted()
        torch = self._torch
        inputs, targets = self._inputs(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.net_.train()
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(len(y)))
            for start in range(0, len(y), self.batch_size):
                batch = order[start : start + self.batch_size]
                self.optimiser_.zero_grad(set_to_none=True)
                self.loss_(self.net_(inputs[batch]), targets[batch]).backward()
                self.optimiser_.step()
        self.net_.eval()

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._fitted()
        with self._torch.no_grad():
            return self.net_(self._inputs(X)).argmax(dim=1).numpy()


class TorchMLPLearner(_TorchLearner):
    """poisonlab's torch MLP (:mod:`poisonlab.models` ``"mlp"``) on standardised, flattened inputs.

    Parameters
    ----------
    width : int
        The models' width knob: two hidden layers of ``4 * width`` units (64 at the
        default 16; ``poisonlab run``'s ``mlp`` defaults to width 32, 128 units).
    lr : float
        Adam's learning rate.
    batch_size : int
        Mini-batch size within a streamed batch.
    random_state : int
        Seeds the initial weights.
    """

    arch: ClassVar[str] = "mlp"


class TorchCNNLearner(_TorchLearner):
    """poisonlab's small torch CNN (:mod:`poisonlab.models` ``"cnn"``) on images as they are.

    Parameters
    ----------
    width : int
        The models' width knob (channels of the second convolution; 16 like ``poisonlab run``).
    lr : float
        Adam's learning rate.
    batch_size : int
        Mini-batch size within a streamed batch.
    random_state : int
        Seeds the initial weights.
    """

    modalities: ClassVar[tuple[str, ...]] = ("image",)
    flat: ClassVar[bool] = False
    arch: ClassVar[str] = "cnn"


#: ``modalities``: the data a learner takes. ``torch``: it loads PyTorch.
LEARNER_TAGS: dict[str, Any] = {"modalities": ("image", "tabular"), "torch": False}
LEARNERS: Registry[Learner] = Registry("learner", tags=LEARNER_TAGS, title="stream learners")
LEARNERS.add("sgd", SGDLearner, "scikit-learn SGDClassifier (log loss), partial_fit on each admitted batch")
LEARNERS.add(
    "mlp_sk", SklearnMLPLearner, "scikit-learn MLPClassifier (64 hidden units), partial_fit on each batch"
)
LEARNERS.add(
    "mlp",
    TorchMLPLearner,
    "PyTorch MLP of the 'mlp' model at width 16 (2×64 hidden), a few Adam passes per batch",
    torch=True,
)
LEARNERS.add(
    "cnn", TorchCNNLearner, "PyTorch small CNN of the 'cnn' model, a few Adam passes per batch", torch=True
)
