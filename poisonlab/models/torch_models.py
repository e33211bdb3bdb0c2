"""A small, fast, seeded PyTorch trainer: a CNN for images, an MLP or a linear layer for any data.

:func:`build_network` is the one place an architecture name becomes a network: the
trainer, the federated simulation and anything else that trains ``"cnn"``, ``"mlp"`` or
``"linear"`` call it, so a name means the same architecture everywhere.

The training loop keeps the whole training set as one tensor and shuffles indices
itself: for the small sets poisonlab targets on a CPU this is several times faster
than a ``DataLoader`` and removes worker-related nondeterminism.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from poisonlab.errors import DataError

__all__ = ["ARCHS", "MLP", "LinearNet", "SmallCNN", "TorchClassifier", "build_network"]

#: The architectures :func:`build_network` builds.
ARCHS = ("cnn", "mlp", "linear")


def translate(images: torch.Tensor, most: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own random whole-pixel offset of at most ``most`` per axis, zero-filled.

    The data augmentation of Simard, Steinkraus and Platt (2003) restricted to
    translations, which never change a digit's class.
    """
    n, _, h, w = images.shape
    offsets = torch.randint(-most, most + 1, (n, 2), generator=generator)
    padded = nn.functional.pad(images, (most, most, most, most))
    out = torch.empty_like(images)
    for dy, dx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().squeeze(1)
        out[rows] = padded[rows, :, most - dy : most - dy + h, most - dx : most - dx + w]
    return out


