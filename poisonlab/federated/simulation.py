"""An in-process, seeded federated-learning simulation with malicious clients.

:func:`simulate` runs FedAvg-style training (McMahan et al. 2017) on one machine:
each round the server samples clients, each sampled client trains the global model
locally with SGD and sends its update ``local − global``, the malicious clients
(:mod:`poisonlab.federated.clients`) poison their data or their update, and a rule
from :data:`~poisonlab.federated.aggregators.AGGREGATORS` turns the ``(k, d)`` update
matrix into one update that is added to the global parameter vector.

Everything random (initial model, client split, client sampling, local shuffling,
attacks) derives from ``seed``: the same arguments give identical records. The rule does
not change that stream: for one seed, every rule sees the same client split, the same
malicious data, the same sampled clients and the same local-training seeds (FLTrust's
root set is drawn by a generator of its own, see :func:`simulate`).

Models, rules and attacks are resolved through their registries
(:data:`poisonlab.models.MODELS`, :data:`AGGREGATORS`, :data:`CLIENT_ATTACKS`) and read
through their tags; a component whose tags contradict the data or the other components
is refused before training, in one line.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.federated.aggregators import AGGREGATORS, check_preconditions
from poisonlab.federated.clients import CLIENT_ATTACKS, ClientAttack, RoundContext
from poisonlab.models import MODELS
from poisonlab.models.torch_models import TorchClassifier, build_network
from poisonlab.validation import positive_int

__all__ = [
    "MODEL_PARAMS",
    "ROOT_SIZE",
    "SimulationPlan",
    "malicious_count",
    "plan_simulation",
    "simulate",
    "split_clients",
]

#: Size of the server's clean root set (rules tagged ``needs_server_update``, i.e. FLTrust):
#: a seeded sample of the training data, drawn independently of the client split.
ROOT_SIZE = 100
#: Appended to ``seed`` to seed the root set's own generator, ``default_rng([seed, _ROOT_STREAM])``.
_ROOT_STREAM = 0x7007
#: The federated default of the model parameters: width 16, i.e. 64 hidden units for the MLP
#: (the figures of the README were measured so); ``poisonlab run`` defaults the MLP to 32.
MODEL_PARAMS: Mapping[str, Any] = MappingProxyType({"width": 16})
# attack_params keys the simulation itself consumes (the rest go to the attack functions).
_SIM_KEYS = frozenset({"start_round", "local_epochs"})


# --------------------------------------------------------------------------- client split


def split_clients(
    y: np.ndarray, n_clients: int, *, alpha: float | None = None, rng: np.random.Generator
) -> list[np.ndarray]:
    """Split sample indices among clients, IID or with Dirichlet label skew.

    Parameters
    ----------
    y : np.ndarray
        Integer class labels of the samples to split.
    n_clients : int
        Number of clients, ``>= 1`` and at most ``len(y)``.
    alpha : float, optional
        ``None``: shuffle and cut into ``n_clients`` near-equal parts (IID). Otherwise
        the concentration of the per-class Dirichlet (Hsu et al. 2019): for each class
        the proportions going to the clients are drawn from ``Dir(alpha·1)``. A small
        ``alpha`` (e.g. 0.1) gives each client few classes; a large one is near IID.
    rng : np.random.Generator
        Source of randomness.

    Returns
    -------
    list of np.ndarray
        ``n_clients`` sorted int64 index arrays that partition ``range(len(y))``; every
        client gets at least one sample (an empty client after the Dirichlet draw takes
        one sample from the currently largest client).

    References
    ----------
    Hsu, Qi, Brown. "Measuring the Effects of Non-Identical Data Distribution for
    Federated Visual Classification." arXiv:1909.06335, 2019.
    """
    y = np.asarray(y)
    if isinstance(n_clients, bool) or not isinstance(n_clients, numbers.Integral) or n_clients < 1:
        raise ConfigError(f"n_clients must be an integer >= 1, got {n_clients!r}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"alpha must be a finite number > 0 (or None for IID), got {alpha!r}")
    n = len(y)
    if n < n_clients:
        raise ConfigError(f"cannot split {n} samples among {n_clients} clients (fewer samples than clients)")
    if alpha is None:
        return [np.sort(part).astype(np.int64) for part in np.array_split(rng.permutation(n), n_clients)]
    parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        shares = rng.dirichlet(np.full(n_clients, float(alpha)))
        cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].append(chunk)
    clients = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
    # Repair empty clients deterministically, so a tiny alpha cannot make the loop spin.
    for i in range(n_clients):
        if len(clients[i]) == 0:
            donor = int(np.argmax([len(c) for c in clients]))
            take = rng.integers(len(clients[donor]))
            clients[i] = clients[donor][take : take + 1].copy()
            clients[donor] = np.delete(clients[donor], take)
    return clients


# --------------------------------------------------------------------------- training helpers


def _root_indices(n_train: int, seed: int) -> np.ndarray:
    """The sorted indices of FLTrust's root set: :data:`ROOT_SIZE` of ``range(n_train)``.

    Drawn by a generator of its own, seeded by ``[seed, _ROOT_STREAM]``, so the main
    generator (client split, sampling, local seeds, attacks) is the same for every rule.
    """
    root_rng = np.random.default_rng([seed, _ROOT_STREAM])
    return np.sort(root_rng.choice(n_train, size=ROOT_SIZE, replace=False)).astype(np.int64)


def _modality(sample_shape: tuple[int, ...]) -> str:
    """The modality of samples of this shape, as :attr:`Dataset.modality` names it."""
    return "image" if len(sample_shape) == 3 else "tabular"


def _resolve_model(model: str, model_params: Mapping[str, Any] | None, sample_shape: Any) -> tuple[str, int]:
    """The torch architecture and width of ``model``, a federated model fit for the data."""
    wanted: dict[str, Any] = {"federated": True}
    what = "the federated simulation, which trains a torch network"
    if sample_shape is not None:
        wanted["modalities"] = _modality(tuple(sample_shape))
        what += f" on {wanted['modalities']} data"
    entry = MODELS.require(model, what, **wanted)
    params = {**MODEL_PARAMS, **(model_params or {})}
    # Local training is the simulation's own (lr, local_epochs, batch_size); only the
    # architecture's size is the model's to set.
    unknown = sorted(set(params) - set(MODEL_PARAMS))
    if unknown:
        raise ConfigError(
            f"federated models take only {', '.join(MODEL_PARAMS)} as a parameter, got {unknown[0]!r}"
        )
    width = positive_int(params["width"], "model width")
    net = entry.create(width=width)
    if not isinstance(net, TorchClassifier):
        raise IncompatibleError(f"model {model!r} is tagged federated but is not a torch network")
    return net.arch, net.width


def _local_update(
    net: nn.Module,
    global_vec: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> torch.Tensor:
    """Plain SGD from the global parameters; returns ``local − global`` (flat float32)."""
    # vector_to_parameters makes the parameters views of the vector; a copy keeps the
    # in-place SGD steps from writing into the global model.
    vector_to_parameters(global_vec.clone(), net.parameters())
    params = list(net.parameters())
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    n = X.shape[0]
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            loss = loss_fn(net(X[batch]), y[batch])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(lr * g)
    return parameters_to_vector(net.parameters()).detach() - global_vec


def _round_record(
    rnd: int,
    net: nn.Module,
    global_vec: torch.Tensor,
    X_test: torch.Tensor,
    y_test: np.ndarray,
    asr_X: torch.Tensor | None,
    target: int,
    k: int,
    mal_rows: np.ndarray,
) -> dict[str, Any]:
    """The global model's figures after round ``rnd`` (``malicious_selected`` filled by the caller)."""
    asr = None
    if asr_X is not None:
        asr = float((_predict(net, global_vec, asr_X) == target).mean()) if len(asr_X) else 0.0
    return {
        "round": rnd,
        "accuracy": float((_predict(net, global_vec, X_test) == y_test).mean()),
        "asr": asr,
        "malicious_selected": None,
        "n_sampled": int(k),
        "n_malicious": len(mal_rows),
        "diverged": False,
    }


