"""Malicious federated clients: data poisoning and model poisoning behaviours.

A :class:`ClientAttack` has up to two parts, used by :func:`poisonlab.federated.simulation.simulate`:

* ``poison_data(X, y, rng, **params) -> (X, y)`` rewrites one malicious client's local
  data once, before training (label flipping, backdoors);
* ``craft(updates, ctx, rng, **params) -> rows`` replaces the malicious rows of the
  round's ``(k, d)`` update matrix, vectorised over those rows (sign flipping, Gaussian
  noise, scaling, ALIE, IPM). ``updates`` holds what every sampled client computed by
  honest local training on its (possibly poisoned) data; the colluders read the rows
  that :attr:`RoundContext.malicious` names (``knowledge="own"``, ALIE's default) or, for
  an omniscient attacker, the honest clients' rows (``knowledge="full"``, IPM's default).

==============  ============  ==================================================
name            kind          behaviour
==============  ============  ==================================================
``label_flip``  data          flip labels (Tolpegin et al. 2020)
``backdoor``    data          BadNets trigger + relabel to the target
``sign_flip``   model         ``−λ·update``
``gaussian``    model         ``N(0, σ²)`` per coordinate
``scaling``     data + model  backdoor, then boost by ``γ`` (Bagdasaryan et al. 2020)
``alie``        model         ``μ + z·σ`` (Baruch et al. 2019)
``ipm``         model         ``−ε·mean`` of honest updates (Xie et al. 2019)
``none``        neither       the honest behaviour (the attack-free baseline)
==============  ============  ==================================================

:data:`CLIENT_ATTACKS` is a :class:`~poisonlab.registry.Registry`. Each entry's
``factory`` takes the attack's keyword hyperparameters (those of its two parts, see
:meth:`Entry.parameters <poisonlab.registry.Entry.parameters>`) and returns a
:class:`ClientAttack` with them bound; its tags (:data:`CLIENT_ATTACK_TAGS`) say what
the simulation, the Flower client and the conformance checks need to know, so that no
code outside this module tests an attack's name.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from poisonlab.errors import ConfigError
from poisonlab.registry import Registry

__all__ = [
    "CLIENT_ATTACKS",
    "CLIENT_ATTACK_TAGS",
    "CONTEXT_PARAMS",
    "ClientAttack",
    "RoundContext",
    "alie",
    "alie_z",
    "backdoor",
    "gaussian",
    "ipm",
    "label_flip",
    "scaling",
    "sign_flip",
]


@dataclass(frozen=True, eq=False)
class RoundContext:
    """What the colluding clients know about the current round.

    Attributes
    ----------
    malicious : np.ndarray
        Row indices (into the round's update matrix) of the sampled malicious clients.
    benign : np.ndarray
        Row indices of the sampled honest clients.
    server_lr : float
        The server's learning rate ``η`` (the aggregate is added times ``η``); the
        simulation uses 1.
    """

    malicious: np.ndarray
    benign: np.ndarray
    server_lr: float = 1.0
    #: The round's size when the rows do not show it (a Flower client sees its colluders only).
    n_clients: int | None = None

    @property
    def n(self) -> int:
        """Number of sampled clients in the round (``n`` in the papers' formulas)."""
        return self.n_clients if self.n_clients is not None else len(self.malicious) + len(self.benign)


DataFn = Callable[..., tuple[np.ndarray, np.ndarray]]
CraftFn = Callable[..., np.ndarray]


#: Keyword arguments of a data poisoner that the simulation supplies from the data, not the user:
#: the number of classes and the backdoor trigger. Each poisoner gets those its signature names.
CONTEXT_PARAMS = frozenset({"n_classes", "trigger"})


def _keywords(fn: Callable[..., Any] | None) -> dict[str, inspect.Parameter]:
    if fn is None:
        return {}
    return {
        p.name: p
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in CONTEXT_PARAMS
    }


@dataclass(frozen=True)
class ClientAttack:
    """A malicious behaviour with its hyperparameters bound: data poisoning and/or update crafting.

    Attributes
    ----------
    name : str
        The behaviour's name.
    poison_data : callable or None
        ``(X, y, rng, **kwargs) -> (X, y)``, applied once to each malicious client's data.
    craft : callable or None
        ``(updates, ctx, rng, **kwargs) -> rows``, the malicious rows of each round.
    params : mapping
        Every hyperparameter with its value; each part receives those it names.
    """

    name: str
    poison_data: DataFn | None = None
    craft: CraftFn | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def acts(self) -> bool:
        """Whether the behaviour differs from an honest client's at all."""
        return self.poison_data is not None or self.craft is not None

    @property
    def data_params(self) -> frozenset[str]:
        """Hyperparameters of :attr:`poison_data` (the simulation's context excluded)."""
        return frozenset(_keywords(self.poison_data))

    @property
    def craft_params(self) -> frozenset[str]:
        """Hyperparameters of :attr:`craft`."""
        return frozenset(_keywords(self.craft))

    @property
    def data_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k in self.data_params}

    @property
    def craft_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k in self.craft_params}

    def poison(
        self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator, **context: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Poison one client's data; ``context`` (see :data:`CONTEXT_PARAMS`) goes where it is taken."""
        if self.poison_data is None:
            return X, y
        taken = inspect.signature(self.poison_data).parameters
        given = {k: v for k, v in context.items() if k in taken}
        return self.poison_data(X, y, rng, **given, **self.data_kwargs)

    def craft_rows(self, updates: np.ndarray, ctx: RoundContext, rng: np.random.Generator) -> np.ndarray:
        """The malicious rows of the round (a copy of them when the behaviour crafts nothing)."""
        if self.craft is None:
            return np.array(updates[ctx.malicious], dtype=np.float32)
        return self.craft(updates, ctx, rng, **self.craft_kwargs)


# --------------------------------------------------------------------------- data poisoning


def label_flip(
    X: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    n_classes: int,
    source: int | None = None,
    target: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip the labels of one malicious client's local data.

    Parameters
    ----------
    X, y : np.ndarray
        The client's local inputs and integer labels; ``X`` is returned unchanged.
    rng : np.random.Generator
        Unused (the flip is deterministic); kept for a uniform signature.
    n_classes : int
        Number of classes.
    source, target : int, optional
        With both given, only labels ``source`` become ``target`` (the targeted
        setting of Tolpegin et al.). With neither, every label ``c`` becomes
        ``n_classes − 1 − c``, a fixed permutation without fixed points for an even
        number of classes (the untargeted setting used by Fang et al. 2020).

    References
    ----------
    Tolpegin, Truex, Gursoy, Liu. "Data Poisoning Attacks Against Federated Learning
    Systems." ESORICS 2020.
    """
    if (source is None) != (target is None):
        raise ConfigError("label_flip: give both source and target, or neither")
    y = np.array(y, dtype=np.int64, copy=True)
    if source is None or target is None:
        return X, n_classes - 1 - y
    for name, value in (("source", source), ("target", target)):
        if not 0 <= int(value) < n_classes:
            raise ConfigError(f"label_flip: {name} must lie in 0..{n_classes - 1}, got {value}")
    y[y == int(source)] = int(target)
    return X, y


def backdoor(
    X: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    trigger: Any,
    target: int,
    rate: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Stamp a trigger on a share of one client's non-target samples and relabel them to ``target``.

    Parameters
    ----------
    X, y : np.ndarray
        The client's local data.
    rng : np.random.Generator
        Chooses the rows to poison.
    trigger : poisonlab.attacks.base.Trigger
        Anything with ``apply(X) -> X`` (e.g. the BadNets patch trigger).
    target : int
        Target class index.
    rate : float
        Share of the client's non-target samples that are poisoned, in ``(0, 1]``;
        the rest stay clean so that the backdoored model keeps its main-task accuracy
        (Bagdasaryan et al. mix clean and backdoored samples in every batch).

    References
    ----------
    Gu, Dolan-Gavitt, Garg. "BadNets." arXiv:1708.06733, 2017.
    """
    if not 0 < rate <= 1:
        raise ConfigError(f"backdoor: rate must lie in (0, 1], got {rate}")
    pool = np.flatnonzero(y != target)
    k = math.ceil(rate * len(pool))
    rows = rng.choice(pool, size=k, replace=False) if k else pool[:0]
    X = np.array(X, dtype=np.float32, copy=True)
    y = np.array(y, dtype=np.int64, copy=True)
    if len(rows):
        X[rows] = trigger.apply(X[rows])
        y[rows] = target
    return X, y


# --------------------------------------------------------------------------- model poisoning


def _reference(updates: np.ndarray, ctx: RoundContext, knowledge: str) -> np.ndarray:
    """The honest updates the colluders base their estimate on."""
    if knowledge not in ("own", "full"):
        raise ConfigError(f"knowledge must be 'own' or 'full', got {knowledge!r}")
    if knowledge == "full" and len(ctx.benign):
        return updates[ctx.benign]
    return updates[ctx.malicious]


def sign_flip(
    updates: np.ndarray, ctx: RoundContext, rng: np.random.Generator, *, scale: float = 4.0
) -> np.ndarray:
    """Send ``−λ·u`` instead of the honest update ``u`` (reversed, amplified gradient).

    Parameters
    ----------
    scale : float
        ``λ > 0``, default 4 as in Li et al. With ``m`` of ``n`` attackers the mean
        becomes about ``(n − m − λ·m)/n`` times the honest mean: with ``λ = 1`` and 20 %
        attackers FedAvg merely slows down (0.6×); ``λ = 4`` cancels it, so the model
        stops learning.

    References
    ----------
    Li, Xu, Chen, Giannakis, Ling. "RSA: Byzantine-Robust Stochastic Aggregation
    Methods for Distributed Learning from Heterogeneous Datasets." AAAI 2019
    (sign-flipping attack with ``σ = −4``).
    """
    if scale <= 0:
        raise ConfigError(f"sign_flip: scale must be > 0, got {scale}")
    return (-scale * updates[ctx.malicious]).astype(np.float32)


def gaussian(
    updates: np.ndarray, ctx: RoundContext, rng: np.random.Generator, *, sigma: float = 1.0
) -> np.ndarray:
    """Send pure Gaussian noise ``N(0, σ²)`` per coordinate (a classical Byzantine fault).

    References
    ----------
    Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with Adversaries:
    Byzantine Tolerant Gradient Descent." NeurIPS 2017 (Gaussian Byzantine workers).
    """
    if sigma <= 0:
        raise ConfigError(f"gaussian: sigma must be > 0, got {sigma}")
    shape = (len(ctx.malicious), updates.shape[1])
    return rng.normal(0.0, sigma, size=shape).astype(np.float32)


def scaling(
    updates: np.ndarray, ctx: RoundContext, rng: np.random.Generator, *, gamma: float | None = None
) -> np.ndarray:
    """Model replacement: boost the (backdoored) update so that it replaces the global model.

    Parameters
    ----------
    gamma : float, optional
        The boost. Bagdasaryan et al. use ``γ = n/η`` for one attacker, so that
        FedAvg's mean ``(1/n)·Σ`` times the server rate ``η`` returns the attacker's
        model. With ``m`` colluders in the round each boosting its own update, the
        default is ``γ = n/(η·m)`` so that together they replace the model once.

    References
    ----------
    Bagdasaryan, Veit, Hua, Estrin, Shmatikov. "How To Backdoor Federated Learning."
    AISTATS 2020.
    """
    m = len(ctx.malicious)
    if gamma is None:
        gamma = ctx.n / (ctx.server_lr * max(m, 1))
    if gamma <= 0:
        raise ConfigError(f"scaling: gamma must be > 0, got {gamma}")
    with np.errstate(over="ignore", invalid="ignore"):  # a huge gamma is the attacker's right
        scaled = gamma * updates[ctx.malicious].astype(np.float64)
    # float32 updates saturate at the largest finite value instead of overflowing to inf
    top = float(np.finfo(np.float32).max)
    return np.clip(np.nan_to_num(scaled, nan=0.0, posinf=top, neginf=-top), -top, top).astype(np.float32)


def alie_z(n: int, m: int) -> float:
    """The ALIE deviation ``z = Φ⁻¹((n − m − s)/(n − m))`` with ``s = floor(n/2 + 1) − m``.

    ``s`` is the number of honest clients the attackers must "win over" to form a
    majority; ``Φ⁻¹`` is the standard normal inverse CDF (``scipy.stats.norm.ppf``).
    For ``n = 20, m = 4``: ``s = 7`` and ``z = Φ⁻¹(9/16) ≈ 0.157``.

    When the attackers already hold a majority (``s ≤ 0``) the formula gives
    ``Φ⁻¹(≥ 1) = ∞``; ``s`` is then taken as 1, the smallest meaningful value, so
    that ``z`` stays finite. For the same reason the numerator is at least 1/2.
    """
    from scipy.stats import norm  # scipy.stats takes 0.7 s to import: only ALIE needs it

    if not 0 <= m < n:
        raise ConfigError(f"alie: needs 0 <= m < n, got n={n}, m={m}")
    s = max(math.floor(n / 2 + 1) - m, 1)
    # With a single honest client (n − m = 1) the quantile would be Φ⁻¹(0) = −∞; the
    # spread of one update is 0 anyway, so any finite z gives the same update.
    return float(norm.ppf(max(n - m - s, 0.5) / (n - m)))


def alie(
    updates: np.ndarray,
    ctx: RoundContext,
    rng: np.random.Generator,
    *,
    z: float | None = None,
    knowledge: str = "own",
) -> np.ndarray:
    """ALIE, "A Little Is Enough": every attacker sends ``μ + z·σ``, per coordinate.

    ``μ`` and ``σ`` are the coordinate-wise mean and standard deviation of the honest
    updates the colluders can see (their own honest updates with ``knowledge="own"``,
    the default, as in the paper; every honest update with ``"full"``). A small ``z`` keeps the
    update inside the spread of honest ones, so median- and distance-based rules do
    not filter it, yet all attackers shift the same way.

    Parameters
    ----------
    z : float, optional
        Defaults to :func:`alie_z` of the round's ``n`` and ``m``.

    References
    ----------
    Baruch, Baruch, Goldberg. "A Little Is Enough: Circumventing Defenses For
    Distributed Learning." NeurIPS 2019.
    """
    ref = _reference(updates, ctx, knowledge).astype(np.float64)
    if z is None:
        z = alie_z(ctx.n, len(ctx.malicious))
    row = ref.mean(axis=0) + z * ref.std(axis=0)
    return np.broadcast_to(row.astype(np.float32), (len(ctx.malicious), updates.shape[1])).copy()


def ipm(
    updates: np.ndarray,
    ctx: RoundContext,
    rng: np.random.Generator,
    *,
    epsilon: float = 0.1,
    knowledge: str = "full",
) -> np.ndarray:
    """Inner-product manipulation: every attacker sends ``−ε·mean`` of the honest updates.

    A small ``ε`` keeps the malicious update close to the honest ones (so robust rules
    accept it) while making the aggregate's inner product with the true gradient
    negative once enough of it gets through. The defaults follow the paper's attack on
    Krum and the median: ``ε = 0.1`` and an omniscient attacker that knows the honest
    updates (``knowledge="full"``); ``"own"`` uses only the colluders' own honest updates.

    References
    ----------
    Xie, Koyejo, Gupta. "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner
    Product Manipulation." UAI 2019.
    """
    if epsilon <= 0:
        raise ConfigError(f"ipm: epsilon must be > 0, got {epsilon}")
    ref = _reference(updates, ctx, knowledge).astype(np.float64)
    row = (-epsilon * ref.mean(axis=0)).astype(np.float32)
    return np.broadcast_to(row, (len(ctx.malicious), updates.shape[1])).copy()


#: The tags every client attack has, with their defaults.
CLIENT_ATTACK_TAGS: dict[str, Any] = {
    # Rewrites the malicious clients' local data once, before training.
    "poisons_data": False,
    # Replaces the malicious rows of each round's update matrix.
    "crafts_update": False,
    # Plants a trigger: takes target and patch_size, and the simulation measures its ASR.
    "backdoor": False,
    # The data it can poison (a BadNets patch needs images).
    "modalities": ("image", "tabular"),
    # Colluders needed to craft (ALIE estimates a spread across their updates).
    "min_colluders": 1,
    # Hyperparameters whose default depends on the round's size n (a Flower client must be told n).
    "round_size_params": frozenset(),
}

CLIENT_ATTACKS: Registry[ClientAttack] = Registry(
    "client attack", tags=CLIENT_ATTACK_TAGS, title="federated client attacks"
)
"""Malicious client behaviours by name; ``create(**params)`` gives a :class:`ClientAttack`."""


def _register(
    name: str,
    description: str,
    *,
    poison_data: DataFn | None = None,
    craft: CraftFn | None = None,
    defaults: Mapping[str, Any] | None = None,
    **tags: Any,
) -> None:
    """Register a behaviour whose factory takes the keyword hyperparameters of both parts.

    ``defaults`` overrides a part's default or adds a hyperparameter neither part takes
    (a backdoor's ``patch_size``, which the simulation turns into the trigger).
    """
    defaults = dict(defaults or {})
    found = {**_keywords(poison_data), **_keywords(craft)}
    signature = inspect.Signature(
        [p.replace(default=defaults.pop(p.name, p.default)) for p in found.values()]
        + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
    )

    def factory(**params: Any) -> ClientAttack:
        bound = signature.bind(**params)  # a TypeError for an unknown or a missing name
        bound.apply_defaults()
        return ClientAttack(name, poison_data, craft, MappingProxyType(dict(bound.arguments)))

    factory.__signature__ = signature  # type: ignore[attr-defined]
    factory.__name__ = name
    CLIENT_ATTACKS.add(
        name,
        factory,
        description,
        poisons_data=poison_data is not None,
        crafts_update=craft is not None,
        **tags,
    )


_BACKDOOR: dict[str, Any] = {
    "backdoor": True,
    "modalities": ("image",),
    "defaults": {"target": 0, "patch_size": 3},
}
_register("none", "No attack: the malicious clients behave honestly (the attack-free baseline)")
_register(
    "label_flip",
    "Flip the labels of the malicious clients' data (Tolpegin et al. 2020)",
    poison_data=label_flip,
)
_register(
    "backdoor",
    "BadNets backdoor: stamp a patch on a share of the local data, relabel it to the target",
    poison_data=backdoor,
    **_BACKDOOR,
)
_register("sign_flip", "Send the reversed, amplified update -scale·u (Li et al. 2019)", craft=sign_flip)
_register(
    "gaussian", "Send Gaussian noise N(0, sigma²) per coordinate (Blanchard et al. 2017)", craft=gaussian
)
_register(
    "scaling",
    "Model replacement: backdoor the data, then boost the update by gamma (Bagdasaryan et al. 2020)",
    poison_data=backdoor,
    craft=scaling,
    round_size_params=frozenset({"gamma"}),
    **_BACKDOOR,
)
_register(
    "alie",
    "A Little Is Enough: send mean + z·std of the honest updates (Baruch et al. 2019)",
    craft=alie,
    min_colluders=2,
    round_size_params=frozenset({"z"}),
)
_register(
    "ipm", "Inner-product manipulation: send -epsilon·mean of the honest updates (Xie et al. 2019)", craft=ipm
)
