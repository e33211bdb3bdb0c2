"""The Flower integration, checked against Flower's own types and aggregation functions."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    # typer 0.20, which flwr imports, reads click.utils names that click 8.5 deprecates; the
    # warning fires once, at import, and is not poisonlab's (nor flwr's) to fix.
    warnings.filterwarnings(
        "ignore", message=r"'click\.utils\.\w+' is deprecated", category=DeprecationWarning
    )
    from flwr.client import NumPyClient
    from flwr.common import (
        Code,
        EvaluateRes,
        FitIns,
        FitRes,
        NDArrays,
        Scalar,
        Status,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.client_proxy import ClientProxy
    from flwr.server.strategy import FedAvg
    from flwr.server.strategy.aggregate import aggregate_krum

    from poisonlab.errors import ConfigError, UnknownNameError
    from poisonlab.federated.clients import alie_z
    from poisonlab.federated.flower import Colluders, MaliciousNumPyClient, PoisonlabStrategy

SHAPES = [(3, 4), (4,)]


class Proxy(ClientProxy):
    """A ClientProxy stand-in: only the cid matters to aggregate_fit."""

    def get_properties(self, ins, timeout, group_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def get_parameters(self, ins, timeout, group_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def fit(self, ins, timeout, group_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def evaluate(self, ins, timeout, group_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def reconnect(self, ins, timeout, group_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def model(rng: np.random.Generator, scale: float = 1.0) -> NDArrays:
    return [(scale * rng.standard_normal(s)).astype(np.float32) for s in SHAPES]


def fit_results(clients: list[NDArrays], num_examples: list[int] | None = None) -> list[tuple[Proxy, FitRes]]:
    counts = num_examples or [10] * len(clients)
    return [
        (Proxy(f"c{i}"), FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(p), k, {}))
        for i, (p, k) in enumerate(zip(clients, counts, strict=True))
    ]


def start_round(strategy: PoisonlabStrategy, global_model: NDArrays, n_clients: int) -> None:
    """Flower's own round start: configure_fit samples from a client manager and records the model."""
    manager = SimpleClientManager()
    for i in range(n_clients):
        manager.register(Proxy(f"c{i}"))
    strategy.configure_fit(1, ndarrays_to_parameters(global_model), manager)


def honest_clients(rng: np.random.Generator, global_model: NDArrays, n: int) -> list[NDArrays]:
    return [
        [g + 0.01 * rng.standard_normal(g.shape).astype(np.float32) for g in global_model] for _ in range(n)
    ]


def test_fedavg_equals_flowers_fedavg_with_equal_counts() -> None:
    rng = np.random.default_rng(0)
    global_model = model(rng)
    results = fit_results(honest_clients(rng, global_model, 5))
    ours = PoisonlabStrategy(aggregator="fedavg")
    start_round(ours, global_model, 5)
    params, metrics = ours.aggregate_fit(1, results, [])
    theirs, _ = FedAvg().aggregate_fit(1, results, [])
    assert params is not None and theirs is not None
    for a, b in zip(parameters_to_ndarrays(params), parameters_to_ndarrays(theirs), strict=True):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert metrics["selected"] == 5 and metrics["n_updates"] == 5