@torch.no_grad()
def _predict(net: nn.Module, vec: torch.Tensor, X: torch.Tensor) -> np.ndarray:
    vector_to_parameters(vec, net.parameters())
    net.eval()
    return net(X).argmax(dim=1).numpy()


def _int_param(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _rehearse_round(
    spec: ClientAttack,
    aggregator: str,
    agg_kwargs: Mapping[str, Any],
    *,
    n_clients: int,
    n_sampled: int,
    n_malicious: int,
) -> None:
    """Craft and aggregate one made-up round of ``n_sampled`` 4-d updates.

    The attack functions and rules check their parameters' values only when called;
    calling them here makes a bad value (``scale=-1``, ``m`` above ``n``, a string
    where a number belongs) fail before the first round, not after it. The made-up
    round holds an honest client unless every client is malicious, and the rule sees
    the honest made-up updates: what a crafted update does to the rule is the
    experiment's to measure.
    """
    rng = np.random.default_rng(0)
    updates = rng.standard_normal((n_sampled, 4)).astype(np.float32)
    malicious = np.arange(min(n_malicious, n_sampled if n_malicious >= n_clients else n_sampled - 1))
    if len(malicious):
        ctx = RoundContext(malicious=malicious, benign=np.arange(len(malicious), n_sampled))
        try:
            spec.craft_rows(updates, ctx, rng)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"attack_params for {spec.name!r}: {exc}") from None
    entry = AGGREGATORS.get(aggregator)
    kwargs = dict(agg_kwargs)
    if entry.tag("needs_server_update"):
        kwargs["server_update"] = np.ones(updates.shape[1], dtype=np.float32)
    try:
        entry.factory(updates, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"aggregator_params for {aggregator!r}: {exc}") from None


