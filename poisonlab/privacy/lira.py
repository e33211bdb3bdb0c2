"""LiRA, the likelihood-ratio membership-inference attack (Carlini et al., IEEE S&P 2022).

Carlini, Chien, Nasr, Song, Terzis & Tramèr, "Membership Inference Attacks From First
Principles", IEEE S&P 2022 (https://arxiv.org/abs/2112.03570). Membership of a target
``(x, y)`` in a model's training set is a hypothesis test. Shadow models, each trained
on a random half of a data pool, show how the model's output on ``x`` is distributed
when ``x`` was in training and when it was not. The output is the logit-scaled
confidence of the true label, ``φ = log(p_y / (1 − p_y))``, which is close to Gaussian;
one Gaussian is fitted to the "in" shadows' ``φ`` and one to the "out" shadows', per
target (per-example means), and a model's ``φ`` on ``x`` is scored by

- the *online* test: the log-likelihood ratio ``log N(φ; μ_in, σ²_in) − log N(φ; μ_out, σ²_out)``;
- the *offline* test, which needs no "in" shadows: ``log Pr[Z ≤ φ]`` for
  ``Z ~ N(μ_out, σ²_out)`` (a one-sided test: members have larger ``φ``).

Higher scores say "member". With few shadow models the per-example variances are noisy,
so, as the paper recommends below 64 shadows, ``variance="auto"`` fits one variance
per side pooled over all targets (``"global"``) and per-example ones from 64 shadows up.

:func:`lira` runs the paper's evaluation over a population of models trained on random
halves: each model in turn is the victim and all the others are its shadows (leave one
out), vectorised over models and targets. :func:`lira_scores` scores separate victim
models against separate shadows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poisonlab.errors import ConfigError

__all__ = ["LiRAResult", "lira", "lira_scores", "logit_confidence", "roc"]

#: Floor on probabilities before the logit, so a saturated output stays finite (|φ| ≤ 69).
PROBABILITY_FLOOR = 1e-30
#: Floor on fitted variances: identical shadow outputs must not divide by zero.
VARIANCE_FLOOR = 1e-8
#: From this many shadows on each side (64 in all) ``variance="auto"`` fits per-example variances.
PER_EXAMPLE_FROM = 32
VARIANCES = ("auto", "global", "per_example")


def logit_confidence(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``φ = log p_y − log Σ_{k≠y} p_k`` per row: the logit of the true label's probability.

    The other classes' probabilities are summed, not taken as ``1 − p_y``, so a confident
    model's ``φ`` keeps its precision. Probabilities are floored at 1e-30.
    """
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if proba.ndim != 2 or labels.shape != (proba.shape[0],):
        raise ConfigError(f"probabilities {proba.shape} do not match {labels.shape} labels")
    true = np.zeros(proba.shape, dtype=bool)
    true[np.arange(labels.shape[0]), labels] = True
    p_true = proba[true]
    p_rest = np.where(true, 0.0, proba).sum(axis=1)
    return np.log(np.maximum(p_true, PROBABILITY_FLOOR)) - np.log(np.maximum(p_rest, PROBABILITY_FLOOR))


@dataclass(frozen=True, eq=False)
class LiRAResult:
    """Membership scores of every (model, target) pair, the truth, and the attack's ROC.

    ``scores[m, t]`` is the test statistic for target ``t`` on model ``m`` (higher =
    member) and ``membership[m, t]`` whether ``t`` was in ``m``'s training set. ``fpr``
    and ``tpr`` trace the ROC over all pairs, from (0, 0) to (1, 1).
    """

    scores: np.ndarray
    membership: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    online: bool
    variance: str

    def tpr_at(self, max_fpr: float) -> float:
        """The largest true-positive rate at a threshold whose false-positive rate is ≤ ``max_fpr``."""
        return float(self.tpr[self.fpr <= max_fpr + 1e-12].max())

    @property
    def tpr_at_0_1pct_fpr(self) -> float:
        return self.tpr_at(0.001)

    @property
    def tpr_at_1pct_fpr(self) -> float:
        return self.tpr_at(0.01)


def roc(scores: np.ndarray, membership: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of membership scores: false- and true-positive rates (monotone) and the AUC."""
    from sklearn.metrics import auc, roc_curve

    truth = np.asarray(membership, dtype=bool).ravel()
    if truth.all() or not truth.any():
        raise ConfigError("membership must hold both members and non-members to draw a ROC")
    fpr, tpr, _ = roc_curve(truth, np.asarray(scores, dtype=np.float64).ravel(), drop_intermediate=False)
    return fpr, tpr, float(auc(fpr, tpr))


def _gaussians(
    total: np.ndarray, count: np.ndarray, squares: np.ndarray, variance: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-target means and variances (per-example or pooled over the last axis) from running sums."""
    mean = total / count
    spread = np.maximum(squares - total * mean, 0.0)  # Σ (φ − μ)², clipped against round-off
    if variance == "per_example":
        var = spread / (count - 1)
    else:
        var = spread.sum(axis=-1, keepdims=True) / (count - 1).sum(axis=-1, keepdims=True)
    return mean, np.maximum(var, VARIANCE_FLOOR)


def _test(
    phi: np.ndarray,
    sums: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray]],
    online: bool,
    variance: str,
) -> np.ndarray:
    from scipy.special import log_ndtr

    mu_out, var_out = _gaussians(*sums[False], variance)
    if not online:
        return np.asarray(log_ndtr((phi - mu_out) / np.sqrt(var_out)))
    mu_in, var_in = _gaussians(*sums[True], variance)
    return 0.5 * (
        (phi - mu_out) ** 2 / var_out - (phi - mu_in) ** 2 / var_in + np.log(var_out) - np.log(var_in)
    )