class SmallCNN(nn.Module):
    """Two 3×3 convolutions, a 2×2 max-pool and a two-layer head."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int = 16) -> None:
        super().__init__()
        c, h, w = in_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(width * (h // 2) * (w // 2), 4 * width),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Two hidden ReLU layers on flattened inputs."""

    def __init__(self, n_inputs: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LinearNet(nn.Module):
    """One linear layer on flattened inputs: multinomial logistic regression under cross-entropy.

    ``features`` is the flattening alone, so the "representations" are the inputs.
    """

    def __init__(self, n_inputs: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten())
        self.head = nn.Linear(n_inputs, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_network(arch: str, sample_shape: tuple[int, ...], n_classes: int, *, width: int) -> nn.Module:
    """The network of architecture ``arch`` for samples of ``sample_shape`` and ``n_classes`` classes.

    Parameters
    ----------
    arch : {"cnn", "mlp", "linear"}
        :class:`SmallCNN` (``width`` channels, a ``4·width`` head), :class:`MLP`
        (``4·width`` hidden units per layer) or :class:`LinearNet` (``width`` unused).
    sample_shape : tuple of int
        One sample's shape: ``(C, H, W)`` for images (required by ``"cnn"``).
    n_classes : int
        Number of outputs.
    width : int
        The size knob; :class:`TorchClassifier` defaults it to 16 (cnn) and 32 (mlp), the
        federated simulation to 16 for both.

    Notes
    -----
    The parameters are initialised from PyTorch's global generator: seed it first.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if arch == "cnn":
        if len(sample_shape) != 3:
            raise DataError("the 'cnn' model needs image data (N×C×H×W); use 'mlp' for tabular data")
        return SmallCNN(sample_shape, n_classes, width)  # type: ignore[arg-type]
    n_inputs = int(np.prod(sample_shape))
    if arch == "mlp":
        return MLP(n_inputs, n_classes, 4 * width)
    return LinearNet(n_inputs, n_classes)


class TorchClassifier:
    """scikit-learn style wrapper around :class:`SmallCNN`, :class:`MLP` or :class:`LinearNet`.

    ``arch`` is one of :data:`ARCHS` (see :func:`build_network`). Flattened inputs (mlp,
    linear) are standardised with statistics from the training data; images
    are used as they are (already in ``[0, 1]``). ``representations`` returns the
    penultimate layer, which detectors consume. ``shift`` > 0 (cnn only) trains on
    images moved by random offsets of up to that many pixels (:func:`translate`).
    """

    def __init__(
        self,
        *,
        arch: str = "cnn",
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        width: int = 16,
        n_classes: int | None = None,
        track_losses: bool = False,
        shift: int = 0,
        random_state: int = 0,
    ) -> None:
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if shift < 0 or (shift and arch != "cnn"):
            raise ValueError(f"shift must be >= 0 and is for the 'cnn' only, got {shift} for {arch!r}")
        self.arch = arch
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.width = width
        self.n_classes = n_classes
        self.track_losses = track_losses
        self.shift = shift
        self.random_state = random_state

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float32)
        if self.arch != "cnn":
            X = X.reshape(X.shape[0], -1)
            X = (X - self.mean_) / self.scale_
        return torch.from_numpy(np.array(X, dtype=np.float32, copy=True))

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchClassifier:
        inputs, targets = self.start(X, y)
        optimiser = self.optimiser()
        generator = torch.Generator().manual_seed(self.random_state)
        history = []
        for _ in range(self.epochs):
            self.train_epoch(inputs, targets, optimiser, generator)
            if self.track_losses:
                history.append(self.per_sample_loss(inputs, targets))
        self.net_.eval()
        if self.track_losses:
            self.loss_history_ = np.stack(history, axis=1)  # N × epochs
        return self

    def start(self, X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Seed, fit the input scaling, build a fresh network; the training tensors.

        The first step of :meth:`fit`, public for trainers that run their own loop on
        this model (Anti-Backdoor Learning, DP-SGD): they call it, train ``net_``, and
        leave it in eval mode.
        """
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if self.arch == "cnn" and X.ndim != 4:
            raise DataError("the 'cnn' model needs image data (N×C×H×W); use 'mlp' for tabular data")
        self.n_classes_ = max(int(self.n_classes or 0), int(y.max()) + 1)
        torch.manual_seed(self.random_state)
        if self.arch != "cnn":
            flat = X.reshape(X.shape[0], -1)
            # in float64: squares of features near float32's range would overflow in float32
            wide = flat.astype(np.float64)
            self.mean_ = wide.mean(axis=0).astype(np.float32)
            self.scale_ = (wide.std(axis=0) + 1e-6).astype(np.float32)
        self.net_: nn.Module = build_network(self.arch, X.shape[1:], self.n_classes_, width=self.width)
        self.net_.train()
        return self._inputs(X), torch.from_numpy(y.copy())

    def optimiser(self, lr: float | None = None) -> torch.optim.Optimizer:
        """The model's optimiser (Adam with its weight decay) over ``net_``, at ``lr`` or its own."""
        return torch.optim.Adam(
            self.net_.parameters(), lr=self.lr if lr is None else lr, weight_decay=self.weight_decay
        )

    def train_epoch(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        optimiser: torch.optim.Optimizer,
        generator: torch.Generator,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """One pass over shuffled mini-batches; ``loss_fn(logits, targets)`` defaults to cross-entropy."""
        loss_fn = loss_fn or nn.functional.cross_entropy
        self.net_.train()
        n = inputs.shape[0]
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, self.batch_size):
            batch = order[start : start + self.batch_size]
            optimiser.zero_grad(set_to_none=True)
            images = inputs[batch]
            if self.shift:
                images = translate(images, self.shift, generator)
            loss_fn(self.net_(images), targets[batch]).backward()
            optimiser.step()

    def refit_head(self, X: np.ndarray, y: np.ndarray, *, epochs: int | None = None) -> TorchClassifier:
        """Transfer learning: retrain only the last layer on ``(X, y)``, the features frozen.

        The head is re-initialised (from ``random_state``) and trained with the
        model's optimiser settings for ``epochs`` (default: the model's own) on the
        frozen penultimate features, which are computed once. Returns ``self``.
        """
        if not hasattr(self, "net_"):
            raise ValueError("refit_head needs a fitted model: call fit first")
        y = np.asarray(y, dtype=np.int64)
        feats = torch.from_numpy(self._forward(np.asarray(X, dtype=np.float32), "features"))
        targets = torch.from_numpy(y.copy())
        torch.manual_seed(self.random_state)
        head: nn.Linear = self.net_.head  # type: ignore[assignment]
        head.reset_parameters()
        optimiser = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.random_state)
        n = feats.shape[0]
        for _ in range(self.epochs if epochs is None else epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(head(feats[batch]), targets[batch]).backward()
                optimiser.step()
        return self

    @torch.no_grad()
    def per_sample_loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """Cross-entropy of each sample under the network in eval mode (it is left in train mode)."""
        self.net_.eval()
        losses = nn.functional.cross_entropy(self.net_(inputs), targets, reduction="none")
        self.net_.train()
        return losses.numpy()

    @torch.no_grad()
    def _forward(self, X: np.ndarray, layer: str) -> np.ndarray:
        inputs = self._inputs(X)
        features: nn.Sequential = self.net_.features  # type: ignore[assignment]
        outs = []
        for start in range(0, inputs.shape[0], 4096):
            chunk = inputs[start : start + 4096]
            if layer == "early":  # output of the block before the last hidden layer
                outs.append(features[:-2](chunk))
                continue
            feats = features(chunk)
            outs.append(feats if layer == "features" else self.net_.head(feats))  # type: ignore[operator]
        return torch.cat(outs).numpy()

    def differentiable_logits(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of raw inputs as a differentiable function of them (the scaling of flat inputs included).

        For attacks that take gradients with respect to the inputs; the network is used
        in whatever mode it is in (eval after :meth:`fit`).
        """
        if self.arch != "cnn":
            flat = X.reshape(X.shape[0], -1)
            X = (flat - torch.from_numpy(self.mean_)) / torch.from_numpy(self.scale_)
        return self.net_(X)  # type: ignore[no-any-return]

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits, one column per class."""
        return self._forward(X, "logits")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(self.decision_function(X))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.decision_function(X).argmax(axis=1)

    def representations(self, X: np.ndarray, *, layer: str = "penultimate") -> np.ndarray:
        """Activations that detectors consume.

        ``"penultimate"``: the last hidden layer (N × hidden). ``"early"``: the block
        before it (the pooled convolution features of the CNN, the first hidden layer
        of the MLP), where input-level triggers are still visible as features. The
        linear model has no hidden layer: both are its (standardised, flattened) inputs.
        """
        if layer not in ("penultimate", "early"):
            raise ValueError(f"layer must be 'penultimate' or 'early', got {layer!r}")
        return self._forward(X, "features" if layer == "penultimate" else "early")
