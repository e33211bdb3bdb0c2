"""Unlearnable examples: error-minimising noise that leaves a model nothing to learn but the noise.

Huang, Ma, Erfani, Bailey & Wang, "Unlearnable Examples: Making Personal Data
Unexploitable", ICLR 2021. The perturbation solves the *min-min* problem

    min_θ  E_(x,y) [ min_{‖δ‖∞ ≤ ε} ℓ(f_θ(x + δ), y) ]:

it makes each training sample *easier*, so a model trained on the perturbed set fits the
noise (a shortcut to the label) and learns little about the images, and its accuracy on
clean test images collapses. Alternating as in the paper: train a surrogate CNN on the
perturbed data for ``train_steps`` batches, then take ``pgd_steps`` signed-gradient
*descent* steps on every δ (step ``eps / 10``, kept in the ε-ball and the [0, 1] box);
stop once the surrogate classifies ``stop_accuracy`` of the perturbed training set
correctly, or after ``max_rounds`` rounds.

``scope="sample"`` gives each sample its own δ; ``scope="class"`` one δ per class (the
paper's class-wise noise, a stronger shortcut). ``noise="random"`` is the control the
paper compares with: uniform noise in the same ball, which a model ignores.

Besides an availability attack, this is a data owner's protection: publishing photos
made unlearnable keeps them from being used to train a model. Poisoning 100% of the
training set is the intended setting (``poison_rates = [1.0]``); with a share of the
set, the clean rest still teaches the task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, choose, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError

__all__ = ["UnlearnableExamples"]


class UnlearnableExamples(Attack):
    """Error-minimising (unlearnable) noise within an L∞ ball of radius ``eps``.

    Parameters
    ----------
    eps : float
        L∞ radius (8/255 in the paper's CIFAR-10 and ImageNet experiments).
    scope : {"sample", "class"}
        One perturbation per sample, or one per class.
    noise : {"error_minimising", "random"}
        The attack, or its control (uniform noise in the same ball).
    pgd_steps, train_steps, max_rounds, stop_accuracy
        The alternation's schedule (paper: 20 PGD steps, 10 training batches, stop at 99%).

    References
    ----------
    Huang, H., Ma, X., Erfani, S. M., Bailey, J., & Wang, Y. (2021). Unlearnable Examples:
    Making Personal Data Unexploitable. ICLR 2021.
    """

    modalities = ("image",)
    keeps_labels = True
    needs_model = True

    def __init__(
        self,
        *,
        eps: float = 8 / 255,
        scope: str = "sample",
        noise: str = "error_minimising",
        pgd_steps: int = 20,
        train_steps: int = 10,
        max_rounds: int = 30,
        stop_accuracy: float = 0.99,
    ) -> None:
        if not 0 < eps <= 1:
            raise ConfigError(f"eps must lie in (0, 1], got {eps!r}")
        if scope not in ("sample", "class"):
            raise ConfigError(f"scope must be 'sample' or 'class', got {scope!r}")
        if noise not in ("error_minimising", "random"):
            raise ConfigError(f"noise must be 'error_minimising' or 'random', got {noise!r}")
        for name, value in (
            ("pgd_steps", pgd_steps),
            ("train_steps", train_steps),
            ("max_rounds", max_rounds),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
                raise ConfigError(f"{name} must be an integer in 1..10000, got {value!r}")
        if not 0 < stop_accuracy <= 1:
            raise ConfigError(f"stop_accuracy must lie in (0, 1], got {stop_accuracy!r}")
        self.eps = eps
        self.scope = scope
        self.noise = noise
        self.pgd_steps = pgd_steps
        self.train_steps = train_steps
        self.max_rounds = max_rounds
        self.stop_accuracy = stop_accuracy

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        index = choose(np.arange(len(dataset)), n_poison, rng, "samples")
        X = dataset.X[index].astype(np.float32)
        y = dataset.y[index]
        if self.noise == "random":
            delta = rng.uniform(
                -self.eps,
                self.eps,
                size=X.shape if self.scope == "sample" else (dataset.n_classes, *X.shape[1:]),
            )
        else:
            delta = self._error_minimising(X, y, dataset.n_classes, rng)
        per_row = delta if self.scope == "sample" else delta[y]
        X_out = dataset.X.copy()
        X_out[index] = np.clip(X + per_row.astype(np.float32), 0.0, 1.0)
        # the ball is closed in float32: clip once more around the originals
        X_out[index] = np.clip(X_out[index], X - np.float32(self.eps), X + np.float32(self.eps))
        changed = np.any((X_out[index] != X).reshape(len(index), -1), axis=1)
        return PoisonResult(dataset.with_arrays(X=X_out), mask_of(index[changed], len(dataset)))

    def _error_minimising(
        self, X: np.ndarray, y: np.ndarray, n_classes: int, rng: np.random.Generator
    ) -> np.ndarray:
        import torch
        from torch import nn

        from poisonlab.models.torch_models import TorchClassifier

        seed = int(rng.integers(2**31 - 1))
        surrogate = TorchClassifier(arch="cnn", n_classes=n_classes, random_state=seed)
        inputs, targets = surrogate.start(X, y)
        optimiser = surrogate.optimiser()
        generator = torch.Generator().manual_seed(seed)
        shape = inputs.shape if self.scope == "sample" else (n_classes, *inputs.shape[1:])
        delta = torch.zeros(shape)
        step = self.eps / 10
        n = inputs.shape[0]
        batch = surrogate.batch_size

        def perturbed(rows: Any) -> Any:
            d = delta[rows] if self.scope == "sample" else delta[targets[rows]]
            return (inputs[rows] + d).clamp(0.0, 1.0)

        for _ in range(self.max_rounds):
            surrogate.net_.train()
            for _ in range(self.train_steps):  # θ: a few batches of ordinary training on x + δ
                rows = torch.randint(0, n, (batch,), generator=generator)
                optimiser.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(surrogate.net_(perturbed(rows)), targets[rows]).backward()
                optimiser.step()
            surrogate.net_.eval()
            for _ in range(self.pgd_steps):  # δ: signed descent on the same loss
                d = delta.clone().requires_grad_(True)
                full = d if self.scope == "sample" else d[targets]
                loss = nn.functional.cross_entropy(
                    surrogate.net_((inputs + full).clamp(0.0, 1.0)), targets, reduction="sum"
                )
                (grad,) = torch.autograd.grad(loss, d)
                delta = (delta - step * grad.sign()).clamp(-self.eps, self.eps)
            with torch.no_grad():
                correct = (surrogate.net_(perturbed(torch.arange(n))).argmax(1) == targets).float().mean()
            if float(correct) >= self.stop_accuracy:
                break
        return delta.numpy()
