"""Conformance checks for the federated kinds: aggregation rules and malicious client behaviours.

:func:`check_aggregator` and :func:`check_client_attack` run every check their
component's tags call for, on small synthetic update matrices and datasets
(milliseconds), and raise :class:`~poisonlab.checks.CheckFailed` naming the first
check that fails. Give them a registered entry, or your own rule function or
:class:`~poisonlab.federated.clients.ClientAttack` with its tags as keywords::

    from poisonlab.checks import check_aggregator
    check_aggregator(my_rule, needs_f=True, min_clients=MinClients(2, 3))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from poisonlab.checks._base import Check, expect, named, run_checks
from poisonlab.errors import ConfigError
from poisonlab.federated.aggregators import AGGREGATOR_TAGS, AggregationResult
from poisonlab.federated.clients import CLIENT_ATTACK_TAGS, ClientAttack, RoundContext
from poisonlab.registry import Entry

__all__ = [
    "check_aggregator",
    "check_client_attack",
    "yield_aggregator_checks",
    "yield_client_attack_checks",
]

# Small enough to take milliseconds, large enough for Bulyan to tolerate f = 1 (n >= 7).
_N, _D, _F = 9, 6, 1


def _updates(n: int = _N, d: int = _D, seed: int = 0, dtype: Any = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


# --------------------------------------------------------------------------- aggregators


def _rule_and_tags(
    rule: Entry[Any] | Callable[..., Any], tags: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    if isinstance(rule, Entry):
        return rule.factory, {**rule.tags, **tags}
    unknown = sorted(set(tags) - set(AGGREGATOR_TAGS))
    if unknown:
        raise ConfigError(f"aggregator tags have no {unknown[0]!r}; known: {', '.join(AGGREGATOR_TAGS)}")
    return rule, {**AGGREGATOR_TAGS, **tags}


def yield_aggregator_checks(rule: Entry[Any] | Callable[..., Any], **tags: Any) -> Iterator[Check]:
    """The checks ``rule`` (an entry of :data:`AGGREGATORS` or a rule function) must pass.

    ``tags`` override the entry's tags or, for a bare function, the defaults of
    :data:`~poisonlab.federated.aggregators.AGGREGATOR_TAGS`.
    """
    fn, t = _rule_and_tags(rule, tags)

    def call(x: np.ndarray, *, f: int = _F, server_update: np.ndarray | None = None) -> AggregationResult:
        kwargs: dict[str, Any] = {}
        if t["needs_f"]:
            kwargs["f"] = f
        if t["trims"]:
            kwargs["beta"] = 0.2
        if t["needs_server_update"]:
            kwargs["server_update"] = x.mean(axis=0) if server_update is None else server_update
        return fn(x, **kwargs)

    def output() -> None:
        for dtype in (np.float32, np.float64):
            result = call(_updates(dtype=dtype))
            expect(isinstance(result, AggregationResult), f"returned {type(result).__name__}")
            u = result.update
            expect(u.shape == (_D,), f"update has shape {u.shape} for {_N} updates of {_D}, not ({_D},)")
            expect(u.dtype == np.float32, f"update is {u.dtype} for {np.dtype(dtype)} input, not float32")
            expect(np.isfinite(u).all(), "update is not finite on finite input")

    def weights() -> None:
        x = _updates(seed=1)
        result = call(x)
        if result.weights is None:
            return
        w = result.weights
        expect(w.shape == (_N,), f"weights have shape {w.shape}, not ({_N},)")
        expect(
            np.allclose(result.update, w @ x, rtol=1e-5, atol=1e-6), "update differs from weights @ updates"
        )

    def no_mutation() -> None:
        x = _updates(seed=2)
        server = x.mean(axis=0)
        before, server_before = x.copy(), server.copy()
        call(x, server_update=server)
        expect(np.array_equal(x, before), "the rule wrote into the updates it was given")
        expect(np.array_equal(server, server_before), "the rule wrote into the server update")

    def deterministic() -> None:
        x = _updates(seed=3)
        a, b = call(x).update, call(x.copy()).update
        expect(np.array_equal(a, b), "two calls on the same updates gave different aggregates")

    def consensus() -> None:
        v = _updates(n=1, seed=4)[0]
        x = np.tile(v, (_N, 1))
        u = call(x, server_update=v.copy()).update
        expect(np.allclose(u, v, rtol=1e-6, atol=1e-7), "identical updates did not aggregate to that update")

    def symmetric() -> None:
        x = _updates(seed=5)
        order = np.random.default_rng(6).permutation(_N)
        a = call(x).update
        b = call(np.ascontiguousarray(x[order])).update
        expect(np.allclose(a, b, rtol=1e-5, atol=1e-6), "permuting the clients changed the aggregate")

    def selection() -> None:
        x = _updates(seed=7)
        result = call(x)
        sel = result.selected
        expect(sel is not None, "a rule tagged selects_clients returned selected=None")
        assert sel is not None  # for mypy: expect has just failed otherwise
        expect(sel.dtype == np.int64 and sel.ndim == 1, f"selected is {sel.dtype} of shape {sel.shape}")
        expect(
            len(sel) >= 1 and ((sel >= 0) & (sel < _N)).all(), f"selected {sel.tolist()} not in 0..{_N - 1}"
        )
        expect(len(np.unique(sel)) == len(sel), f"selected {sel.tolist()} repeats a row")
        if result.weights is not None:  # a weighted rule: the aggregate is the mean of what it kept
            mean = x[sel].astype(np.float64).mean(axis=0)
            expect(np.allclose(result.update, mean, rtol=1e-5, atol=1e-6), "update is not the selected mean")

    def refuses_f() -> None:
        need = t["min_clients"]
        bad = [n_f for n_f in range(_N) if need is not None and need(n_f) > _N] or [_N]
        for f in (bad[0], -1):
            try:
                call(_updates(seed=8), f=f)
            except ConfigError:
                continue
            expect(False, f"accepted f={f} with n={_N} clients ({need if need is not None else 'f < n'})")

    def refuses_non_finite() -> None:
        x = _updates(seed=9)
        x[2, 3] = np.nan
        try:
            call(x, server_update=np.ones(_D, dtype=np.float32))
        except ConfigError:
            return
        expect(False, "aggregated updates holding NaN without a ConfigError")

    checks: list[tuple[str, Callable[[], None]]] = [
        ("output", output),
        ("weights", weights),
        ("no_mutation", no_mutation),
        ("deterministic", deterministic),
        ("refuses_non_finite", refuses_non_finite),
    ]
    if t["keeps_consensus"]:
        checks.append(("consensus", consensus))
    if t["symmetric"]:
        checks.append(("symmetric", symmetric))
    if t["selects_clients"]:
        checks.append(("selection", selection))
    if t["needs_f"]:
        checks.append(("refuses_f", refuses_f))
    yield from named("aggregator", checks)


def check_aggregator(rule: Entry[Any] | Callable[..., Any], **tags: Any) -> list[str]:
    """Run every check of :func:`yield_aggregator_checks`; return their names, or raise CheckFailed."""
    return run_checks(yield_aggregator_checks(rule, **tags))


# --------------------------------------------------------------------------- client attacks


class _Stamp:
    """A trigger: the last pixel (image) or feature (tabular) set to 1."""

    def apply(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float32, copy=True)
        X[(slice(None),) + (-1,) * (X.ndim - 1)] = 1.0
        return X


def _attack_and_tags(
    attack: Entry[ClientAttack] | ClientAttack, tags: Mapping[str, Any]
) -> tuple[ClientAttack, dict[str, Any]]:
    if isinstance(attack, Entry):
        return attack.create(), {**attack.tags, **tags}
    unknown = sorted(set(tags) - set(CLIENT_ATTACK_TAGS))
    if unknown:
        raise ConfigError(
            f"client attack tags have no {unknown[0]!r}; known: {', '.join(CLIENT_ATTACK_TAGS)}"
        )
    parts = {"poisons_data": attack.poison_data is not None, "crafts_update": attack.craft is not None}
    return attack, {**CLIENT_ATTACK_TAGS, **parts, **tags}


def yield_client_attack_checks(attack: Entry[ClientAttack] | ClientAttack, **tags: Any) -> Iterator[Check]:
    """The checks ``attack`` (an entry of :data:`CLIENT_ATTACKS` or a ClientAttack) must pass.

    A registered entry is created with its default hyperparameters. ``tags`` override
    its tags or, for a ClientAttack, the defaults (``poisons_data`` and
    ``crafts_update`` then default to which parts it has).
    """
    spec, t = _attack_and_tags(attack, tags)
    m = max(int(t["min_colluders"]), 3)
    n_classes = 3
    image = "image" in t["modalities"]

    def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        shape = (30, 1, 8, 8) if image else (30, 5)
        return rng.random(shape).astype(np.float32), rng.integers(0, n_classes, size=30).astype(np.int64)

    def crafted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, RoundContext]:
        updates = _updates(n=10, d=7, seed=seed)
        ctx = RoundContext(malicious=np.arange(m), benign=np.arange(m, 10))
        return updates, spec.craft_rows(updates, ctx, np.random.default_rng(seed)), ctx

    def poisoned(X: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        Xp, yp = spec.poison(X, y, np.random.default_rng(seed), n_classes=n_classes, trigger=_Stamp())
        return np.asarray(Xp), np.asarray(yp)

    def tags_match_parts() -> None:
        for tag, part in (("poisons_data", spec.poison_data), ("crafts_update", spec.craft)):
            expect(bool(t[tag]) == (part is not None), f"tagged {tag}={t[tag]} but its part is {part!r}")

    def craft_rows() -> None:
        _, rows, _ = crafted()
        expect(
            rows.shape == (m, 7), f"crafted rows have shape {rows.shape} for {m} malicious of 7, not ({m}, 7)"
        )
        expect(rows.dtype == np.float32, f"crafted rows are {rows.dtype}, not float32")
        expect(np.isfinite(rows).all(), "crafted rows are not finite")

    def craft_no_write() -> None:
        updates = _updates(n=10, d=7, seed=1)
        before = updates.copy()
        spec.craft_rows(updates, RoundContext(np.arange(m), np.arange(m, 10)), np.random.default_rng(1))
        expect(np.array_equal(updates, before), "crafting wrote into the round's updates")

    def craft_deterministic() -> None:
        expect(np.array_equal(crafted(2)[1], crafted(2)[1]), "the same rng seed crafted different rows")

    def poison_shapes() -> None:
        X, y = data()
        Xp, yp = poisoned(X, y)
        expect(Xp.shape == X.shape, f"poisoned inputs have shape {Xp.shape}, not {X.shape}")
        expect(yp.shape == y.shape, f"poisoned labels have shape {yp.shape}, not {y.shape}")
        expect(yp.dtype == y.dtype, f"poisoned labels are {yp.dtype}, not {y.dtype}")
        expect(((yp >= 0) & (yp < n_classes)).all(), f"poisoned labels leave 0..{n_classes - 1}")

    def poison_no_write() -> None:
        X, y = data(1)
        X0, y0 = X.copy(), y.copy()
        poisoned(X, y)
        expect(np.array_equal(X, X0) and np.array_equal(y, y0), "poisoning wrote into the client's data")

    def poison_deterministic() -> None:
        X, y = data(2)
        (a, b), (c, d) = poisoned(X, y, 3), poisoned(X, y, 3)
        expect(np.array_equal(a, c) and np.array_equal(b, d), "the same rng seed poisoned differently")

    def backdoor() -> None:
        X, y = data(3)
        Xp, yp = poisoned(X, y)
        target = int(spec.params.get("target", 0))
        stamped = np.any((Xp != X).reshape(len(X), -1), axis=1)
        expect(stamped.any(), "a backdoor stamped no sample")
        expect((yp[stamped] == target).all(), f"stamped samples are not all relabelled to target {target}")

    def honest() -> None:
        updates, rows, ctx = crafted(4)
        expect(np.array_equal(rows, updates[ctx.malicious]), "a behaviour with no craft changed the updates")
        X, y = data(4)
        Xp, yp = poisoned(X, y)
        expect(
            np.array_equal(Xp, X) and np.array_equal(yp, y), "a behaviour with no poisoner changed the data"
        )

    checks: list[tuple[str, Callable[[], None]]] = [("tags_match_parts", tags_match_parts)]
    if t["crafts_update"]:
        checks += [("craft_rows", craft_rows), ("craft_no_write", craft_no_write)]
        checks.append(("craft_deterministic", craft_deterministic))
    if t["poisons_data"]:
        checks += [("poison_shapes", poison_shapes), ("poison_no_write", poison_no_write)]
        checks.append(("poison_deterministic", poison_deterministic))
    if t["backdoor"]:
        checks.append(("backdoor", backdoor))
    if not (t["crafts_update"] or t["poisons_data"]):
        checks.append(("honest", honest))
    yield from named("client_attack", checks)


def check_client_attack(attack: Entry[ClientAttack] | ClientAttack, **tags: Any) -> list[str]:
    """Run every check of :func:`yield_client_attack_checks`; return their names, or raise CheckFailed."""
    return run_checks(yield_client_attack_checks(attack, **tags))
