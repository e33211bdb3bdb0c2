"""Array-level poisoning attacks on linear regression: OptP and StatP.

Both attacks follow M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru, B. Li,
"Manipulating Machine Learning: Poisoning Attacks and Countermeasures for Regression
Learning", IEEE S&P 2018 (arXiv:1804.00308). The attacker adds ``n_poison`` points
``(x_c, y_c)`` to the training set; as in the paper, features and response are
min-max scaled to ``[0, 1]`` and every poison point stays inside that box.

- :func:`optp` is the optimisation attack (OptP): gradient ascent on a validation
  (or training) error of the ridge model learned on ``train ∪ poison``.
- :func:`statp` is the statistical attack (StatP): poison features drawn from a
  normal fit to the training data, pushed to the corners of the box, with the
  response at the boundary.

The functions take and return plain NumPy arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from poisonlab.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["optp", "ridge_fit", "statp"]

# A ridge penalty of 0 (ordinary least squares) gets this much instead, so the normal
# equations stay solvable when features are collinear or the poison points coincide.
_JITTER = 1e-8
# Features and responses may exceed [0, 1] by float round-off from the scaling.
_BOX_TOL = 1e-9


# ----------------------------------------------------------------------------- validation


def _in_unit_box(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    """``arr`` as finite float64 in ``[0, 1]`` (round-off beyond the box clipped), or a DataError."""
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    if arr.size and (arr.min() < -_BOX_TOL or arr.max() > 1 + _BOX_TOL):
        raise DataError(
            f"{name} has values in [{arr.min():.4g}, {arr.max():.4g}]; the attack expects {what} in [0, 1]"
        )
    return np.clip(arr, 0.0, 1.0)


def _check_features(X: object, name: str) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (samples × features), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return _in_unit_box(arr, name, "min-max scaled features")


def _check_response(y: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.floating):
        raise DataError(
            f"{name} must be a 1-D float array of responses, got shape {arr.shape} and dtype {arr.dtype}"
        )
    if arr.shape[0] != n:
        raise DataError(f"{name} has {arr.shape[0]} values for {n} samples")
    return _in_unit_box(arr, name, "a min-max scaled response")


def _check_budget(n_poison: object) -> int:
    if isinstance(n_poison, bool) or not isinstance(n_poison, int | np.integer):
        raise DataError(f"n_poison must be an integer, got {n_poison!r}")
    if n_poison < 0:
        raise DataError(f"n_poison must be >= 0, got {n_poison}")
    return int(n_poison)


def _check_alpha(alpha: float) -> float:
    if not np.isfinite(alpha) or alpha < 0:
        raise DataError(f"alpha (the ridge penalty) must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


# ----------------------------------------------------------------------------- ridge


def ridge_fit(X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge regression with an unpenalised intercept.

    Minimises ``(1/n)·||Xθ + b − y||² + alpha·||θ||²``, the paper's normalisation.
    ``sklearn.linear_model.Ridge(alpha=alpha * n)`` fits the same model.

    Returns
    -------
    coef : ndarray of shape (d,)
    intercept : float
    """
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    penalty = np.full(d + 1, max(alpha, _JITTER))
    penalty[-1] = 0.0  # the intercept is not penalised
    theta = np.linalg.solve(A.T @ A / n + np.diag(penalty), A.T @ y / n)
    return theta[:-1], float(theta[-1])


# ----------------------------------------------------------------------------- StatP


