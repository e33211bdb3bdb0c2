"""Differentially private training (DP-SGD) of the run's torch model, through Opacus.

Abadi et al., "Deep Learning with Differential Privacy", CCS 2016: every
per-sample gradient is clipped to ``max_grad_norm`` and Gaussian noise of standard
deviation ``noise_multiplier · max_grad_norm`` is added to each batch's sum, with
batches drawn by Poisson sampling. A model trained this way changes little when one
training sample changes, which also bounds what a few poisons can do: Hong et al.,
"On the Effectiveness of Mitigating Data Poisoning Attacks with Gradient Shaping"
(2020), found that clipping and noise blunt poisoning even at weak privacy.

Give either ``noise_multiplier`` or ``target_epsilon`` (the noise is then found by
Opacus's accountant for the model's epochs and batch size). The privacy spent,
``dp_epsilon`` at ``delta``, goes into the run record. Opacus's RDP accountant is used.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.training.base import MakeModel, TrainedModel, torch_model
from poisonlab.errors import ConfigError

__all__ = ["DPSGD", "check_private_layers"]

ACCOUNTANT = "rdp"


def check_private_layers(net: Any) -> None:
    """Refuse, in one line naming them, the layers Opacus cannot train privately (e.g. BatchNorm)."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(net, strict=False)
    if errors:
        names = sorted({str(e).split(":")[0].strip() or type(e).__name__ for e in errors})
        raise ConfigError(f"DP-SGD cannot train this network: {'; '.join(names)}")


class DPSGD:
    """DP-SGD as a training defense (see the module docstring).

    Parameters
    ----------
    noise_multiplier : float, optional
        σ: noise standard deviation over the clipping norm. Exclusive with ``target_epsilon``.
    target_epsilon : float, optional
        ε to reach after the model's epochs; σ is found by the accountant.
    max_grad_norm : float
        C: each per-sample gradient is clipped to this L2 norm.
    delta : float, optional
        δ of (ε, δ)-DP; default ``1 / (10 n)`` for ``n`` training samples.

    References
    ----------
    Abadi, M. et al. (2016). Deep Learning with Differential Privacy. CCS 2016.
    Hong, S. et al. (2020). On the Effectiveness of Mitigating Data Poisoning Attacks
    with Gradient Shaping. arXiv:2002.11497.
    Yousefpour, A. et al. (2021). Opacus: User-Friendly Differential Privacy Library in PyTorch.
    """

    needs_torch = True

    def __init__(
        self,
        *,
        noise_multiplier: float | None = 1.0,
        target_epsilon: float | None = None,
        max_grad_norm: float = 1.0,
        delta: float | None = None,
    ) -> None:
        if target_epsilon is not None:
            noise_multiplier = None
            if not target_epsilon > 0:
                raise ValueError(f"target_epsilon must be > 0, got {target_epsilon!r}")
        elif noise_multiplier is None or not noise_multiplier >= 0:
            raise ValueError("give noise_multiplier ≥ 0 or target_epsilon > 0")
        if not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm!r}")
        if delta is not None and not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {delta!r}")
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.max_grad_norm = max_grad_norm
        self.delta = delta

    def noise_for(self, n_train: int, batch_size: int, epochs: int, delta: float) -> float:
        """σ: the one given, or the accountant's for ``target_epsilon`` (one line if out of reach)."""
        if self.target_epsilon is None:
            return float(self.noise_multiplier)  # type: ignore[arg-type]
        from opacus.accountants.utils import get_noise_multiplier

        try:
            # RDP may warn that the optimal order is its largest alpha: ε is still an upper bound
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sigma = get_noise_multiplier(
                    target_epsilon=self.target_epsilon,
                    target_delta=delta,
                    sample_rate=min(1.0, batch_size / n_train),
                    epochs=epochs,
                    accountant=ACCOUNTANT,
                )
            return float(sigma)
        except ValueError:
            raise ConfigError(
                f"target ε = {self.target_epsilon} cannot be reached in {epochs} epochs at batch size "
                f"{batch_size} on {n_train} samples (δ = {delta:.2g}); raise ε or train fewer epochs"
            ) from None

    def check_fit(self, n_train: int, model: Any) -> None:
        """Before any run: one line if ``target_epsilon`` is out of reach for ``model`` on n_train rows."""
        torch_model(model, "dp_sgd")
        self.noise_for(n_train, model.batch_size, model.epochs, self._delta(n_train))

    def _delta(self, n_train: int) -> float:
        return self.delta if self.delta is not None else 1.0 / (10 * n_train)

    def train(self, train: Dataset, make_model: MakeModel, rng: np.random.Generator) -> TrainedModel:
        import torch
        from opacus import PrivacyEngine
        from torch import nn

        model = torch_model(make_model(int(rng.integers(2**31 - 1))), "dp_sgd")
        inputs, targets = model.start(train.X, train.y)
        check_private_layers(model.net_)
        delta = self._delta(len(train))
        sigma = self.noise_for(len(train), model.batch_size, model.epochs, delta)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(inputs, targets),
            batch_size=model.batch_size,
            generator=torch.Generator().manual_seed(model.random_state),
        )
        with warnings.catch_warnings():
            # Opacus warns that its RNG is not cryptographically secure (secure_mode) and about
            # hooks; poisonlab measures robustness, and says in the docs that it is not a
            # certified-privacy deployment
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant=ACCOUNTANT)
            net, optimiser, private_loader = engine.make_private(
                module=model.net_,
                optimizer=model.optimiser(),
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=self.max_grad_norm,
                noise_generator=torch.Generator().manual_seed(model.random_state + 1),
            )
            net.train()
            for _ in range(model.epochs):
                for xb, yb in private_loader:
                    if xb.shape[0] == 0:  # Poisson sampling can draw an empty batch
                        continue
                    optimiser.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(net(xb), yb).backward()
                    optimiser.step()
            epsilon = float(engine.get_epsilon(delta))
        model.net_ = _unwrapped(net)
        model.net_.eval()
        extras: dict[str, Any] = {"dp_epsilon": epsilon, "dp_delta": delta, "dp_noise": sigma}
        return TrainedModel(model, extras=extras)


def _unwrapped(net: Any) -> Any:
    """The user's network inside Opacus's GradSampleModule, its hooks removed."""
    inner = getattr(net, "_module", net)
    if hasattr(net, "remove_hooks"):
        net.remove_hooks()
    return inner