def test_weight_by_examples_matches_flowers_weighted_mean() -> None:
    rng = np.random.default_rng(1)
    global_model = model(rng)
    results = fit_results(honest_clients(rng, global_model, 4), [1, 2, 3, 100])
    ours = PoisonlabStrategy(aggregator="fedavg", weight_by_examples=True)
    start_round(ours, global_model, 4)
    params, _ = ours.aggregate_fit(1, results, [])
    theirs, _ = FedAvg().aggregate_fit(1, results, [])
    assert params is not None and theirs is not None
    for a, b in zip(parameters_to_ndarrays(params), parameters_to_ndarrays(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_reported_example_counts_buy_no_weight_by_default() -> None:
    rng = np.random.default_rng(8)
    global_model = model(rng)
    clients = honest_clients(rng, global_model, 4)
    liar = [g + 1.0 for g in global_model]  # claims a million examples
    results = fit_results([*clients, liar], [10, 10, 10, 10, 1_000_000])
    strategy = PoisonlabStrategy(aggregator="fedavg")
    start_round(strategy, global_model, 5)
    params, _ = strategy.aggregate_fit(1, results, [])
    assert params is not None
    # the plain mean: the liar moves the model by 1/5 of its step, not by almost all of it
    for a, g, *cs in zip(parameters_to_ndarrays(params), global_model, *clients, strict=True):
        np.testing.assert_allclose(a, (sum(cs) + g + 1.0) / 5, rtol=0, atol=1e-5)
    weighted, _ = FedAvg().aggregate_fit(1, results, [])  # Flower's own FedAvg trusts the count
    assert weighted is not None
    for a, g in zip(parameters_to_ndarrays(weighted), global_model, strict=True):
        assert np.abs(a - (g + 1.0)).max() < 1e-3


def test_evaluation_losses_are_not_weighted_by_reported_counts() -> None:
    losses, counts = [0.30, 0.32, 0.34, 0.31, 50.0], [10, 10, 10, 10, 1_000_000]
    status = Status(code=Code.OK, message="")
    results = [
        (Proxy(str(i)), EvaluateRes(status=status, loss=loss, num_examples=n, metrics={}))
        for i, (loss, n) in enumerate(zip(losses, counts, strict=True))
    ]
    loss, _ = PoisonlabStrategy(aggregator="median").aggregate_evaluate(1, results, [])
    assert loss == pytest.approx(0.32)  # the median: the liar's loss and count decide nothing
    weighted, _ = FedAvg().aggregate_evaluate(1, results, [])  # Flower's own follows the liar
    assert weighted is not None and weighted > 49.0
    trusting = PoisonlabStrategy(aggregator="fedavg", weight_by_examples=True)
    assert trusting.aggregate_evaluate(1, results, [])[0] == pytest.approx(weighted)


@pytest.mark.parametrize("attack", ["huge", "sign_flip"])
def test_krum_keeps_an_honest_client_and_drops_the_attackers(attack: str) -> None:
    rng = np.random.default_rng(2)
    global_model = model(rng)
    clients = honest_clients(rng, global_model, 5)
    malicious = (
        [[g + 1e3 for g in global_model]] * 2
        if attack == "huge"
        else [[g - 4 * (c - g) for g, c in zip(global_model, clients[i], strict=True)] for i in (0, 1)]
    )
    results = fit_results(clients + malicious)  # c5, c6 are the attackers
    strategy = PoisonlabStrategy(aggregator="krum", aggregator_params={"f": 2}, min_fit_clients=7)
    start_round(strategy, global_model, 7)
    params, metrics = strategy.aggregate_fit(1, results, [])
    assert params is not None
    assert metrics["selected"] == 1
    kept = int(str(metrics["selected_cids"]).removeprefix("c"))
    assert kept < 5
    for a, b in zip(parameters_to_ndarrays(params), clients[kept], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)

    multi = PoisonlabStrategy(aggregator="multi_krum", aggregator_params={"f": 2}, min_fit_clients=7)
    start_round(multi, global_model, 7)
    _, metrics = multi.aggregate_fit(1, results, [])
    assert sorted(str(metrics["selected_cids"]).split(",")) == [f"c{i}" for i in range(5)]


def test_preconditions_and_bad_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"min_fit_clients=5 is too few: krum needs n >= 2f \+ 3"):
        PoisonlabStrategy(aggregator="krum", aggregator_params={"f": 2}, min_fit_clients=5)
    with pytest.raises(ConfigError, match=r"missing \['f'\]"):
        PoisonlabStrategy(aggregator="krum", min_fit_clients=7)
    with pytest.raises(ConfigError, match=r"unknown \['g'\]"):
        PoisonlabStrategy(aggregator="median", aggregator_params={"g": 1})
    with pytest.raises(ConfigError, match="fedavg only"):
        PoisonlabStrategy(
            aggregator="krum", aggregator_params={"f": 0}, min_fit_clients=3, weight_by_examples=True
        )
    with pytest.raises(ConfigError, match="server_update_fn"):
        PoisonlabStrategy(aggregator="fltrust")
    with pytest.raises(UnknownNameError):
        PoisonlabStrategy(aggregator="krumm")

    rng = np.random.default_rng(3)
    global_model = model(rng)
    strategy = PoisonlabStrategy(aggregator="krum", aggregator_params={"f": 2}, min_fit_clients=7)
    results = fit_results(honest_clients(rng, global_model, 6))  # one client of 7 failed
    with pytest.raises(ConfigError, match="configure_fit first"):
        strategy.aggregate_fit(1, results, [])
    start_round(strategy, global_model, 7)
    with pytest.raises(
        ConfigError, match=r"round 1: 6 usable updates \(0 rejected, 1 failures\): krum needs"
    ):
        strategy.aggregate_fit(1, results, [RuntimeError("lost")])


def test_malformed_and_non_finite_updates_are_rejected_not_fatal() -> None:
    rng = np.random.default_rng(6)
    global_model = model(rng)
    clients = honest_clients(rng, global_model, 7)
    nan = [g.copy() for g in global_model]
    nan[1][2] = np.nan
    transposed = [global_model[0].T.copy(), global_model[1]]
    overflowing = [g.astype(np.float64) + 1e300 for g in global_model]  # inf once a float32 update
    results = fit_results([*clients, nan, transposed, overflowing])
    strategy = PoisonlabStrategy(aggregator="krum", aggregator_params={"f": 2}, min_fit_clients=7)
    start_round(strategy, global_model, 10)
    params, metrics = strategy.aggregate_fit(1, results, [])
    assert params is not None
    assert metrics["rejected"] == 3 and metrics["rejected_cids"] == "c7,c8,c9" and metrics["n_updates"] == 7
    kept = int(str(metrics["selected_cids"]).removeprefix("c"))
    for a, b in zip(parameters_to_ndarrays(params), clients[kept], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match=r"round 1: 5 usable updates \(3 rejected, 0 failures\)"):
        strategy.aggregate_fit(1, results[2:], [])


def test_selection_agrees_with_flowers_aggregate_krum() -> None:
    rng = np.random.default_rng(4)
    global_model = model(rng)
    # Clients at different distances from the bulk, so that the scores have no ties.
    clients = [
        [g + s * rng.standard_normal(g.shape).astype(np.float32) for g in global_model]
        for s in np.linspace(0.01, 1.0, 9)
    ]
    results = fit_results(clients)
    flower_input = [(c, 10) for c in clients]

    strategy = PoisonlabStrategy(aggregator="krum", aggregator_params={"f": 2}, min_fit_clients=9)
    start_round(strategy, global_model, 9)
    params, metrics = strategy.aggregate_fit(1, results, [])
    assert params is not None
    flower_choice = aggregate_krum(flower_input, num_malicious=2, to_keep=0)
    index = [i for i, c in enumerate(clients) if all(map(np.array_equal, c, flower_choice))]
    assert metrics["selected_cids"] == f"c{index[0]}" and len(index) == 1
    for a, b in zip(parameters_to_ndarrays(params), flower_choice, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)

    multi = PoisonlabStrategy(aggregator="multi_krum", aggregator_params={"f": 2, "m": 4}, min_fit_clients=9)
    start_round(multi, global_model, 9)
    params, _ = multi.aggregate_fit(1, results, [])
    assert params is not None
    for a, b in zip(parameters_to_ndarrays(params), aggregate_krum(flower_input, 2, to_keep=4), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


class Honest(NumPyClient):
    """Local training stand-in: adds a fixed step to the received parameters."""

    def __init__(self, step: NDArrays, num_examples: int = 7) -> None:
        self.step, self.num_examples, self.fits = step, num_examples, 0

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        self.fits += 1
        return [p + s for p, s in zip(parameters, self.step, strict=True)], self.num_examples, {"loss": 0.5}


@pytest.mark.parametrize(
    ("attack", "params", "factor"),
    [("sign_flip", {"scale": 4.0}, -4.0), ("ipm", {"epsilon": 0.5}, -0.5), ("scaling", {}, 8.0)],
)
def test_model_poisoning_client_sends_global_plus_factor_times_its_update(
    attack: str, params: dict[str, float], factor: float
) -> None:
    # Dyadic values: every step of the arithmetic is exact, so the comparison can be too.
    global_model = [np.arange(12, dtype=np.float32).reshape(3, 4) / 4, np.full(4, -1.5, np.float32)]
    step = [np.full((3, 4), 0.125, np.float32), np.array([0.5, -0.25, 1.0, 0.0], np.float32)]
    # scaling's default boost is n/m = 8/1 (Bagdasaryan et al.'s model replacement).
    client = MaliciousNumPyClient(Honest(step), attack, attack_params=params, n_clients=8)
    reply = client.to_client().fit(FitIns(ndarrays_to_parameters(global_model), {}))  # Flower's own wrapper
    sent = parameters_to_ndarrays(reply.parameters)
    for s, g, u in zip(sent, global_model, step, strict=True):
        assert s.dtype == np.float32
        np.testing.assert_array_equal(s, g + factor * u)
    assert reply.num_examples == 7 and reply.metrics == {"loss": 0.5}


def test_gaussian_client_is_seeded() -> None:
    global_model = [np.zeros(s, np.float32) for s in SHAPES]
    step = [np.ones(s, np.float32) for s in SHAPES]
    sent = [
        MaliciousNumPyClient(Honest(step), "gaussian", attack_params={"sigma": 2.0}, random_state=seed).fit(
            global_model, {}
        )[0]
        for seed in (0, 0, 1)
    ]
    flat = [np.concatenate([a.ravel() for a in s]) for s in sent]
    np.testing.assert_array_equal(flat[0], flat[1])
    assert not np.array_equal(flat[0], flat[2])
    assert 1.0 < flat[0].std() < 3.0  # N(0, 2²) noise, not the honest step


def test_fltrust_gives_no_weight_to_updates_against_the_server_update() -> None:
    rng = np.random.default_rng(7)
    global_model = model(rng)
    direction = model(rng, 0.1)
    clients = [
        [
            g + d + 0.01 * rng.standard_normal(g.shape).astype(np.float32)
            for g, d in zip(global_model, direction, strict=True)
        ]
        for _ in range(4)
    ]
    flipped = [[g - 4 * d for g, d in zip(global_model, direction, strict=True)]] * 2
    strategy = PoisonlabStrategy(
        aggregator="fltrust", server_update_fn=lambda g: [a + d for a, d in zip(g, direction, strict=True)]
    )
    start_round(strategy, global_model, 6)
    params, metrics = strategy.aggregate_fit(1, fit_results(clients + flipped), [])
    assert params is not None
    assert metrics["selected_cids"] == "c0,c1,c2,c3"
    moved = np.concatenate(
        [(a - g).ravel() for a, g in zip(parameters_to_ndarrays(params), global_model, strict=True)]
    )
    target = np.concatenate([d.ravel() for d in direction])
    assert moved @ target / (np.linalg.norm(moved) * np.linalg.norm(target)) > 0.99


def test_alie_colluders_share_one_crafted_update_from_their_pooled_updates() -> None:
    rng = np.random.default_rng(5)
    global_model = model(rng)
    steps = [model(rng, 0.1) for _ in range(3)]
    honest = [Honest(s) for s in steps]
    colluders = Colluders()
    clients = [
        MaliciousNumPyClient(h, "alie", colluders=colluders, member=i, n_clients=10)
        for i, h in enumerate(honest)
    ]
    sent = [np.concatenate([a.ravel() for a in c.fit(global_model, {})[0]]) for c in clients]
    flat_steps = np.array([np.concatenate([a.ravel() for a in s]) for s in steps], dtype=np.float64)
    expected = (
        np.concatenate([g.ravel() for g in global_model])
        + flat_steps.mean(axis=0)
        + alie_z(10, 3) * flat_steps.std(axis=0)
    )
    for s in sent:
        np.testing.assert_allclose(s, expected, rtol=0, atol=1e-6)
    assert [h.fits for h in honest] == [1, 1, 1]  # one honest training per member per round


def test_malicious_client_rejects_what_it_cannot_do() -> None:
    honest = Honest([np.zeros(s, np.float32) for s in SHAPES])
    with pytest.raises(ConfigError, match="poisons data"):
        MaliciousNumPyClient(honest, "label_flip")
    with pytest.raises(ConfigError, match="knowledge can only be 'own'"):
        MaliciousNumPyClient(honest, "ipm", attack_params={"knowledge": "full"})
    with pytest.raises(ConfigError, match="needs n_clients"):
        MaliciousNumPyClient(honest, "scaling")
    with pytest.raises(ConfigError, match="at least 2 colluders"):
        MaliciousNumPyClient(honest, "alie", n_clients=10).fit([np.zeros(s, np.float32) for s in SHAPES], {})


def test_missing_flwr_raises_a_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flwr.client", None)  # None in sys.modules: "not installed"
    monkeypatch.delitem(sys.modules, "poisonlab.federated.flower")
    with pytest.raises(ConfigError) as err:
        importlib.import_module("poisonlab.federated.flower")
    assert str(err.value) == "the Flower integration needs flwr: pip install 'poisonlab[flower]'"
