"""The Truth Serum experiment end to end: LiRA's success on chosen targets, with and without poisons.

Tramèr et al., "Truth Serum: Poisoning Machine Learning Models to Reveal Their Secrets",
ACM CCS 2022, measured membership poisoning with LiRA (Carlini et al., IEEE S&P 2022)
this way: a population of models is trained, each on a random half of a data pool, so
each target is in about half of them; each model in turn is the victim and the others
are the attacker's shadows. In the poisoned run the attacker's wrong-label copies of
every target are *added* to every model's training set, the shadows' included (the
attacker knows its own poisons). Both runs use the same halves and model seeds, so
the difference is the poisons'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.attacks.privacy import Targets, TruthSerum, mislabelled_copies, resolve_targets
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.privacy.lira import LiRAResult, lira, logit_confidence

__all__ = ["MIN_MODELS", "MembershipAudit", "membership_audit"]

#: Fewest models: with each sample in half of them, each target is then in and out of at
#: least 2 of the shadows left when one model is the victim.
MIN_MODELS = 6


@dataclass(frozen=True, eq=False)
class MembershipAudit:
    """LiRA on the targets without (``clean``) and with (``poisoned``) Truth Serum's copies.

    ``targets`` are the pool rows attacked, ``poison_labels`` the wrong class given to
    each target's copies, ``membership[m, t]`` whether target ``t`` was in model ``m``'s
    half. ``clean_phi`` and ``poisoned_phi`` are the models' logit-scaled confidences on
    the targets, from which :meth:`rescore` runs other LiRA variants.
    ``*_accuracy`` is the models' mean accuracy on the pool rows outside their half
    (targets aside): what the poisons cost the victim. ``epsilon`` is the mean ε a
    DP-SGD defense spent, ``None`` without one.
    """

    clean: LiRAResult
    poisoned: LiRAResult
    targets: np.ndarray
    poison_labels: np.ndarray
    copies: int
    membership: np.ndarray
    clean_phi: np.ndarray
    poisoned_phi: np.ndarray
    clean_accuracy: float
    poisoned_accuracy: float
    epsilon: float | None = None

    def rescore(self, *, online: bool = True, variance: str = "auto") -> tuple[LiRAResult, LiRAResult]:
        """LiRA's clean and poisoned results for another variant (``online=False``: offline)."""
        return (
            lira(self.clean_phi, self.membership, online=online, variance=variance),
            lira(self.poisoned_phi, self.membership, online=online, variance=variance),
        )


