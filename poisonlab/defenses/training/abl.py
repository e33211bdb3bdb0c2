"""Anti-Backdoor Learning: isolate the samples learned too fast, then unlearn them.

Li, Lyu, Koren, Lyu, Li & Ma, "Anti-Backdoor Learning: Training Clean Models on
Poisoned Data", NeurIPS 2021.

Backdoor samples are learned much faster than clean ones, so their loss drops first.
ABL trains in three stages:

1. **Isolation** (``isolation_epochs``, the paper's ``T_te``): train with the local
   gradient ascent (LGA) loss ``sign(ℓ − γ) · ℓ``, which holds each sample's loss near
   ``γ``: clean samples cannot go below it, while backdoor samples, learned faster,
   still do. Then set apart the ``isolation_ratio`` share with the *lowest* loss.
2. **Learning** (``finetune_epochs``): keep training on the rest with the usual loss.
3. **Unlearning** (``unlearning_epochs`` at ``unlearning_lr``): gradient *ascent* on
   the isolated samples, which breaks the link between trigger and target class.

Defaults follow the paper (γ = 0.5, 1% isolated after ``T_te`` = 20 epochs, 20
epochs of unlearning). The learning stage takes the model's own epochs, so the
defended model has had as much ordinary training as the plain one. Unlearning uses
the model's optimiser (Adam) at 10⁻⁴: Adam's normalised steps at the paper's SGD
rate (5·10⁻⁴) collapsed clean accuracy on the digits development seeds, while plain
SGD barely moves a model whose isolated samples already have near-zero loss.

The paper also states the later stage as one objective, ``Σ_{D_c} ℓ − Σ_{D_b} ℓ``
(learning and unlearning at once); on digits with BadNets at 10% the poisons left in
``D_c`` then taught the backdoor back (ASR 100% on development seeds), so the stages
run in sequence, as in the authors' released code. How well it works here is
measured by ``benchmarks/bench_robust_training.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.training.base import MakeModel, TrainedModel, torch_model

__all__ = ["AntiBackdoorLearning", "lga_loss"]


def lga_loss(gamma: float) -> Any:
    """The local gradient ascent loss ``mean(sign(ℓ − γ) · ℓ)`` over a batch."""

    from torch import nn

    def loss(logits: Any, targets: Any) -> Any:
        per_sample = nn.functional.cross_entropy(logits, targets, reduction="none")
        return ((per_sample - gamma).sign() * per_sample).mean()

    return loss


class AntiBackdoorLearning:
    """ABL as a training defense for the run's torch model (see the module docstring).

    References
    ----------
    Li, Y., Lyu, X., Koren, N., Lyu, L., Li, B., & Ma, X. (2021). Anti-Backdoor
    Learning: Training Clean Models on Poisoned Data. NeurIPS 2021.
    """

    needs_torch = True

    def __init__(
        self,
        *,
        isolation_epochs: int = 20,
        gamma: float = 0.5,
        isolation_ratio: float = 0.01,
        finetune_epochs: int | None = None,
        unlearning_epochs: int = 20,
        unlearning_lr: float = 1e-4,
    ) -> None:
        for name, value in (("isolation_epochs", isolation_epochs), ("unlearning_epochs", unlearning_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if finetune_epochs is not None and (not isinstance(finetune_epochs, int) or finetune_epochs < 0):
            raise ValueError(f"finetune_epochs must be an integer ≥ 0, got {finetune_epochs!r}")
        if not 0 < isolation_ratio < 0.5:
            raise ValueError(f"isolation_ratio must lie in (0, 0.5), got {isolation_ratio!r}")
        if gamma <= 0 or unlearning_lr <= 0:
            raise ValueError("gamma and unlearning_lr must be > 0")
        self.isolation_epochs = isolation_epochs
        self.gamma = gamma
        self.isolation_ratio = isolation_ratio
        self.finetune_epochs = finetune_epochs
        self.unlearning_epochs = unlearning_epochs
        self.unlearning_lr = unlearning_lr

    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel:
        import torch

        model = torch_model(make_model(int(rng.integers(2**31 - 1))), "anti_backdoor_learning")
        inputs, targets = model.start(train.X, train.y)
        generator = torch.Generator().manual_seed(model.random_state)
        optimiser = model.optimiser()
        lga = lga_loss(self.gamma)
        for _ in range(self.isolation_epochs):
            model.train_epoch(inputs, targets, optimiser, generator, lga)

        losses = model.per_sample_loss(inputs, targets)
        n_isolated = max(1, round(self.isolation_ratio * len(train)))
        isolated = np.zeros(len(train), dtype=bool)
        isolated[np.argsort(losses, kind="stable")[:n_isolated]] = True

        rest = torch.from_numpy(np.flatnonzero(~isolated))
        epochs = model.epochs if self.finetune_epochs is None else self.finetune_epochs
        for _ in range(epochs):
            model.train_epoch(inputs[rest], targets[rest], optimiser, generator)

        held = torch.from_numpy(np.flatnonzero(isolated))
        ascent = model.optimiser(lr=self.unlearning_lr)
        for _ in range(self.unlearning_epochs):
            model.train_epoch(inputs[held], targets[held], ascent, generator, _ascent)
        model.net_.eval()
        return TrainedModel(model, isolated, {"n_isolated": n_isolated})


def _ascent(logits: Any, targets: Any) -> Any:
    """Gradient ascent on the isolated samples: minimise minus their cross-entropy."""
    from torch import nn

    return -nn.functional.cross_entropy(logits, targets)