def statp(
    X: np.ndarray,
    y: np.ndarray,
    n_poison: int,
    rng: np.random.Generator | int | None = None,
    *,
    alpha: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """StatP, the statistical poisoning attack of Jagielski et al. (S&P 2018).

    The attacker only needs the first two moments of the training features:

    1. draw ``n_poison`` feature vectors from ``N(mean(X), cov(X))``;
    2. round every feature to the nearer corner of ``[0, 1]`` (0 below 0.5, else 1),
       since the most damaging poison points sit at corners of the feasible box;
    3. put the response on the boundary opposite to the prediction of a ridge
       model fitted on ``(X, y)``: 0 where that model predicts at least 0.5, else 1.

    Parameters
    ----------
    X : ndarray of shape (N, d)
        Training features, min-max scaled to ``[0, 1]``.
    y : ndarray of shape (N,)
        Training responses (float), scaled to ``[0, 1]``.
    n_poison : int
        Number of poison points to make.
    rng : numpy Generator, int seed or None
        Source of randomness; the same seed gives the same poison.
    alpha : float
        Ridge penalty of the surrogate used for the response rule, in the
        ``(1/n)``-normalised form of :func:`ridge_fit`.

    Returns
    -------
    Xp : ndarray of shape (n_poison, d), values in {0, 1}
    yp : ndarray of shape (n_poison,), values in {0, 1}

    Raises
    ------
    DataError
        On non-finite values, a response that is not a 1-D float array, data outside
        ``[0, 1]`` or a negative budget.

    References
    ----------
    Jagielski et al., "Manipulating Machine Learning: Poisoning Attacks and
    Countermeasures for Regression Learning", IEEE S&P 2018 (the StatP attack).
    """
    X = _check_features(X, "X")
    y = _check_response(y, X.shape[0], "y")
    n_poison = _check_budget(n_poison)
    alpha = _check_alpha(alpha)
    gen = np.random.default_rng(rng)
    n, d = X.shape
    if n_poison == 0:
        return np.empty((0, d)), np.empty(0)
    if n < 2:
        raise DataError("StatP needs at least 2 training samples to estimate a covariance")

    mean = X.mean(axis=0)
    cov = np.atleast_2d(np.cov(X, rowvar=False))
    cov = (cov + cov.T) / 2
    # Draw through a clipped eigendecomposition: a singular covariance (a constant or
    # duplicated feature) still gives valid draws.
    eigval, eigvec = np.linalg.eigh(cov)
    factor = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
    draws = mean + gen.standard_normal((n_poison, d)) @ factor.T
    Xp = (draws >= 0.5).astype(np.float64)

    coef, intercept = ridge_fit(X, y, alpha)
    yp = np.where(Xp @ coef + intercept >= 0.5, 0.0, 1.0)
    return Xp, yp


# ----------------------------------------------------------------------------- OptP


def _init_points(
    X: np.ndarray, y: np.ndarray, n_poison: int, init: str, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of random training points with flipped responses (InvFlip or BFlip)."""
    index = gen.choice(X.shape[0], size=n_poison, replace=n_poison > X.shape[0])
    Xp = X[index].copy()
    if init == "invflip":
        yp = 1.0 - y[index]
    else:  # bflip: the boundary farther from the true response
        yp = np.where(y[index] >= 0.5, 0.0, 1.0)
    return Xp, yp


class _RidgeObjective:
    """The attacker's objective W as a function of the poison points, in torch.

    Training rows enter the normal equations only through ``AᵀA`` and ``Aᵀy``
    (``A = [X, 1]``), precomputed once, so one evaluation costs ``O(p·d² + d³)``
    plus the error on the evaluation set, and a whole batch of candidate poison
    sets is solved in one batched call.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_eval: np.ndarray,
        y_eval: np.ndarray,
        n_poison: int,
        alpha: float,
    ) -> None:
        import torch

        t = torch.float64
        A = torch.from_numpy(np.hstack([X, np.ones((X.shape[0], 1))])).to(t)
        self.gram = A.T @ A
        self.moment = A.T @ torch.from_numpy(y).to(t)
        self.A_eval = torch.from_numpy(np.hstack([X_eval, np.ones((X_eval.shape[0], 1))])).to(t)
        self.y_eval = torch.from_numpy(y_eval).to(t)
        self.n = X.shape[0] + n_poison
        d = X.shape[1]
        penalty = torch.full((d + 1,), max(alpha, _JITTER), dtype=t)
        penalty[-1] = 0.0  # the intercept is not penalised
        self.penalty = torch.diag(penalty)

    def __call__(self, Xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
        """W for poison sets ``Xp`` (..., p, d) and ``yp`` (..., p); one value per set."""
        import torch

        ones = torch.ones((*Xp.shape[:-1], 1), dtype=Xp.dtype)
        Ap = torch.cat([Xp, ones], dim=-1)
        lhs = (self.gram + Ap.transpose(-1, -2) @ Ap) / self.n + self.penalty
        rhs = (self.moment + (Ap.transpose(-1, -2) @ yp.unsqueeze(-1)).squeeze(-1)) / self.n
        theta = torch.linalg.solve(lhs, rhs.unsqueeze(-1)).squeeze(-1)
        pred = theta @ self.A_eval.T
        return ((pred - self.y_eval) ** 2).mean(dim=-1)


def optp(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    n_poison: int,
    *,
    alpha: float = 1e-3,
    init: Literal["bflip", "invflip"] = "bflip",
    objective: Literal["val", "train"] = "val",
    max_iter: int = 300,
    eps: float = 1e-7,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """OptP, the optimisation-based poisoning attack of Jagielski et al. (S&P 2018).

    The attacker solves the bilevel problem

        max_{(x_c, y_c) ∈ [0,1]^{d+1}}  W(θ*)   s.t.  θ* = argmin_θ (1/n)·||Aθ − y||² + alpha·||w||²

    where the inner problem is ridge regression (weights ``w``, unpenalised
    intercept) on ``train ∪ poison`` and ``W`` is the mean squared error on the
    validation set (``objective="val"``, the paper's ``W_val``) or on the clean
    training set (``"train"``, ``W_tr``). Both the features and the response of
    every poison point are optimised, as in the paper.

    Gradient. The inner problem has a closed form: ``θ*`` solves the normal
    equations ``(AᵀA/n + αI')θ = Aᵀy/n``, which are exactly its optimality (KKT)
    conditions. Differentiating ``W`` through ``torch.linalg.solve`` of those
    equations is therefore the implicit-function gradient the paper derives from
    the optimality conditions (``∂θ/∂z_c = −(∂²L/∂θ²)⁻¹ ∂²L/∂θ∂z_c``), computed by
    reverse-mode autodiff instead of by hand.

    Optimiser. The paper updates one poison point at a time, refitting after each,
    with a line search on the step. Here all points move together: one gradient
    of ``W`` with respect to every ``(x_c, y_c)`` per step, the direction scaled so
    its largest coordinate is 1, then a line search over the step sizes
    ``η_max·2^{-k}`` (k = 0..11, all evaluated in one batched solve), each candidate
    projected onto ``[0, 1]``, keeping the best. Both schemes are ascent methods
    on the same objective with the same projection; the joint step needs one solve
    per step instead of one per point, so it scales to hundreds of poison points,
    and the line search makes it monotone, like the paper's. ``η_max`` starts at
    0.5 and is set to twice the last accepted step. The loop stops when the best
    candidate raises ``W`` by less than ``eps`` (the paper's stopping rule) or after
    ``max_iter`` steps.

    Parameters
    ----------
    X_train, y_train : ndarray of shape (N, d) and (N,)
        Clean training data, scaled to ``[0, 1]`` (``y`` float).
    X_val, y_val : ndarray of shape (M, d) and (M,)
        The attacker's validation data, also scaled; used by ``objective="val"``.
    n_poison : int
        Number of poison points to add.
    alpha : float
        Ridge penalty of the victim in the ``(1/n)``-normalised form above
        (``sklearn.linear_model.Ridge(alpha=alpha * (N + n_poison))`` is the same
        model). ``0`` means ordinary least squares; a tiny jitter keeps it solvable.
    init : {"bflip", "invflip"}
        Starting points: copies of random training points whose response is flipped
        to the far boundary (BFlip: ``y' = 0 if y >= 0.5 else 1``) or inverted
        (InvFlip: ``y' = 1 − y``).
    objective : {"val", "train"}
        The error the attacker maximises: on the validation set or the training set.
    max_iter : int
        Most gradient steps.
    eps : float
        Stop when a step raises the objective by less than this.
    rng : numpy Generator, int seed or None
        Picks the starting points; the same seed gives the same poison.

    Returns
    -------
    Xp : ndarray of shape (n_poison, d), values in [0, 1]
    yp : ndarray of shape (n_poison,), values in [0, 1]

    Raises
    ------
    DataError
        On non-finite values, a response that is not a 1-D float array, data outside
        ``[0, 1]``, a negative budget or an unknown option.

    References
    ----------
    Jagielski et al., "Manipulating Machine Learning: Poisoning Attacks and
    Countermeasures for Regression Learning", IEEE S&P 2018 (the OptP attack and
    its initialisation strategies).
    """
    import torch

    X_train = _check_features(X_train, "X_train")
    y_train = _check_response(y_train, X_train.shape[0], "y_train")
    X_val = _check_features(X_val, "X_val")
    y_val = _check_response(y_val, X_val.shape[0], "y_val")
    if X_val.shape[1] != X_train.shape[1]:
        raise DataError(f"X_val has {X_val.shape[1]} features, X_train has {X_train.shape[1]}")
    n_poison = _check_budget(n_poison)
    alpha = _check_alpha(alpha)
    if init not in ("bflip", "invflip"):
        raise DataError(f"init must be 'bflip' or 'invflip', got {init!r}")
    if objective not in ("val", "train"):
        raise DataError(f"objective must be 'val' or 'train', got {objective!r}")
    if max_iter < 0:
        raise DataError(f"max_iter must be >= 0, got {max_iter}")
    if X_train.shape[0] == 0:
        raise DataError("OptP needs at least one training sample")
    if objective == "val" and X_val.shape[0] == 0:
        raise DataError("objective='val' needs at least one validation sample")

    d = X_train.shape[1]
    if n_poison == 0:
        return np.empty((0, d)), np.empty(0)
    gen = np.random.default_rng(rng)
    Xp0, yp0 = _init_points(X_train, y_train, n_poison, init, gen)
    X_eval, y_eval = (X_val, y_val) if objective == "val" else (X_train, y_train)
    W = _RidgeObjective(X_train, y_train, X_eval, y_eval, n_poison, alpha)

    # The poison set as one (p, d + 1) tensor: features then response.
    z = torch.from_numpy(np.hstack([Xp0, yp0[:, None]]))
    steps = 2.0 ** -torch.arange(12, dtype=torch.float64)
    eta_max = 0.5
    with torch.no_grad():
        current = float(W(z[:, :-1], z[:, -1]))
    for _ in range(max_iter):
        zg = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(W(zg[:, :-1], zg[:, -1]), zg)
        scale = float(grad.abs().max())
        if not np.isfinite(scale) or scale == 0.0:
            break
        direction = grad / scale
        with torch.no_grad():
            eta = eta_max * steps
            candidates = (z + eta[:, None, None] * direction).clamp_(0.0, 1.0)
            values = W(candidates[..., :-1], candidates[..., -1])
            best = int(torch.argmax(values))
            gain = float(values[best]) - current
        if not (gain > 0.0 and gain >= eps):  # also stops on NaN
            break
        z = candidates[best]
        current = float(values[best])
        eta_max = min(1.0, 2.0 * float(eta[best]))

    out = z.detach().numpy()
    return np.clip(out[:, :-1], 0.0, 1.0), np.clip(out[:, -1], 0.0, 1.0)
