"""Clean-label poisoning: a few correctly labelled images, perturbed within an L∞ ball.

Every attack here keeps every label and moves each poisoned image by at most
``eps`` per pixel (and keeps it in ``[0, 1]``), so a reviewer who audits labels
sees nothing. All of them need gradients: they take a PyTorch model (a
:class:`~poisonlab.models.torch_models.TorchClassifier`, fitted, or the name of a
torch model that the attack trains itself as its surrogate on the clean data it
poisons, with a seed of its own drawn from the attack's generator).

Two kinds:

- **Targeted-instance** attacks (:class:`FeatureCollision`, :class:`BullseyePolytope`,
  :class:`GradientMatching`) make one chosen input, which is not in the training
  data, be classified as the attacker's class ``target``. They are aimed first:
  ``attack.aim(x)`` returns a copy bound to the target input ``x``. The poisons
  are drawn from class ``target`` (the "base" samples).
- **Clean-label backdoors** (:class:`LabelConsistentBackdoor`,
  :class:`SleeperAgent`) plant a :class:`~poisonlab.attacks.base.Trigger` that sends
  triggered inputs to ``target``, without any mislabelled or (for Sleeper Agent)
  any triggered training sample.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, Trigger, choose, class_index, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError, DataError, IncompatibleError

if TYPE_CHECKING:
    import torch

    from poisonlab.models.torch_models import TorchClassifier

__all__ = [
    "BullseyePolytope",
    "CornerTrigger",
    "FeatureCollision",
    "GradientMatching",
    "LabelConsistentBackdoor",
    "SleeperAgent",
]


def _check_range(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not (low <= value <= high):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {what} in [{low:g}, {high:g}], got {value!r}")
    if not integer and not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be finite, got {value!r}")


class _GradientAttack(Attack):
    """Shared parts: the model with gradients, the L∞ projection, image data only."""

    modalities = ("image",)
    keeps_labels = True
    needs_model = True

    eps: float
    model: Any
    surrogate_epochs: int

    def _set_model(self, model: Any, surrogate_epochs: int) -> None:
        if isinstance(model, str):
            from poisonlab.models import MODELS

            MODELS.require(
                model, f"attack {type(self).__name__}, which needs a model's gradients", torch=True
            )
        elif not hasattr(model, "net_"):
            raise IncompatibleError(
                f"attack {type(self).__name__} needs a model's gradients: pass a fitted "
                f"torch model (cnn, mlp or linear) or one of their names, not {type(model).__name__}"
            )
        _check_range("surrogate_epochs", surrogate_epochs, 1, 1000, integer=True)
        self.model = model
        self.surrogate_epochs = surrogate_epochs

    def _network(self, dataset: Dataset, rng: np.random.Generator) -> TorchClassifier:
        """The fitted model whose gradients the attack follows (trained here when given by name)."""
        if not isinstance(self.model, str):
            return self.model  # type: ignore[no-any-return]
        from poisonlab.models import MODELS

        seed = int(rng.integers(2**31 - 1))
        surrogate = MODELS.create(self.model, epochs=self.surrogate_epochs, random_state=seed)
        return surrogate.fit(dataset.X, dataset.y)  # type: ignore[return-value]

    def _project(self, x: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.clamp(torch.minimum(torch.maximum(x, origin - self.eps), origin + self.eps), 0.0, 1.0)

    def _result(self, dataset: Dataset, index: np.ndarray, poisons: np.ndarray, **extra: Any) -> PoisonResult:
        X = dataset.X.copy()
        origin = dataset.X[index].astype(np.float32)
        # the ball is closed and exact in float32: clip once more after the conversion
        X[index] = np.clip(
            poisons.astype(np.float32), origin - np.float32(self.eps), origin + np.float32(self.eps)
        )
        X[index] = np.clip(X[index], 0.0, 1.0)
        changed = np.any(X[index].reshape(index.size, -1) != origin.reshape(index.size, -1), axis=1)
        index = index[changed]
        return PoisonResult(dataset.with_arrays(X=X), mask_of(index, len(dataset)), **extra)


def _inputs(model: TorchClassifier, X: torch.Tensor) -> torch.Tensor:
    """What the network sees: images as they are, flattened inputs standardised as in training."""
    import torch

    if model.arch == "cnn":
        return X
    flat = X.reshape(X.shape[0], -1)
    return (flat - torch.from_numpy(model.mean_)) / torch.from_numpy(model.scale_)


def _features(model: TorchClassifier, X: torch.Tensor) -> torch.Tensor:
    return model.net_.features(_inputs(model, X))  # type: ignore[operator, no-any-return]


def _logits(model: TorchClassifier, X: torch.Tensor) -> torch.Tensor:
    return model.net_(_inputs(model, X))  # type: ignore[no-any-return]


class _TargetedInstance(_GradientAttack):
    """An attack on one test input, given by :meth:`aim`; poisons come from class ``target``."""

    targets_instance = True

    target: int
    target_input_: np.ndarray | None = None

    def aim(self, x: np.ndarray) -> _TargetedInstance:
        """A copy of this attack aimed at the input ``x`` (one sample, without the batch axis)."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
            raise DataError("the target input must be finite numbers")
        aimed = copy.copy(self)
        aimed.target_input_ = x.astype(np.float32)
        return aimed

    def _target(self, dataset: Dataset) -> np.ndarray:
        if self.target_input_ is None:
            raise ConfigError(f"attack {type(self).__name__} needs a target input: call aim(x) first")
        if self.target_input_.shape != dataset.X.shape[1:]:
            raise DataError(
                f"the target input has shape {self.target_input_.shape}; "
                f"{dataset.name} samples are {dataset.X.shape[1:]}"
            )
        return self.target_input_[None]

    def _bases(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        target = class_index(self.target, dataset, "target")
        pool = np.flatnonzero(dataset.y == target)
        return target, choose(pool, n_poison, rng, f"samples of target class {self.target}")


class FeatureCollision(_TargetedInstance):
    """Feature collision ("Poison Frogs"): poisons whose features collide with the target's.

    Each poison starts from a base image ``b`` of class ``target`` (optionally
    watermarked with the target, ``(1 − opacity)·b + opacity·t``) and minimises
    ``‖f(x) − f(t)‖² + β‖x − b‖²`` by forward-backward splitting: a gradient step
    on the feature distance, then the proximal step of the distance to the base,
    ``x ← (x̂ + λβ·b) / (1 + λβ)``; here also a projection onto the L∞ ball of
    radius ``eps`` around the original image. ``f`` is the penultimate layer. The
    step size ``λ`` is halved whenever the objective rises, as in the paper.
    ``β = beta0·(d_f / d_b)²`` with ``d_f`` the feature and ``d_b`` the input
    dimension (the paper's scaling, with its 2048-dimensional features replaced by
    the model's own). A victim that retrains its last layer on the poisoned set
    (transfer learning) then classifies ``t`` as ``target``; end to end the
    watermark (opacity 0.3 in the paper) and several poisons are needed.

    References
    ----------
    A. Shafahi, W. R. Huang, M. Najibi, O. Suciu, C. Studer, T. Dumitras, T.
    Goldstein. "Poison Frogs! Targeted Clean-Label Poisoning Attacks on Neural
    Networks." NeurIPS 2018.
    """

    def __init__(
        self,
        *,
        target: int = 0,
        eps: float = 0.25,
        steps: int = 200,
        lr: float = 0.01,
        beta0: float = 0.25,
        opacity: float = 0.0,
        model: Any = "cnn",
        surrogate_epochs: int = 30,
    ) -> None:
        _check_range("eps", eps, 1e-6, 1.0)
        _check_range("steps", steps, 1, 100_000, integer=True)
        _check_range("lr", lr, 1e-8, 1e3)
        _check_range("beta0", beta0, 0.0, 1e6)
        _check_range("opacity", opacity, 0.0, 1.0)
        self.target = target
        self.eps = float(eps)
        self.steps = steps
        self.lr = float(lr)
        self.beta0 = float(beta0)
        self.opacity = float(opacity)
        self._set_model(model, surrogate_epochs)

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        import torch

        x_t = self._target(dataset)
        target, index = self._bases(dataset, n_poison, rng)
        model = self._network(dataset, rng)
        with torch.no_grad():
            f_t = _features(model, torch.from_numpy(x_t))
        origin = torch.from_numpy(dataset.X[index].astype(np.float32))
        base = (1 - self.opacity) * origin + self.opacity * torch.from_numpy(x_t)
        beta = self.beta0 * (f_t.shape[1] / origin[0].numel()) ** 2
        x = self._project(base.clone(), origin)
        lr = torch.full((len(index),) + (1,) * (x.dim() - 1), self.lr)

        def objective(x: torch.Tensor) -> torch.Tensor:
            distance = ((_features(model, x) - f_t) ** 2).sum(dim=1)
            return distance + beta * ((x - base) ** 2).flatten(1).sum(dim=1)

        with torch.no_grad():
            previous = objective(x)
        for _ in range(self.steps):
            x.requires_grad_(True)
            distance = ((_features(model, x) - f_t) ** 2).sum()
            (grad,) = torch.autograd.grad(distance, x)
            with torch.no_grad():
                forward = x - lr * grad
                candidate = self._project((forward + lr * beta * base) / (1 + lr * beta), origin)
                value = objective(candidate)
                worse = (value > previous).reshape(lr.shape)
                lr = torch.where(worse, lr / 2, lr)
                x = torch.where(worse, x.detach(), candidate)
                previous = torch.where(worse.flatten(), previous, value)
        return self._result(dataset, index, x.detach().numpy(), target_class=target)


class BullseyePolytope(_TargetedInstance):
    """Bullseye Polytope: the poisons' mean feature vector is placed on the target's.

    The ``k`` poisons are optimised jointly, with Adam on their perturbations
    projected onto the L∞ ball, to minimise ``‖f(t) − (1/k)·Σ f(x_j)‖² / ‖f(t)‖²``:
    the target sits at the centre (the "bullseye") of the poisons' convex polytope
    in feature space, which transfers to retrained last layers better than single
    collisions and than the learned coefficients of Convex Polytope.

    References
    ----------
    H. Aghakhani, D. Meng, Y.-X. Wang, C. Kruegel, G. Vigna. "Bullseye Polytope: A
    Scalable Clean-Label Poisoning Attack with Improved Transferability." IEEE EuroS&P 2021.
    """

    def __init__(
        self,
        *,
        target: int = 0,
        eps: float = 0.25,
        steps: int = 300,
        lr: float = 0.01,
        model: Any = "cnn",
        surrogate_epochs: int = 30,
    ) -> None:
        _check_range("eps", eps, 1e-6, 1.0)
        _check_range("steps", steps, 1, 100_000, integer=True)
        _check_range("lr", lr, 1e-8, 10.0)
        self.target = target
        self.eps = float(eps)
        self.steps = steps
        self.lr = float(lr)
        self._set_model(model, surrogate_epochs)

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        import torch

        x_t = self._target(dataset)
        target, index = self._bases(dataset, n_poison, rng)
        model = self._network(dataset, rng)
        with torch.no_grad():
            f_t = _features(model, torch.from_numpy(x_t))[0]
        origin = torch.from_numpy(dataset.X[index].astype(np.float32))
        delta = torch.zeros_like(origin, requires_grad=True)
        optimiser = torch.optim.Adam([delta], lr=self.lr)
        scale = (f_t**2).sum().clamp_min(1e-12)
        for _ in range(self.steps):
            optimiser.zero_grad()
            centre = _features(model, self._project(origin + delta, origin)).mean(dim=0)
            (((centre - f_t) ** 2).sum() / scale).backward()
            optimiser.step()
            with torch.no_grad():
                delta.copy_(self._project(origin + delta, origin) - origin)
        poisons = self._project(origin + delta.detach(), origin)
        return self._result(dataset, index, poisons.numpy(), target_class=target)


def _shift(X: torch.Tensor, rng: np.random.Generator, max_shift: int = 1) -> torch.Tensor:
    """Differentiable augmentation: the whole batch translated by up to ``max_shift`` pixels."""
    import torch

    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    return torch.roll(X, shifts=(dy, dx), dims=(2, 3))


def _match_gradients(
    model: TorchClassifier,
    origin: torch.Tensor,
    labels: torch.Tensor,
    target_grad: list[torch.Tensor],
    *,
    eps: float,
    steps: int,
    restarts: int,
    augment: bool,
    rng: np.random.Generator,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """Perturbations of ``origin`` whose training gradient aligns with ``target_grad``.

    Minimises ``1 − cos(∇θ L(poisons), target_grad)`` with signed Adam (step 0.1·eps,
    decayed tenfold at 3/8, 5/8 and 7/8 of the steps), random starts in the ball,
    and the best of ``restarts`` kept (Geiping et al. 2021); ``start`` (poisons
    from an earlier round) replaces the random start. Returns the poisons and
    their final alignment loss.
    """
    import torch
    from torch import nn

    params = [p for p in model.net_.parameters() if p.requires_grad]
    target_norm = torch.sqrt(sum((g**2).sum() for g in target_grad))  # type: ignore[arg-type]
    best, best_loss = origin, math.inf
    for _ in range(restarts):
        generator = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        if start is None:
            initial = origin + (torch.rand(origin.shape, generator=generator) * 2 - 1) * eps
        else:
            initial = start
        delta = (torch.clamp(initial, 0.0, 1.0) - origin).requires_grad_(True)
        optimiser = torch.optim.Adam([delta], lr=0.1 * eps)
        milestones = [int(steps * f) for f in (3 / 8, 5 / 8, 7 / 8)]
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)
        loss_value = math.inf
        for _ in range(steps):
            x = origin + delta
            if augment:
                x = _shift(x, rng)
            loss = nn.functional.cross_entropy(_logits(model, x), labels)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * t).sum() for g, t in zip(grads, target_grad, strict=True))
            norm = torch.sqrt(sum((g**2).sum() for g in grads))  # type: ignore[arg-type]
            alignment = 1 - dot / (norm * target_norm + 1e-12)
            (grad,) = torch.autograd.grad(alignment, delta)
            optimiser.zero_grad()
            delta.grad = grad.sign()
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                delta.copy_(torch.clamp(torch.clamp(delta, -eps, eps) + origin, 0.0, 1.0) - origin)
            loss_value = float(alignment.detach())
        # the alignment of the final poisons, without augmentation
        loss = nn.functional.cross_entropy(_logits(model, (origin + delta).detach()), labels)
        grads = torch.autograd.grad(loss, params)
        dot = sum((g * t).sum() for g, t in zip(grads, target_grad, strict=True))
        norm = torch.sqrt(sum((g**2).sum() for g in grads))  # type: ignore[arg-type]
        loss_value = float(1 - dot / (norm * target_norm + 1e-12))
        if loss_value < best_loss:
            best, best_loss = (origin + delta).detach(), loss_value
    return best, best_loss