def malicious_count(malicious: Any, n_clients: int) -> int:
    """An int is a count of clients; a float is a share of ``n_clients``."""
    if isinstance(malicious, bool) or not isinstance(malicious, numbers.Real):
        raise ConfigError(f"malicious must be a share in [0, 1] or a count of clients, got {malicious!r}")
    if isinstance(malicious, numbers.Integral):
        m = int(malicious)
        if not 0 <= m <= n_clients:
            raise ConfigError(f"malicious count must lie in 0..{n_clients} (n_clients), got {m}")
        return m
    if not 0.0 <= float(malicious) <= 1.0:
        raise ConfigError(f"malicious share must lie in [0, 1], got {malicious}")
    return round(float(malicious) * n_clients)


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class SimulationPlan:
    """A federated run's settings after validation: what :func:`simulate` will do."""

    n_malicious: int
    n_sampled: int
    spec: ClientAttack
    start_round: int
    attacker_epochs: int
    target: int
    patch_size: int
    data_kwargs: dict[str, Any]
    craft_kwargs: dict[str, Any]
    agg_kwargs: dict[str, Any]
    arch: str = "mlp"
    width: int = 16


def plan_simulation(
    *,
    n_train: int,
    n_classes: int,
    model: str = "mlp",
    n_clients: int = 20,
    malicious: float | int = 0.2,
    attack: str = "none",
    aggregator: str = "fedavg",
    rounds: int = 20,
    fraction: float = 1.0,
    local_epochs: int = 2,
    lr: float = 0.2,
    batch_size: int = 16,
    alpha: float | None = None,
    attack_params: Mapping[str, Any] | None = None,
    aggregator_params: Mapping[str, Any] | None = None,
    sample_shape: tuple[int, ...] | None = None,
    model_params: Mapping[str, Any] | None = None,
) -> SimulationPlan:
    """Validate a federated run's settings without training (see :func:`simulate`).

    Raises the same one-line errors :func:`simulate` would, so a config can be
    checked before any run starts: unknown names, out-of-range values, more
    malicious clients than clients, an ``f`` the rule cannot tolerate, a Dirichlet
    ``alpha <= 0``, fewer samples than clients. The attack's crafting and the rule
    are run once on a small made-up round, so that a bad value of one of their
    parameters fails here too. Given ``sample_shape`` (one sample's shape), a model or
    an attack whose ``modalities`` tag excludes the data (a CNN or a BadNets patch on
    data that are not images), or a patch larger than the images, fails as well.
    """
    arch, width = _resolve_model(model, model_params, sample_shape)
    attack_entry = CLIENT_ATTACKS.get(attack)
    rule_entry = AGGREGATORS.get(aggregator)
    if sample_shape is not None:
        modality = _modality(tuple(sample_shape))
        CLIENT_ATTACKS.require(
            attack, f"{modality} data (samples of shape {tuple(sample_shape)})", modalities=modality
        )
    n_clients = positive_int(n_clients, "n_clients")
    rounds = positive_int(rounds, "rounds")
    local_epochs = positive_int(local_epochs, "local_epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(fraction, numbers.Real) and 0 < fraction <= 1):
        raise ConfigError(f"fraction must lie in (0, 1], got {fraction!r}")
    m = malicious_count(malicious, n_clients)
    k = max(1, round(fraction * n_clients))

    params = dict(attack_params or {})
    start_round = positive_int(params.pop("start_round", 1), "attack_params start_round")
    attacker_epochs = positive_int(params.pop("local_epochs", local_epochs), "attack_params local_epochs")
    allowed = set(attack_entry.parameters())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown attack_params for {attack!r}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(allowed | _SIM_KEYS)) or 'none'}"
        )
    spec = attack_entry.create(**params)
    data_kwargs = spec.data_kwargs
    target = 0
    patch_size = 3
    if attack_entry.tag("backdoor"):
        target = _int_param(spec.params["target"], "attack_params target")
        patch_size = positive_int(spec.params["patch_size"], "attack_params patch_size")
        if not 0 <= target < n_classes:
            raise ConfigError(f"backdoor target must lie in 0..{n_classes - 1}, got {target}")
        if sample_shape is not None and patch_size > min(sample_shape[1:]):
            raise ConfigError(
                f"{attack} stamps a {patch_size}×{patch_size} BadNets patch: it needs images "
                f"(N×C×H×W) at least that large, got samples of shape {tuple(sample_shape)}"
            )
        data_kwargs["target"] = target
    craft_kwargs = spec.craft_kwargs

    agg_kwargs = dict(aggregator_params or {})
    if "server_update" in agg_kwargs:
        raise ConfigError(f"{aggregator}'s server_update is computed by the simulation; do not pass it")
    accepted = set(inspect.signature(rule_entry.factory).parameters) - {"updates", "server_update"}
    unknown = sorted(set(agg_kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown aggregator_params for {aggregator!r}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(accepted)) or 'none'}"
        )
    if rule_entry.tag("needs_f"):
        agg_kwargs.setdefault("f", m)
    if rule_entry.tag("trims"):
        agg_kwargs.setdefault("beta", min(m / k, 0.49))
    if rule_entry.tag("min_clients") is not None:
        # check_preconditions checks f's type too: f="x" is one line, not int()'s ValueError
        check_preconditions(rule_entry, k, agg_kwargs.get("f", m), beta=agg_kwargs.get("beta"))
    _rehearse_round(spec, aggregator, agg_kwargs, n_clients=n_clients, n_sampled=k, n_malicious=m)

    if alpha is not None and not (isinstance(alpha, numbers.Real) and math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"alpha must be a finite number > 0 (or None for IID), got {alpha!r}")
    # The root set is drawn from the whole training data on its own (see simulate), so
    # the split needs n_clients samples and the root set ROOT_SIZE, not their sum.
    if rule_entry.tag("needs_server_update") and n_train < ROOT_SIZE:
        raise ConfigError(
            f"{aggregator} needs at least {ROOT_SIZE} training samples for the server's clean "
            f"root set, got {n_train}"
        )
    if n_train < n_clients:
        raise ConfigError(
            f"cannot split {n_train} samples among {n_clients} clients (fewer samples than clients)"
        )
    return SimulationPlan(
        n_malicious=m,
        n_sampled=k,
        spec=spec,
        start_round=start_round,
        attacker_epochs=attacker_epochs,
        target=target,
        patch_size=patch_size,
        data_kwargs=data_kwargs,
        craft_kwargs=craft_kwargs,
        agg_kwargs=agg_kwargs,
        arch=arch,
        width=width,
    )


