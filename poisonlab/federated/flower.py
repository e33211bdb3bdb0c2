"""Flower integration: poisonlab's robust rules as a Flower strategy, and malicious Flower clients.

Needs ``flwr`` (``pip install 'poisonlab[flower]'``); nothing else in poisonlab imports this
module. It builds on Flower's ``flwr.server.strategy`` / ``flwr.client.NumPyClient`` API
(``FitRes``, ``Parameters``), which flwr 1.42 supports without deprecation warnings.

* :class:`PoisonlabStrategy` is a ``FedAvg`` whose ``aggregate_fit`` applies a rule of
  :data:`~poisonlab.federated.aggregators.AGGREGATORS` (Krum, Blanchard et al. 2017;
  Bulyan, El Mhamdi et al. 2018; ...) to the clients' updates ``client − global``.
* :class:`MaliciousNumPyClient` wraps an honest ``NumPyClient`` and replaces its update
  with one crafted by a model-poisoning attack of
  :data:`~poisonlab.federated.clients.CLIENT_ATTACKS` (sign flip, Gaussian, scaling, ALIE,
  IPM). Data attacks (label flipping, backdoors) need no wrapper: poison the wrapped
  client's data beforehand (:func:`~poisonlab.federated.clients.label_flip`, ``backdoor``).
* :class:`Colluders` pools the honest updates of colluding malicious clients, the
  knowledge ALIE (Baruch et al. 2019) and IPM (Xie et al. 2019) estimate benign updates from.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np

from poisonlab.errors import ConfigError, IncompatibleError
from poisonlab.federated.aggregators import AGGREGATORS, check_preconditions
from poisonlab.federated.clients import CLIENT_ATTACKS, RoundContext

try:
    from flwr.client import NumPyClient
    from flwr.common import (
        EvaluateRes,
        FitIns,
        FitRes,
        NDArrays,
        Parameters,
        Scalar,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.server.client_manager import ClientManager
    from flwr.server.client_proxy import ClientProxy
    from flwr.server.strategy import FedAvg
except ModuleNotFoundError as exc:
    if exc.name is None or exc.name.partition(".")[0] != "flwr":
        raise  # a broken flwr install (a missing dependency of flwr) reports itself
    raise ConfigError("the Flower integration needs flwr: pip install 'poisonlab[flower]'") from exc

__all__ = ["MODEL_ATTACKS", "Colluders", "MaliciousNumPyClient", "PoisonlabStrategy"]

#: Attacks :class:`MaliciousNumPyClient` applies to the update it returns: those tagged ``crafts_update``.
MODEL_ATTACKS = frozenset(e.name for e in CLIENT_ATTACKS.where(crafts_update=True))
_LOG = logging.getLogger(__name__)


def _flatten(arrays: NDArrays) -> np.ndarray:
    """All layers as one float64 vector (float64 so that ``client − global`` is computed exactly)."""
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def _unflatten(vector: np.ndarray, like: NDArrays) -> NDArrays:
    """Split ``vector`` back into layers with the shapes and dtypes of ``like``."""
    out, start = [], 0
    for layer in like:
        part = vector[start : start + layer.size].reshape(layer.shape)
        start += layer.size
        out.append(
            part.astype(layer.dtype)
            if np.issubdtype(layer.dtype, np.floating)
            else np.rint(part).astype(layer.dtype)
        )
    return out


def _check_shapes(arrays: NDArrays, like: NDArrays, who: str) -> None:
    if [a.shape for a in arrays] != [g.shape for g in like]:
        raise ConfigError(
            f"{who}: parameter shapes {[a.shape for a in arrays]} differ from the "
            f"global model's {[g.shape for g in like]}"
        )


class PoisonlabStrategy(FedAvg):
    """FedAvg with a poisonlab aggregation rule in place of the weighted mean.

    Each round, :meth:`configure_fit` records the global parameters it sends, and
    :meth:`aggregate_fit` stacks the clients' updates ``client − global`` as an ``(n, d)``
    float32 matrix, applies the rule, and returns ``global + aggregate``.

    Parameters
    ----------
    aggregator : str
        A key of :data:`~poisonlab.federated.aggregators.AGGREGATORS`.
    aggregator_params : mapping, optional
        Keyword arguments of the rule, e.g. ``{"f": 2}`` for Krum, ``{"beta": 0.2}`` for the
        trimmed mean. Checked here: unknown or missing names, and for the rules that take
        ``f``, whether ``min_fit_clients`` clients can satisfy the rule's precondition.
    weight_by_examples : bool
        ``fedavg`` only: weight the mean by the ``num_examples`` the clients report, as
        Flower's FedAvg does. Off by default because a malicious client can report any
        count and so buy itself most of the weight; the robust rules never use it.
    server_update_fn : callable, optional
        Required by ``fltrust`` (Cao et al. 2021): ``global ndarrays -> ndarrays`` trained
        by the server on its clean root set; the server update is their difference.
    fraction_fit, ..., evaluate_metrics_aggregation_fn
        As in ``flwr.server.strategy.FedAvg``.

    Attributes
    ----------
    global_parameters_ : list of np.ndarray or None
        The parameters sent out by the last :meth:`configure_fit`.

    Notes
    -----
    Updates with the wrong shapes or non-finite values are rejected, not aggregated (a
    malicious client must not be able to stop the server); the preconditions are then
    checked on the ``n`` usable updates. ``aggregate_fit`` returns the metrics of
    ``fit_metrics_aggregation_fn`` plus ``n_updates`` (usable updates), ``rejected`` and
    ``rejected_cids`` (if any), ``selected`` (updates that entered the aggregate:
    those kept by Krum, Multi-Krum or Bulyan, those with a non-zero weight for FedAvg, norm
    clipping and FLTrust, all of them for the coordinate-wise median and trimmed mean) and,
    except for the coordinate-wise rules, ``selected_cids``: the kept clients' ``cid``,
    comma-separated (Flower metrics are scalars), in the rule's order.
    """

    def __init__(
        self,
        *,
        aggregator: str = "krum",
        aggregator_params: Mapping[str, Any] | None = None,
        weight_by_examples: bool = False,
        server_update_fn: Callable[[NDArrays], NDArrays] | None = None,
        fraction_fit: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_fit_clients: int = 2,
        min_evaluate_clients: int = 2,
        min_available_clients: int = 2,
        evaluate_fn: Callable[..., Any] | None = None,
        on_fit_config_fn: Callable[..., Any] | None = None,
        on_evaluate_config_fn: Callable[..., Any] | None = None,
        accept_failures: bool = True,
        initial_parameters: Parameters | None = None,
        fit_metrics_aggregation_fn: Callable[..., Any] | None = None,
        evaluate_metrics_aggregation_fn: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            fraction_fit=fraction_fit,
            fraction_evaluate=fraction_evaluate,
            min_fit_clients=min_fit_clients,
            min_evaluate_clients=min_evaluate_clients,
            min_available_clients=min_available_clients,
            evaluate_fn=evaluate_fn,
            on_fit_config_fn=on_fit_config_fn,
            on_evaluate_config_fn=on_evaluate_config_fn,
            accept_failures=accept_failures,
            initial_parameters=initial_parameters,
            fit_metrics_aggregation_fn=fit_metrics_aggregation_fn,
            evaluate_metrics_aggregation_fn=evaluate_metrics_aggregation_fn,
        )
        entry = AGGREGATORS.get(aggregator)
        params = dict(aggregator_params or {})
        signature = inspect.signature(entry.factory).parameters
        own = {"updates", "weights", "server_update"}  # filled in by aggregate_fit
        unknown = sorted(set(params) - (set(signature) - own))
        missing = sorted(
            k
            for k, p in signature.items()
            if k not in own and k not in params and p.default is inspect.Parameter.empty
        )
        if unknown or missing:
            raise ConfigError(f"aggregator_params for {aggregator!r}: unknown {unknown}, missing {missing}")
        if weight_by_examples and not entry.tag("takes_weights"):
            takes = ", ".join(e.name for e in AGGREGATORS.where(takes_weights=True))
            raise IncompatibleError(
                f"weight_by_examples applies to {takes} only (rules taking weights), not {aggregator!r}"
            )
        if entry.tag("needs_server_update") != (server_update_fn is not None):
            needs = ", ".join(e.name for e in AGGREGATORS.where(needs_server_update=True))
            raise ConfigError(f"server_update_fn is required by {needs} and used by nothing else")
        if entry.tag("needs_f"):
            try:
                check_preconditions(aggregator, min_fit_clients, params["f"])
            except ConfigError as err:
                raise ConfigError(f"min_fit_clients={min_fit_clients} is too few: {err}") from None
        self.aggregator = aggregator
        self._rule = entry
        self.aggregator_params = params
        self.weight_by_examples = weight_by_examples
        self.server_update_fn = server_update_fn
        self.global_parameters_: NDArrays | None = None

    def __repr__(self) -> str:
        return (
            f"PoisonlabStrategy(aggregator={self.aggregator!r}, aggregator_params={self.aggregator_params})"
        )

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Record the global parameters of the round, then sample clients as FedAvg does."""
        self.global_parameters_ = parameters_to_ndarrays(parameters)
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Aggregate the updates ``client − global`` with the poisonlab rule."""
        if not results or (failures and not self.accept_failures):
            return None, {}
        if self.global_parameters_ is None:
            raise ConfigError("aggregate_fit needs the round's global parameters: call configure_fit first")
        like, kwargs = self.global_parameters_, dict(self.aggregator_params)
        base = _flatten(like)
        # A client that sends malformed or non-finite parameters must not stop the server: its
        # update is rejected (logged, reported in the metrics) as if it had failed.
        updates = np.empty((len(results), base.size), dtype=np.float32)
        usable: list[tuple[ClientProxy, FitRes]] = []
        rejected: list[str] = []
        for proxy, res in results:
            arrays = parameters_to_ndarrays(res.parameters)
            row = updates[len(usable)]
            if [a.shape for a in arrays] == [g.shape for g in like]:
                with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is rejected below
                    np.subtract(_flatten(arrays), base, out=row, casting="same_kind")
                if np.isfinite(row).all():
                    usable.append((proxy, res))
                    continue
            rejected.append(str(proxy.cid))
        if rejected:
            _LOG.warning(
                "round %d: rejected the malformed or non-finite updates of %s", server_round, rejected
            )
        n, updates, results = len(usable), updates[: len(usable)], usable
        try:
            check_preconditions(self._rule, n, kwargs.get("f", 0), beta=kwargs.get("beta"))
        except ConfigError as err:
            raise ConfigError(
                f"round {server_round}: {n} usable updates ({len(rejected)} rejected, "
                f"{len(failures)} failures): {err}"
            ) from None
        if self.weight_by_examples:
            kwargs["weights"] = np.array([res.num_examples for _, res in results], dtype=np.float64)
        if self.server_update_fn is not None:
            trained = self.server_update_fn(like)
            _check_shapes(trained, like, "server_update_fn")
            kwargs["server_update"] = (_flatten(trained) - base).astype(np.float32)
        result = self._rule.factory(updates, **kwargs)
        parameters = ndarrays_to_parameters(_unflatten(base + result.update, like))

        metrics: dict[str, Scalar] = {}
        if self.fit_metrics_aggregation_fn:
            metrics.update(self.fit_metrics_aggregation_fn([(r.num_examples, r.metrics) for _, r in results]))
        kept = (
            result.selected
            if result.selected is not None
            else (None if result.weights is None else np.flatnonzero(result.weights > 0))
        )
        metrics["n_updates"], metrics["rejected"] = n, len(rejected)
        if rejected:
            metrics["rejected_cids"] = ",".join(rejected)
        metrics["selected"] = n if kept is None else len(kept)
        if kept is not None:
            metrics["selected_cids"] = ",".join(str(results[i][0].cid) for i in kept)
        return parameters, metrics

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """The median of the clients' evaluation losses (their example-weighted mean with
        ``weight_by_examples``), and ``evaluate_metrics_aggregation_fn``'s metrics.

        Flower's FedAvg weights each loss by the client's reported example count, so one
        client reporting a huge count (or loss) would decide the figure; the median of
        the reported losses cannot be moved past the honest majority's.
        """
        if self.weight_by_examples:
            return super().aggregate_evaluate(server_round, results, failures)
        if not results or (failures and not self.accept_failures):
            return None, {}
        losses = np.array([res.loss for _, res in results], dtype=np.float64)
        metrics: dict[str, Scalar] = {}
        if self.evaluate_metrics_aggregation_fn:
            metrics = self.evaluate_metrics_aggregation_fn([(r.num_examples, r.metrics) for _, r in results])
        return float(np.median(losses[np.isfinite(losses)])) if np.isfinite(losses).any() else None, metrics


class Colluders:
    """The shared knowledge of colluding malicious clients: their honest updates of the round.

    Knowledge model (Baruch et al. 2019, "A Little Is Enough"): the attacker controls
    the colluding clients and their data, and nothing else. It cannot see the honest
    clients' updates; it estimates them from the honest updates its own clients compute
    on the round's global model. So when the first member of a round is asked to fit, it
    runs the honest training of every member (each wrapped client's ``fit``) on the
    received parameters, and every member then crafts from the same ``(m, d)`` matrix.
    IPM's omniscient variant (``knowledge="full"``, Xie et al. 2019) is therefore not
    available through Flower.

    The pool lives in this process: give all members one ``Colluders`` where their fits
    run in one Python process (a custom loop, a thread-based simulation, the tests), and
    build every member before the first round so that each sees the whole pool. A round
    is recognised by a digest of the global parameters.
    """

    def __init__(self) -> None:
        self._members: dict[Hashable, NumPyClient] = {}
        self._lock = threading.Lock()
        self._digest: bytes | None = None
        self._pool: tuple[list[Hashable], np.ndarray, list[tuple[int, dict[str, Scalar]]]] | None = None

    def join(self, member: Hashable, client: NumPyClient) -> None:
        """Add (or, for a known ``member`` key, replace) the honest client of a colluder."""
        with self._lock:
            self._members[member] = client

    def pool(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[list[Hashable], np.ndarray, list[tuple[int, dict[str, Scalar]]]]:
        """Members' keys, honest updates ``(m, d)`` float32, and ``(num_examples, metrics)`` replies."""
        digest = hashlib.blake2b(b"".join(np.ascontiguousarray(p).tobytes() for p in parameters)).digest()
        with self._lock:
            if self._pool is None or digest != self._digest or list(self._members) != self._pool[0]:
                base = _flatten(parameters)
                keys, rows, replies = list(self._members), [], []
                for key in keys:
                    arrays, num_examples, metrics = self._members[key].fit(parameters, config)
                    _check_shapes(arrays, parameters, f"colluder {key!r}")
                    rows.append((_flatten(arrays) - base).astype(np.float32))
                    replies.append((num_examples, metrics))
                self._pool, self._digest = (keys, np.stack(rows), replies), digest
            return self._pool


class MaliciousNumPyClient(NumPyClient):
    """A ``NumPyClient`` that trains honestly, then sends a crafted update instead.

    Parameters
    ----------
    client : NumPyClient
        The honest client; its ``get_parameters``, ``get_properties`` and ``evaluate`` are
        passed through, and its ``fit`` provides the honest update ``u = fit − global``.
    attack : str
        One of :data:`MODEL_ATTACKS`; see :mod:`poisonlab.federated.clients`.
    attack_params : mapping, optional
        The attack's keyword parameters (``scale``, ``sigma``, ``gamma``, ``z``, ``epsilon``).
    colluders : Colluders, optional
        Shared with the other malicious clients, which then craft from all their honest
        updates (``m`` rows) instead of this client's alone (``m = 1``). ALIE needs
        ``m >= 2`` (its σ is a spread across updates).
    member : hashable, optional
        This client's key in ``colluders`` (e.g. its partition id); required with them.
    n_clients : int, optional
        Clients per round, ``n`` in ALIE's default ``z = alie_z(n, m)`` and in scaling's
        default boost ``γ = n/m`` (Bagdasaryan et al. 2020): the attacker is assumed to
        know the round size. Needed only for those defaults.
    random_state : int or np.random.Generator, optional
        Seeds the Gaussian attack.
    """

    def __init__(
        self,
        client: NumPyClient,
        attack: str,
        *,
        attack_params: Mapping[str, Any] | None = None,
        colluders: Colluders | None = None,
        member: Hashable | None = None,
        n_clients: int | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        entry = CLIENT_ATTACKS.get(attack)
        if not entry.tag("crafts_update"):
            raise IncompatibleError(
                f"{attack!r} poisons data: poison the wrapped client's data instead; attacks a "
                f"MaliciousNumPyClient crafts: {', '.join(sorted(MODEL_ATTACKS))}"
            )
        craft_params = entry.create().craft_params
        params = dict(attack_params or {})
        unknown = sorted(set(params) - craft_params)
        if unknown or params.get("knowledge", "own") != "own":
            raise ConfigError(
                f"attack_params for {attack!r}: unknown {unknown}; knowledge can only be 'own' "
                "(a Flower client never sees other clients' updates)"
            )
        if "knowledge" in craft_params:
            params["knowledge"] = "own"
        if (colluders is None) != (member is None):
            raise ConfigError("give colluders and member together, or neither")
        if n_clients is None and entry.tag("round_size_params") - set(params):
            needs = ", ".join(sorted(entry.tag("round_size_params") - set(params)))
            raise ConfigError(f"{attack!r} needs n_clients for the default of {needs}, or give it")
        self.client, self.attack, self.attack_params = client, attack, params
        self._attack = entry.create(**params)
        self._min_colluders = int(entry.tag("min_colluders"))
        self.colluders, self.member, self.n_clients = colluders, member, n_clients
        self._rng = np.random.default_rng(random_state)
        if colluders is not None:
            colluders.join(member, client)

    def get_properties(self, config: dict[str, Scalar]) -> dict[str, Scalar]:
        return self.client.get_properties(config)

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        return self.client.get_parameters(config)

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        return self.client.evaluate(parameters, config)

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train honestly (all colluders, once per round), then return ``global + crafted update``."""
        if self.colluders is None:
            arrays, num_examples, metrics = self.client.fit(parameters, config)
            _check_shapes(arrays, parameters, "the wrapped client")
            updates, row = (_flatten(arrays) - _flatten(parameters)).astype(np.float32)[None], 0
        else:
            keys, updates, replies = self.colluders.pool(parameters, config)
            row = keys.index(self.member)
            num_examples, metrics = replies[row]
        m = len(updates)
        if m < self._min_colluders:
            raise ConfigError(
                f"{self.attack} needs at least {self._min_colluders} colluders, got {m}: give the "
                "malicious clients one Colluders"
            )
        # The attacker knows the round's size (n_clients) but sees only its colluders' rows.
        ctx = RoundContext(malicious=np.arange(m), benign=np.arange(0), n_clients=self.n_clients)
        crafted = self._attack.craft_rows(updates, ctx, self._rng)[row]
        return _unflatten(_flatten(parameters) + crafted, parameters), num_examples, metrics