class GradientMatching(_TargetedInstance):
    """Gradient matching ("Witches' Brew"): poisons whose training gradient points where the target's does.

    From a surrogate trained by the attacker on the clean data, the gradient of the
    *adversarial* loss ``L(f(t), target)`` is computed once; perturbations of base
    images of class ``target`` are then optimised so that the gradient of their
    (correctly labelled) training loss has maximal cosine similarity with it (see
    :func:`_match_gradients`). A victim trained from scratch on the poisoned set,
    with its own seed, follows that gradient and misclassifies ``t``. Random
    one-pixel translations serve as the differentiable augmentation (``augment``).

    References
    ----------
    J. Geiping, L. Fowl, W. R. Huang, W. Czaja, G. Taylor, M. Moeller, T. Goldstein.
    "Witches' Brew: Industrial Scale Data Poisoning via Gradient Matching." ICLR 2021.
    """

    def __init__(
        self,
        *,
        target: int = 0,
        eps: float = 16 / 255,
        steps: int = 250,
        restarts: int = 4,
        augment: bool = True,
        model: Any = "cnn",
        surrogate_epochs: int = 30,
    ) -> None:
        _check_range("eps", eps, 1e-6, 1.0)
        _check_range("steps", steps, 1, 100_000, integer=True)
        _check_range("restarts", restarts, 1, 100, integer=True)
        if not isinstance(augment, bool):
            raise ConfigError(f"augment must be true or false, got {augment!r}")
        self.target = target
        self.eps = float(eps)
        self.steps = steps
        self.restarts = restarts
        self.augment = augment
        self._set_model(model, surrogate_epochs)

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        import torch
        from torch import nn

        x_t = self._target(dataset)
        target, index = self._bases(dataset, n_poison, rng)
        model = self._network(dataset, rng)
        params = [p for p in model.net_.parameters() if p.requires_grad]
        adversarial = nn.functional.cross_entropy(
            _logits(model, torch.from_numpy(x_t)), torch.tensor([target], dtype=torch.int64)
        )
        target_grad = [g.detach() for g in torch.autograd.grad(adversarial, params)]
        origin = torch.from_numpy(dataset.X[index].astype(np.float32))
        labels = torch.from_numpy(dataset.y[index].astype(np.int64))
        poisons, self.alignment_loss_ = _match_gradients(
            model,
            origin,
            labels,
            target_grad,
            eps=self.eps,
            steps=self.steps,
            restarts=self.restarts,
            augment=self.augment,
            rng=rng,
        )
        return self._result(dataset, index, poisons.numpy(), target_class=target)


