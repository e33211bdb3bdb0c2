"""Availability poisoning of a convex learner: poison points optimised through the learner's optimum.

The influence attack of Koh, Steinhardt & Liang, "Stronger Data Poisoning Attacks Break
Data Sanitization Defenses" (Machine Learning 111, 2022; arXiv 2018), in the gradient
form of Biggio, Nelson & Laskov, "Poisoning Attacks against Support Vector Machines"
(ICML 2012) and Xiao et al., "Is Feature Selection Secure against Training Data
Poisoning?" (ICML 2015): the attacker wants the learner to do badly on clean data, so
it moves its poison points uphill on that loss, differentiating *through* the
learner's training:

    ∂L_val/∂x_p = −∇_θ L_val(θ*)ᵀ H⁻¹ ∂²ℓ(θ*; x_p, y_p)/∂θ ∂x_p,

where θ* is the fitted (L2-regularised, multinomial) logistic regression, ``H`` the
Hessian of its training objective, and the implicit function theorem gives the
middle factor. ``L_val`` is a soft error count on the attacker's clean copy of the
training set, ``Σ σ(−margin / τ)`` (margin: the true class's logit minus the best
other), so the attack aims at errors rather than at loss the learner can absorb.

The poisons start as the farthest-first label flips (Xiao et al. 2015; poisonlab's
``farthest_flip``): the chosen rows take the surrogate's runner-up class. As Koh et al.
do, the attack is *coordinated*: the poisons are copies of a few points, ``locations``
of them (the surest of the chosen rows, each with its runner-up class), and the copies
of a point share its gradient, so together they pull as one point of many times the
weight. The points then move by signed steps in standardised units, kept inside the
box the clean data span per feature, for ``steps`` iterations; the iterate with the
lowest accuracy on the attacker's clean copy is kept. Each copy overwrites a row (an
attacker with write access, so the training set keeps its size): the surest row not
yet taken among those whose class the copy's label flips.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, mask_of
from poisonlab.attacks.label_flip import farthest_first_order
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError

__all__ = ["InfluenceAvailability"]


class InfluenceAvailability(Attack):
    """Availability attack on logistic regression by implicit-gradient poison optimisation.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the attacked logistic regression (as scikit-learn's).
    steps : int
        Gradient iterations.
    step_size : float
        Signed step per iteration, in standard deviations of each feature.
    temperature : float
        τ of the soft error count.
    locations : int
        Distinct points the poisons are copies of (spread evenly); a number at least the
        poison count gives every poison its own point.

    References
    ----------
    Koh, P. W., Steinhardt, J., & Liang, P. (2022). Stronger data poisoning attacks break
    data sanitization defenses. Machine Learning, 111(1), 1–47.
    Biggio, B., Nelson, B., & Laskov, P. (2012). Poisoning Attacks against Support Vector
    Machines. ICML 2012.
    """

    modalities = ("tabular",)
    needs_model = True

    def __init__(
        self,
        *,
        C: float = 1.0,
        steps: int = 200,
        step_size: float = 0.1,
        temperature: float = 1.0,
        locations: int = 1,
    ) -> None:
        if not C > 0 or not step_size > 0 or not temperature > 0:
            raise ConfigError("C, step_size and temperature must be > 0")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 10_000:
            raise ConfigError(f"steps must be an integer in 1..10000, got {steps!r}")
        if isinstance(locations, bool) or not isinstance(locations, int) or locations < 1:
            raise ConfigError(f"locations must be an integer >= 1, got {locations!r}")
        self.C = C
        self.steps = steps
        self.step_size = step_size
        self.temperature = temperature
        self.locations = locations

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        import torch
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X = dataset.X.reshape(len(dataset), -1).astype(np.float64)
        y = dataset.y
        k = dataset.n_classes
        scaler = StandardScaler().fit(X)
        Z = scaler.transform(X)
        low, high = Z.min(axis=0), Z.max(axis=0)

        def fit(Zs: np.ndarray, ys: np.ndarray) -> Any:
            return LogisticRegression(C=self.C, max_iter=2000).fit(Zs, ys)

        clean = fit(Z, y)
        order, runner_up = farthest_first_order(clean, Z, y, k, rng)  # the surest rows first
        n_points = min(self.locations, n_poison)
        points, point_labels = Z[order[:n_points]].copy(), runner_up[order[:n_points]]
        copy_of = np.arange(n_poison) % n_points  # poison i is a copy of point copy_of[i]
        copies = torch.as_tensor(np.bincount(copy_of, minlength=n_points).astype(np.float64))
        # each copy overwrites the surest row not yet taken whose class its label flips
        index = np.empty(n_poison, dtype=np.int64)
        taken = np.zeros(len(y), dtype=bool)
        for i, point in enumerate(copy_of):
            free = order[~taken[order] & (y[order] != point_labels[point])]
            if free.size == 0:
                raise ConfigError(
                    f"{n_poison} poisons labelled {sorted(set(point_labels.tolist()))} need as many rows "
                    "of other classes to overwrite; lower the rate"
                )
            index[i] = free[0]
            taken[free[0]] = True
        best_acc, best = np.inf, points.copy()
        y_val = torch.as_tensor(np.array(y))
        Z_val = torch.as_tensor(Z)
        for _ in range(self.steps):
            Z_all, y_all = Z.copy(), y.copy()
            Z_all[index], y_all[index] = points[copy_of], point_labels[copy_of]
            model = fit(Z_all, y_all)
            acc = float(np.mean(model.predict(Z) == y))
            if acc < best_acc:
                best_acc, best = acc, points.copy()
            theta = torch.tensor(_params(model, k), requires_grad=True)
            Zt, yt = torch.as_tensor(Z_all), torch.as_tensor(y_all)

            def objective(t: Any, Zt: Any = Zt, yt: Any = yt) -> Any:
                W = t.view(k, -1)
                logits = Zt @ W[:, :-1].T + W[:, -1]
                return (
                    torch.nn.functional.cross_entropy(logits, yt, reduction="sum")
                    + 0.5 * (W[:, :-1] ** 2).sum() / self.C
                )

            H = torch.autograd.functional.hessian(objective, theta.detach())
            W = theta.view(k, -1)
            logits = Z_val @ W[:, :-1].T + W[:, -1]
            true = logits.gather(1, y_val[:, None])[:, 0]
            other = logits.scatter(1, y_val[:, None], -torch.inf).amax(dim=1)
            soft_errors = torch.sigmoid(-(true - other) / self.temperature).sum()
            (g,) = torch.autograd.grad(soft_errors, theta)
            # H is singular along the softmax's shift direction: a small ridge keeps the solve stable
            v = torch.linalg.solve(H + 1e-6 * torch.eye(H.shape[0], dtype=H.dtype), g)
            zp = torch.tensor(points, requires_grad=True)
            logits_p = zp @ W[:, :-1].T + W[:, -1]
            point_losses = torch.nn.functional.cross_entropy(
                logits_p, torch.as_tensor(point_labels), reduction="none"
            )
            grad_theta = torch.autograd.grad((copies * point_losses).sum(), theta, create_graph=True)[0]
            (gx,) = torch.autograd.grad(-(grad_theta @ v), zp)
            points = np.clip(points + self.step_size * np.sign(gx.numpy()), low, high)
        best, labels = best[copy_of], point_labels[copy_of]
        keep = np.argsort(index)  # the poisoned rows in row order
        index, best, labels = index[keep], best[keep], labels[keep]
        poisons = scaler.inverse_transform(best).astype(np.float32)
        Xout = dataset.X.copy()
        Xout[index] = poisons.reshape((len(index), *dataset.X.shape[1:]))
        yout = y.copy()
        yout[index] = labels
        return PoisonResult(dataset.with_arrays(X=Xout, y=yout), mask_of(index, len(dataset)))


def _params(model: Any, k: int) -> np.ndarray:
    """Logistic regression's weights and bias as one ``k × (d + 1)`` vector (binary: ±half the logit)."""
    coef, intercept = model.coef_, model.intercept_
    if k == 2 and coef.shape[0] == 1:  # scikit-learn keeps one row for two classes: split it symmetrically
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return np.hstack([coef, intercept[:, None]]).ravel()