def membership_audit(
    dataset: Dataset,
    *,
    model: str | Callable[[int], Any] = "logreg",
    model_params: Mapping[str, Any] | None = None,
    n_models: int = 16,
    targets: Targets = 50,
    copies: int = 4,
    defense: Any = None,
    online: bool = True,
    variance: str = "auto",
    random_state: int = 0,
) -> MembershipAudit:
    """Train ``n_models`` models on random halves of ``dataset``, twice: clean, and with Truth Serum.

    Parameters
    ----------
    dataset : Dataset
        The pool; each sample is in exactly ``n_models // 2`` of the models.
    model : str or callable
        A ``MODELS`` name (built with ``model_params`` and a seed per model) or a
        ``seed -> model`` factory; the model needs ``fit`` and ``predict_proba``.
    n_models : int
        Models in the population (at least :data:`MIN_MODELS`); each is the victim once.
    targets : int or sequence of int
        Pool rows to attack: indices, or how many to draw with ``random_state``.
    copies : int
        Wrong-label copies of each target added to every model's training set.
    defense : optional
        A training defense (``train(dataset, make_model, rng) -> TrainedModel``), e.g.
        ``DEFENSES.create("dp_sgd")`` with a torch model: every model is trained through it.
    online, variance
        LiRA's variant (see :func:`~poisonlab.privacy.lira.lira`).

    References
    ----------
    Tramèr, F., Shokri, R., San Joaquin, A., Le, H., Jagielski, M., Hong, S., & Carlini,
    N. (2022). Truth Serum: Poisoning Machine Learning Models to Reveal Their Secrets.
    ACM CCS 2022. arXiv:2204.00032.
    Carlini, N., Chien, S., Nasr, M., Song, S., Terzis, A., & Tramèr, F. (2022).
    Membership Inference Attacks From First Principles. IEEE S&P 2022. arXiv:2112.03570.
    """
    if dataset.is_regression:
        raise IncompatibleError(
            f"membership poisoning needs classification data; {dataset.name} is regression"
        )
    if isinstance(n_models, bool) or not isinstance(n_models, int | np.integer) or n_models < MIN_MODELS:
        raise ConfigError(
            f"too few shadow models: n_models must be an integer ≥ {MIN_MODELS}, got {n_models!r}"
        )
    copies = TruthSerum(targets=targets, copies=copies).copies  # the attack's own checks
    make_model = _model_factory(model, model_params)
    rng = np.random.default_rng(random_state)
    target_index = resolve_targets(targets, len(dataset), rng)
    X_poison, y_poison, wrong = mislabelled_copies(
        dataset.X[target_index], dataset.y[target_index], dataset.n_classes, copies, rng
    )
    # each sample in exactly half the models: every target has as many "in" as "out" shadows
    keep = np.argsort(rng.random((n_models, len(dataset))), axis=0) < n_models // 2
    seeds = rng.integers(2**31 - 1, size=n_models)
    unseen = ~keep
    unseen[:, target_index] = False
    phi = {False: np.empty((n_models, target_index.size)), True: np.empty((n_models, target_index.size))}
    accuracy: dict[bool, list[float]] = {False: [], True: []}
    epsilons: list[float] = []
    for m in range(n_models):
        half = dataset.subset(np.flatnonzero(keep[m]))
        for poisoned in (False, True):
            train = _with_rows(half, X_poison, y_poison) if poisoned else half
            proba, extras = _fit_predict(train, make_model, defense, int(seeds[m]), dataset)
            phi[poisoned][m] = logit_confidence(proba[target_index], dataset.y[target_index])
            accuracy[poisoned].append(float(np.mean(proba[unseen[m]].argmax(axis=1) == dataset.y[unseen[m]])))
            if "dp_epsilon" in extras:
                epsilons.append(float(extras["dp_epsilon"]))
    membership = keep[:, target_index]
    return MembershipAudit(
        clean=lira(phi[False], membership, online=online, variance=variance),
        poisoned=lira(phi[True], membership, online=online, variance=variance),
        targets=target_index,
        poison_labels=wrong,
        copies=copies,
        membership=membership,
        clean_phi=phi[False],
        poisoned_phi=phi[True],
        clean_accuracy=float(np.mean(accuracy[False])),
        poisoned_accuracy=float(np.mean(accuracy[True])),
        epsilon=float(np.mean(epsilons)) if epsilons else None,
    )


def _model_factory(
    model: str | Callable[[int], Any], params: Mapping[str, Any] | None
) -> Callable[[int], Any]:
    if callable(model):
        if params:
            raise ConfigError("model_params go with a model name; a factory takes its own parameters")
        return model
    from poisonlab.models import MODELS

    entry = MODELS.get(model)
    if entry.tag("task") != "classification":
        raise IncompatibleError(
            f"model {model!r} is a regressor; membership inference needs class probabilities"
        )
    params = dict(params or {})
    if "random_state" in params:
        raise ConfigError("the audit seeds each model itself: leave random_state out of model_params")
    entry.check_params(params)
    return lambda seed: MODELS.create(model, random_state=seed, **params)


def _with_rows(half: Dataset, X: np.ndarray, y: np.ndarray) -> Dataset:
    """``half`` with rows appended (fresh ids: the copies are new samples)."""
    n = len(half) + y.shape[0]
    return Dataset(
        X=np.concatenate([half.X, X]),
        y=np.concatenate([half.y, y]),
        ids=np.arange(n),
        name=f"{half.name} + Truth Serum",
        classes=half.classes,
    )


def _fit_predict(
    train: Dataset, make_model: Callable[[int], Any], defense: Any, seed: int, pool: Dataset
) -> tuple[np.ndarray, Mapping[str, Any]]:
    """Class probabilities on the whole pool of a model trained on ``train`` (through ``defense``)."""
    extras: Mapping[str, Any] = {}
    if defense is None:
        fitted = make_model(seed).fit(train.X, train.y)
    else:
        trained = defense.train(train, make_model, np.random.default_rng(seed))
        fitted, extras = trained.model, trained.extras
    if not hasattr(fitted, "predict_proba"):
        raise IncompatibleError(
            f"{type(fitted).__name__} has no predict_proba: LiRA reads class probabilities"
        )
    proba = np.asarray(fitted.predict_proba(pool.X), dtype=np.float64)
    if proba.shape != (len(pool), pool.n_classes):
        raise ConfigError(
            f"the model gave {proba.shape[1]} class probabilities for {pool.n_classes} classes: "
            "a half of the pool lacks a class; use a larger pool"
        )
    return proba, extras