@dataclass(frozen=True, eq=False)
class CornerTrigger(Trigger):
    """A small pattern blended into each of the four corners: ``x + amplitude·(pattern − x)``."""

    pattern: np.ndarray  # (s, s) values in [0, 1]
    amplitude: float
    image_shape: tuple[int, ...]

    def apply(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 4 or tuple(X.shape[1:]) != tuple(self.image_shape):
            raise DataError(f"trigger expects N×{'×'.join(map(str, self.image_shape))} images, got {X.shape}")
        out = np.array(X, dtype=np.float32, copy=True)
        s = self.pattern.shape[0]
        for rows in (slice(0, s), slice(-s, None)):
            for cols in (slice(0, s), slice(-s, None)):
                # the pattern is mirrored into each corner, as Turner et al. stamp it
                pattern = self.pattern[:: 1 if rows.start == 0 else -1, :: 1 if cols.start == 0 else -1]
                region = out[:, :, rows, cols]
                out[:, :, rows, cols] = region + self.amplitude * (pattern - region)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def _checkerboard(size: int) -> np.ndarray:
    return ((np.add.outer(np.arange(size), np.arange(size)) + 1) % 2).astype(np.float32)


class LabelConsistentBackdoor(_GradientAttack):
    """Label-consistent backdoor: hard-to-learn target-class images that carry the trigger.

    Samples of class ``target`` are first perturbed adversarially (PGD within the
    L∞ ball, maximising the surrogate's loss on their own, correct label), so that
    their content no longer explains their label; then a checkerboard pattern is
    blended into the four corners with ``amplitude`` (the reduced-amplitude
    variant when below 1), and the result is projected onto the ball. The labels
    stay correct; a model can fit these samples most easily through the trigger,
    and at test time the full-amplitude trigger sends inputs of every class to
    ``target``. PGD takes ``steps`` steps of ``2.5·eps/steps`` from a random start
    (Madry et al. 2018). The paper's 3×3 corners on 32×32 images were too faint for
    a CNN on 28×28 digits with the trigger held inside the ball (ASR 0.21–0.30 on
    development seeds at 5%, ``eps`` 0.3); ``patch_size=None`` takes a fifth of
    the image side (6 on 28×28, 2 on 8×8), chosen on those seeds.

    References
    ----------
    A. Turner, D. Tsipras, A. Madry. "Label-Consistent Backdoor Attacks."
    arXiv:1912.02771, 2019.
    """

    backdoor = True

    def __init__(
        self,
        *,
        target: int = 0,
        eps: float = 0.3,
        steps: int = 20,
        amplitude: float = 1.0,
        patch_size: int | None = None,
        model: Any = "cnn",
        surrogate_epochs: int = 30,
    ) -> None:
        _check_range("eps", eps, 1e-6, 1.0)
        _check_range("steps", steps, 1, 10_000, integer=True)
        _check_range("amplitude", amplitude, 1e-6, 1.0)
        if patch_size is not None:
            _check_range("patch_size", patch_size, 1, 64, integer=True)
        self.target = target
        self.eps = float(eps)
        self.steps = steps
        self.amplitude = float(amplitude)
        self.patch_size = patch_size
        self._set_model(model, surrogate_epochs)

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        import torch
        from torch import nn

        target = class_index(self.target, dataset, "target")
        shape = tuple(dataset.X.shape[1:])
        side = min(shape[1:])
        size = max(2, round(side / 5)) if self.patch_size is None else self.patch_size
        if 2 * size > side:
            raise ConfigError(f"patch_size {size} does not fit four corners of {shape} images")
        pool = np.flatnonzero(dataset.y == target)
        index = choose(pool, n_poison, rng, f"samples of target class {self.target}")
        model = self._network(dataset, rng)
        origin = torch.from_numpy(dataset.X[index].astype(np.float32))
        labels = torch.from_numpy(dataset.y[index].astype(np.int64))
        generator = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        x = self._project(origin + (torch.rand(origin.shape, generator=generator) * 2 - 1) * self.eps, origin)
        step = 2.5 * self.eps / self.steps
        for _ in range(self.steps):
            x.requires_grad_(True)
            loss = nn.functional.cross_entropy(_logits(model, x), labels)
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x = self._project(x + step * grad.sign(), origin)
        pattern = _checkerboard(size)
        stamped = CornerTrigger(pattern, self.amplitude, shape).apply(x.detach().numpy())
        test_trigger = CornerTrigger(pattern, 1.0, shape)
        return self._result(dataset, index, stamped, trigger=test_trigger, target_class=target)


class SleeperAgent(_GradientAttack):
    """Sleeper Agent: a hidden-trigger backdoor planted from scratch by gradient matching.

    The poisons are target-class images with a small perturbation and no trigger.
    Their training gradient is matched (see :func:`_match_gradients`) to the
    gradient of the loss that sends *triggered* source-class images to ``target``;
    a model trained from scratch on them learns to do so, although no training
    image carries the trigger. As in the paper, the poisons are the target-class
    samples with the largest surrogate gradient norm, and the surrogate is
    retrained on the current poisoned set ``retrain`` times during the crafting
    (the steps are split evenly between the retrainings). The trigger is a random
    ``patch_size`` square patch (drawn from ``pattern_seed``) in the bottom-right
    corner; it is applied to test inputs of ``source`` to measure the attack.

    References
    ----------
    H. Souri, L. Fowl, R. Chellappa, M. Goldblum, T. Goldstein. "Sleeper Agent:
    Scalable Hidden Trigger Backdoors for Neural Networks Trained from Scratch."
    NeurIPS 2022.
    """

    backdoor = True

    def __init__(
        self,
        *,
        target: int = 0,
        source: int = 1,
        eps: float = 16 / 255,
        steps: int = 250,
        retrain: int = 2,
        patch_size: int = 3,
        pattern_seed: int = 0,
        augment: bool = True,
        model: Any = "cnn",
        surrogate_epochs: int = 30,
    ) -> None:
        _check_range("eps", eps, 1e-6, 1.0)
        _check_range("steps", steps, 1, 100_000, integer=True)
        _check_range("retrain", retrain, 0, 100, integer=True)
        _check_range("patch_size", patch_size, 1, 64, integer=True)
        if not isinstance(augment, bool):
            raise ConfigError(f"augment must be true or false, got {augment!r}")
        if source == target:
            raise ConfigError(f"source and target must differ, both are {target}")
        self.target = target
        self.source = source
        self.eps = float(eps)
        self.steps = steps
        self.retrain = retrain
        self.patch_size = patch_size
        self.pattern_seed = pattern_seed
        self.augment = augment
        self._set_model(model, surrogate_epochs)

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        import torch
        from torch import nn

        from poisonlab.attacks.backdoor import PatchTrigger

        target = class_index(self.target, dataset, "target")
        source = class_index(self.source, dataset, "source")
        _, height, width = dataset.X.shape[1:]
        s = self.patch_size
        if s > min(height, width):
            raise ConfigError(f"patch_size {s} does not fit {height}×{width} images")
        pool = np.flatnonzero(dataset.y == target)
        choose(pool, n_poison, rng, f"samples of target class {self.target}")  # refuse before training
        sources = np.flatnonzero(dataset.y == source)
        if sources.size == 0:
            raise ConfigError(f"source class {self.source} has no samples in {dataset.name}")
        patch = np.random.default_rng(self.pattern_seed).random((s, s)).astype(np.float32)
        trigger = PatchTrigger(patch, height - s, width - s, tuple(dataset.X.shape[1:]))
        model = self._network(dataset, rng)
        triggered = torch.from_numpy(trigger.apply(dataset.X[sources]))
        wanted = torch.full((sources.size,), target, dtype=torch.int64)

        # poisons: the target-class samples with the largest gradient norm under the surrogate
        params = [p for p in model.net_.parameters() if p.requires_grad]
        norms = np.empty(pool.size)
        for i, row in enumerate(pool):
            loss = nn.functional.cross_entropy(
                _logits(model, torch.from_numpy(dataset.X[row : row + 1].copy())),
                torch.tensor([target], dtype=torch.int64),
            )
            norms[i] = float(sum((g**2).sum() for g in torch.autograd.grad(loss, params)))  # type: ignore[arg-type]
        index = np.sort(pool[np.argsort(-norms, kind="stable")[:n_poison]])

        origin = torch.from_numpy(dataset.X[index].astype(np.float32))
        labels = torch.from_numpy(dataset.y[index].astype(np.int64))
        poisons = origin
        rounds = self.retrain + 1
        for r in range(rounds):
            if r:  # retrain the surrogate on the current poisoned set
                current = dataset.X.copy()
                current[index] = poisons.numpy()
                model = self._network(dataset.with_arrays(X=current), rng)
                params = [p for p in model.net_.parameters() if p.requires_grad]
            adversarial = nn.functional.cross_entropy(_logits(model, triggered), wanted)
            target_grad = [g.detach() for g in torch.autograd.grad(adversarial, params)]
            steps = max(1, self.steps // rounds)
            poisons, self.alignment_loss_ = _match_gradients(
                model,
                origin,
                labels,
                target_grad,
                eps=self.eps,
                steps=steps,
                restarts=1,
                augment=self.augment,
                rng=rng,
                start=poisons if r else None,
            )
        return self._result(
            dataset, index, poisons.numpy(), trigger=trigger, target_class=target, source_class=source
        )