def simulate(
    train: Dataset,
    test: Dataset,
    *,
    model: str = "mlp",
    n_clients: int = 20,
    malicious: float | int = 0.2,
    attack: str = "none",
    aggregator: str = "fedavg",
    rounds: int = 20,
    fraction: float = 1.0,
    local_epochs: int = 2,
    lr: float = 0.2,
    batch_size: int = 16,
    alpha: float | None = None,
    seed: int = 0,
    attack_params: Mapping[str, Any] | None = None,
    aggregator_params: Mapping[str, Any] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    model_params: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train a global model with federated averaging-style rounds, some clients malicious.

    Parameters
    ----------
    train, test : Dataset
        Classification data; ``train`` is split among the clients (FLTrust's root set
        is a separate sample of it), ``test`` measures the global model.
    model : str
        A model of :data:`poisonlab.models.MODELS` tagged ``federated`` (``"mlp"``,
        ``"cnn"``, ``"linear"``: multinomial logistic regression, one linear layer on the
        flattened input under softmax cross-entropy), built by
        :func:`~poisonlab.models.torch_models.build_network` as ``poisonlab run`` builds
        it and initialised from ``seed``. scikit-learn's ``"logreg"`` is refused.
    n_clients : int
        Number of clients.
    malicious : float or int
        A float is the share of malicious clients, ``m = round(malicious·n_clients)``;
        an int is the count ``m``. Clients ``0 .. m−1`` are the malicious ones.
    attack : str
        A name in :data:`~poisonlab.federated.clients.CLIENT_ATTACKS` (``"none"``: honest).
    aggregator : str
        A key of :data:`~poisonlab.federated.aggregators.AGGREGATORS`.
    rounds : int
        Communication rounds.
    fraction : float
        Share of clients sampled per round, ``k = max(1, round(fraction·n_clients))``,
        drawn without replacement by the seeded generator.
    local_epochs, lr, batch_size : int, float, int
        Local training: plain SGD (no momentum) for ``local_epochs`` passes over the
        client's data.
    alpha : float, optional
        Dirichlet label skew of the client split (see :func:`split_clients`); ``None``
        is IID.
    seed : int
        Seeds everything.
    attack_params : mapping, optional
        Parameters of the attack functions (e.g. ``scale`` for ``sign_flip``, ``sigma``,
        ``gamma``, ``z``, ``epsilon``, ``knowledge``, ``rate``, ``source``/``target`` for
        ``label_flip``) plus keys the simulation uses itself: ``start_round`` (first
        round, 1-based, in which the malicious clients misbehave; honest before it,
        default 1), ``local_epochs`` (the malicious clients' own local epochs, default
        ``local_epochs``) and, for attacks tagged ``backdoor``, ``target`` (a class index
        ``0 .. K−1`` into ``train.classes``, default 0) and
        ``patch_size`` (BadNets patch side, default 3).
    aggregator_params : mapping, optional
        Keyword arguments of the rule. For rules tagged ``needs_f`` (Krum, Multi-Krum,
        Bulyan) ``f`` defaults to ``m``, the number of malicious clients the server is
        told to tolerate (not the number sampled in a round, which the server does not
        know). For rules tagged ``trims`` (the trimmed mean) ``beta`` defaults to
        ``m/k`` (trim as many per side as there could be attackers). The preconditions
        (:func:`check_preconditions` with ``n = k``, for rules with a ``min_clients``
        tag) are checked once before training, so an impossible ``f`` fails at once.
        For rules tagged ``needs_server_update`` (FLTrust) the server computes
        ``server_update`` each round by local training on its root set: a clean
        sample of the same population the clients hold, as in FLTrust, where the
        server collects a small clean root dataset (Cao et al. 2021). It is
        :data:`ROOT_SIZE` training samples with their clean labels, drawn without
        replacement from the whole training set by a generator of its own,
        ``np.random.default_rng([seed, 0x7007])``, independently of the client
        split, so some of its rows may also sit in clients' data. The main
        generator is not touched by it: the client split, the malicious clients'
        data, the client sampling and the local-training seeds are those of every
        other rule with the same seed (the server's own training takes the seed
        drawn for it each round by every rule).
    on_round : callable, optional
        Called with each round's record as soon as it is complete.
    model_params : mapping, optional
        The model's size: ``{"width": w}`` (see :func:`build_network`); default
        :data:`MODEL_PARAMS`, width 16 (64 hidden units for the MLP).

    Returns
    -------
    list of dict
        One record per round with ``round`` (1-based), ``accuracy`` (global model on
        ``test``), ``asr`` (for attacks tagged ``backdoor``: share of non-target test
        inputs that, with the trigger, are predicted as the target; else ``None``),
        ``malicious_selected`` (for selection rules: the share of the round's sampled
        malicious updates that the rule kept in ``selected``; ``None`` for other rules
        or when no malicious client was sampled), ``n_sampled``, ``n_malicious``
        (malicious clients among the sampled) and ``diverged``. When a round's
        updates are no longer finite (the global model has blown up, e.g. FedAvg
        under a strong sign flip) that round is recorded with ``diverged=True``, the
        global model's figures as they stand, and the run ends early.

    Raises
    ------
    ConfigError
        A parameter is out of range or the rule cannot tolerate ``f`` of ``k``.
    IncompatibleError
        A model or attack that does not fit the data (a CNN on tabular data), a model
        the simulation cannot train (scikit-learn's ``logreg``), a rule whose ``f`` is
        too large for ``k`` clients.
    UnknownNameError
        Unknown model, attack or aggregator name.

    References
    ----------
    Cao, Fang, Liu, Gong. "FLTrust: Byzantine-robust Federated Learning via Trust
    Bootstrapping." NDSS 2021.
    """
    if train.is_regression or test.is_regression:
        raise ConfigError("federated simulation needs classification data")
    plan = plan_simulation(
        n_train=len(train),
        n_classes=train.n_classes,
        model=model,
        n_clients=n_clients,
        malicious=malicious,
        attack=attack,
        aggregator=aggregator,
        rounds=rounds,
        fraction=fraction,
        local_epochs=local_epochs,
        lr=lr,
        batch_size=batch_size,
        alpha=alpha,
        attack_params=attack_params,
        aggregator_params=aggregator_params,
        sample_shape=tuple(train.X.shape[1:]),
        model_params=model_params,
    )
    rule_entry = AGGREGATORS.get(aggregator)
    needs_server_update = bool(rule_entry.tag("needs_server_update"))
    m, k, spec, target = plan.n_malicious, plan.n_sampled, plan.spec, plan.target
    start_round, attacker_epochs = plan.start_round, plan.attacker_epochs
    data_kwargs, craft_kwargs, agg_kwargs = dict(plan.data_kwargs), plan.craft_kwargs, plan.agg_kwargs

    # ---- data: client split, root set (FLTrust only), malicious local data
    if train.modality == "tabular":
        # Features on wildly different scales (breast_cancer spans 0..4254) make local SGD
        # diverge. Clients standardise with the mean and spread of the whole training data,
        # the two aggregate statistics a deployment agrees on before training (e.g. by one
        # secure-aggregation round); images are already in [0, 1].
        mean = train.X.mean(axis=0)
        scale = np.where(train.X.std(axis=0) > 0, train.X.std(axis=0), 1.0)
        train = train.with_arrays(X=((train.X - mean) / scale).astype(np.float32))
        test = test.with_arrays(X=((test.X - mean) / scale).astype(np.float32))
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    # Nothing rule-dependent draws from rng before the split: every rule gets this one.
    parts = split_clients(train.y, n_clients, alpha=alpha, rng=rng)
    root_idx = _root_indices(len(train), seed) if needs_server_update else None

    trigger = None
    if CLIENT_ATTACKS.get(attack).tag("backdoor"):
        from poisonlab.attacks.backdoor import BadNets

        # Only the trigger is wanted: poison one sample of the training set to obtain it.
        # ``target`` is a class index; BadNets reads its target in the data's label space.
        badnets = BadNets(target=train.classes[target], patch_size=plan.patch_size)
        trigger = badnets.poison(train, 1, seed).trigger

    clean_data = [
        (torch.from_numpy(np.ascontiguousarray(train.X[p], dtype=np.float32)), torch.from_numpy(train.y[p]))
        for p in parts
    ]
    poisoned_data = list(clean_data)
    if spec.poison_data is not None:
        poisoner = ClientAttack(spec.name, poison_data=spec.poison_data, params=data_kwargs)
        for i in range(m):
            Xp, yp = poisoner.poison(
                train.X[parts[i]], train.y[parts[i]], rng, n_classes=train.n_classes, trigger=trigger
            )
            poisoned_data[i] = (
                torch.from_numpy(np.ascontiguousarray(Xp, dtype=np.float32)),
                torch.from_numpy(np.asarray(yp, dtype=np.int64)),
            )
    root = None
    if root_idx is not None:
        root = (torch.from_numpy(train.X[root_idx].astype(np.float32)), torch.from_numpy(train.y[root_idx]))

    X_test = torch.from_numpy(test.X.astype(np.float32))
    asr_X: torch.Tensor | None = None
    if trigger is not None:
        keep = test.y != target
        asr_X = torch.from_numpy(np.asarray(trigger.apply(test.X[keep]), dtype=np.float32))

    # ---- training
    net = build_network(plan.arch, tuple(train.X.shape[1:]), train.n_classes, width=plan.width)
    global_vec = parameters_to_vector(net.parameters()).detach().clone()
    rule = rule_entry.factory
    records: list[dict[str, Any]] = []
    for rnd in range(1, rounds + 1):
        sampled = np.sort(rng.choice(n_clients, size=k, replace=False))
        attacking = spec.acts and rnd >= start_round
        # k + 1 for every rule: seeds[k] is the server's (FLTrust), the stream the same for all.
        seeds = rng.integers(0, 2**31 - 1, size=k + 1)
        rows = []
        for j, client in enumerate(sampled):
            is_mal = attacking and client < m
            X_c, y_c = poisoned_data[client] if is_mal else clean_data[client]
            epochs = attacker_epochs if is_mal else local_epochs
            rows.append(
                _local_update(
                    net, global_vec, X_c, y_c, epochs=epochs, lr=lr, batch_size=batch_size, seed=int(seeds[j])
                )
            )
        updates = torch.stack(rows).numpy().astype(np.float32, copy=False)
        mal_rows = np.flatnonzero(sampled < m)
        if attacking and spec.craft is not None and len(mal_rows):
            ctx = RoundContext(malicious=mal_rows, benign=np.flatnonzero(sampled >= m))
            updates = updates.copy()
            updates[mal_rows] = spec.craft(updates, ctx, rng, **craft_kwargs)

        if not np.isfinite(updates).all():
            # The global model has blown up (FedAvg under a strong sign flip, say) and
            # training from it gives NaN: the run ends here, its last round recorded.
            records.append(_round_record(rnd, net, global_vec, X_test, test.y, asr_X, target, k, mal_rows))
            records[-1]["diverged"] = True
            if on_round is not None:
                on_round(records[-1])
            break
        kwargs = dict(agg_kwargs)
        if needs_server_update and root is not None:
            server = _local_update(
                net, global_vec, *root, epochs=local_epochs, lr=lr, batch_size=batch_size, seed=int(seeds[k])
            )
            kwargs["server_update"] = server.numpy()
        result = rule(updates, **kwargs)
        global_vec = global_vec + torch.from_numpy(np.array(result.update, dtype=np.float32))

        record = _round_record(rnd, net, global_vec, X_test, test.y, asr_X, target, k, mal_rows)
        # before start_round the malicious clients send honest updates: nothing to measure
        if attacking and rule_entry.tag("selects_clients") and result.selected is not None and len(mal_rows):
            record["malicious_selected"] = float(np.isin(mal_rows, result.selected).mean())
        records.append(record)
        if on_round is not None:
            on_round(record)
    return records