def _resolve_variance(variance: str, fewest: int) -> str:
    if variance not in VARIANCES:
        raise ConfigError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}")
    if variance == "auto":
        return "per_example" if fewest >= PER_EXAMPLE_FROM else "global"
    return variance


def _check_counts(count_in: np.ndarray, count_out: np.ndarray, online: bool) -> int:
    """The fewest shadows on a side a target has; refuse fewer than two."""
    fewest = int(min(count_in.min(), count_out.min()) if online else count_out.min())
    if fewest < 2:
        sides = "in and out of" if online else "out of"
        raise ConfigError(
            f"too few shadow models: LiRA needs each target {sides} at least 2 shadow models, "
            f"and one has {fewest}; train more shadow models"
        )
    return fewest


def _phi_and_membership(phi: np.ndarray, membership: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    phi = np.asarray(phi, dtype=np.float64)
    membership = np.asarray(membership)
    if phi.ndim != 2 or membership.shape != phi.shape:
        raise ConfigError(
            f"φ {phi.shape} and membership {membership.shape} must be the same models × targets"
        )
    if membership.dtype != bool:
        raise ConfigError(f"membership must be boolean, got {membership.dtype}")
    if not np.isfinite(phi).all():
        raise ConfigError("φ holds NaN or inf: compute it with logit_confidence")
    return phi, membership


def lira(
    phi: np.ndarray, membership: np.ndarray, *, online: bool = True, variance: str = "auto"
) -> LiRAResult:
    """LiRA over a population of models, each in turn the victim of all the others (leave one out).

    ``phi[m, t]`` is model ``m``'s logit-scaled confidence on target ``t``
    (:func:`logit_confidence`) and ``membership[m, t]`` whether ``t`` was in ``m``'s
    training set. Every target must be in (online) and out of at least 2 of the other
    models.

    References
    ----------
    Carlini, N., Chien, S., Nasr, M., Song, S., Terzis, A., & Tramèr, F. (2022).
    Membership Inference Attacks From First Principles. IEEE S&P 2022. arXiv:2112.03570.
    """
    phi, membership = _phi_and_membership(phi, membership)
    sums = {}
    for side in (True, False):
        own = membership == side  # the victim's own output leaves the sums of its side
        w = own.astype(np.float64)
        sums[side] = (
            (w * phi).sum(axis=0) - w * phi,
            own.sum(axis=0) - w,
            (w * phi**2).sum(axis=0) - w * phi**2,
        )
    fewest = _check_counts(sums[True][1], sums[False][1], online)
    variance = _resolve_variance(variance, fewest)
    scores = _test(phi, sums, online, variance)
    return _result(scores, membership, online, variance)


def lira_scores(
    target_phi: np.ndarray,
    shadow_phi: np.ndarray,
    shadow_membership: np.ndarray,
    *,
    online: bool = True,
    variance: str = "auto",
) -> np.ndarray:
    """LiRA scores of victim models (``target_phi``, models × targets) against separate shadows.

    ``shadow_phi`` and ``shadow_membership`` (shadows × targets) are the shadows' outputs
    and which targets each trained on. Returns scores shaped like ``target_phi``; pass
    them with the victims' membership to :func:`roc` when it is known.

    References
    ----------
    Carlini, N., Chien, S., Nasr, M., Song, S., Terzis, A., & Tramèr, F. (2022).
    Membership Inference Attacks From First Principles. IEEE S&P 2022. arXiv:2112.03570.
    """
    shadow_phi, shadow_membership = _phi_and_membership(shadow_phi, shadow_membership)
    target_phi = np.asarray(target_phi, dtype=np.float64)
    if target_phi.ndim != 2 or target_phi.shape[1] != shadow_phi.shape[1]:
        raise ConfigError(
            f"victims' φ {target_phi.shape} must cover the shadows' {shadow_phi.shape[1]} targets"
        )
    sums = {}
    for side in (True, False):
        w = (shadow_membership == side).astype(np.float64)
        sums[side] = ((w * shadow_phi).sum(axis=0), w.sum(axis=0), (w * shadow_phi**2).sum(axis=0))
    fewest = _check_counts(sums[True][1], sums[False][1], online)
    return _test(target_phi, sums, online, _resolve_variance(variance, fewest))


def _result(scores: np.ndarray, membership: np.ndarray, online: bool, variance: str) -> LiRAResult:
    scores, membership = np.array(scores, dtype=np.float64), membership.copy()
    fpr, tpr, area = roc(scores, membership)
    for array in (scores, membership, fpr, tpr):
        array.setflags(write=False)
    return LiRAResult(scores, membership, fpr, tpr, area, online, variance)
