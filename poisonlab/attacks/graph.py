"""Logic corruption of knowledge-graph embeddings: add or delete facts to demote a target fact.

Every attack here aims at one fact ``(s, r, o)`` that the victim should predict (a
test fact; ``aim(fact)``), changes at most ``budget`` training facts, and is scored by
the target's filtered rank after the victim is retrained on the poisoned graph. They
read a trained embedding model (white box): one given with ``surrogate(model)``, or one
the attack trains on the clean graph with its own ``interaction``, ``dim``,
``surrogate_epochs`` and ``lr``.

Zhang, Zheng, Gao, Miao, Su, Li & Ren (IJCAI 2019), direct attacks
(:class:`DirectDeletion`, :class:`DirectAddition`): find the shift ``ε`` of each target
entity's embedding that most lowers the target's score (a step of size ``step`` against
the score's gradient), then rank candidate facts around that entity by their
*perturbation benefit*, the change of their own score when the entity moves by ``ε``.
Training on a fact pulls its entities towards making it plausible, so *adding* the
facts whose score rises most under the shift drags the entity along ``ε``, and
*deleting* existing facts whose score falls most removes what held it in place. Both
target entities are attacked; the candidates of the two are ranked together. Added
candidates are every ``(e, r', x)`` and ``(x, r', e)`` not already in the graph. Their
indirect attack (:class:`IndirectAttack`) makes the same edits around a *proxy* entity a
path of training facts away, so that no fact of the target's entities changes.

Bhardwaj, Kelleher, Costabello & O'Sullivan (ACL 2021), inference-pattern attacks
(:class:`SymmetryAttack`, :class:`InversionAttack`, :class:`CompositionAttack`): instead
of lowering the target directly, raise a *decoy* fact ``(s, r, o')`` (and ``(s', r, o)``
on the head side) above it, by adding facts from which the model infers the decoy
through a relation pattern it has learnt: symmetry ``(o', r, s)``; inversion
``(o', r⁻, s)`` with ``r⁻`` the relation whose embedding is nearest to the inverse of
``r`` under the model's algebra; composition ``(s, r₁, x)`` and ``(x, r₂, o')`` with
``r₁ ∘ r₂`` nearest to ``r`` and ``x`` the entity that makes both most plausible
(minimum t-norm of their sigmoid scores). The paper chooses decoys that the model finds
least or most plausible in different variants; here a decoy is the surrogate's
strongest false competitor of the target (its highest-scoring entity not known to hold),
so the fewest inferred points are needed to pass the target. Decoys are used in that
order, head and tail side alternating, until the budget is spent.

References
----------
H. Zhang, T. Zheng, J. Gao, C. Miao, L. Su, Y. Li, K. Ren. "Data poisoning attack
against knowledge graph embedding." IJCAI 2019.
P. Bhardwaj, J. Kelleher, L. Costabello, D. O'Sullivan. "Poisoning knowledge graph
embeddings via relation inference patterns." ACL 2021.
"""

from __future__ import annotations

import copy
import itertools
from abc import abstractmethod
from typing import Any, ClassVar, cast

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult
from poisonlab.data.graph import KnowledgeGraph
from poisonlab.errors import ConfigError, DataError

__all__ = [
    "CompositionAttack",
    "DirectAddition",
    "DirectAttack",
    "DirectDeletion",
    "GraphAttack",
    "IndirectAttack",
    "InversionAttack",
    "RandomDeletion",
    "SymmetryAttack",
    "rarer_entity",
]


class GraphAttack(Attack):
    """Base of the graph attacks: the aim, the surrogate, the budget in facts."""

    modalities: ClassVar[tuple[str, ...]] = ("graph",)
    tasks: ClassVar[tuple[str, ...]] = ("link_prediction",)
    needs_model: ClassVar[bool] = True
    targets_instance: ClassVar[bool] = True

    fact_: np.ndarray | None = None
    surrogate_: Any = None

    def __init__(
        self, *, interaction: str = "transe", dim: int = 64, surrogate_epochs: int = 100, lr: float = 0.03
    ) -> None:
        self.interaction = interaction
        self.dim = dim
        self.surrogate_epochs = surrogate_epochs
        self.lr = lr

    def aim(self, fact: np.ndarray | tuple[int, int, int]) -> GraphAttack:
        """A copy of this attack aimed at ``fact``, three indices ``(head, relation, tail)``."""
        array = np.asarray(fact)
        if array.shape != (3,) or array.dtype.kind not in "iu":
            raise DataError("the target fact must be three integer indices (head, relation, tail)")
        aimed = copy.copy(self)
        aimed.fact_ = array.astype(np.int64)
        return aimed

    def surrogate(self, model: Any) -> GraphAttack:
        """A copy of this attack that reads ``model`` (a fitted ``KGEModel``) instead of training one."""
        aimed = copy.copy(self)
        aimed.surrogate_ = model
        return aimed

    def _kge(self, random_state: int = 0) -> Any:
        """The surrogate the attack trains when it is given none (unfitted)."""
        from poisonlab.models.kge import KGEModel

        return KGEModel(
            interaction=self.interaction,
            dim=self.dim,
            epochs=self.surrogate_epochs,
            lr=self.lr,
            random_state=random_state,
        )

    def check(self, dataset: Any) -> None:
        self._kge()._check()

    def _target(self, graph: KnowledgeGraph) -> np.ndarray:
        if self.fact_ is None:
            raise ConfigError(f"attack {type(self).__name__} needs a target fact: call aim(fact) first")
        h, r, t = (int(v) for v in self.fact_)
        if not (0 <= h < graph.n_entities and 0 <= t < graph.n_entities and 0 <= r < graph.n_relations):
            raise DataError(f"the target fact {tuple(self.fact_)} lies outside {graph.name}'s vocabulary")
        if graph.contains(self.fact_[None])[0]:
            raise DataError(
                f"the target fact {graph.names(self.fact_)[0]} is a training fact of {graph.name}; "
                "aim at a fact the model must predict"
            )
        return self.fact_

    def _model(self, graph: KnowledgeGraph, rng: np.random.Generator) -> Any:
        if self.surrogate_ is not None:
            if getattr(self.surrogate_, "n_entities_", graph.n_entities) != graph.n_entities:
                raise DataError(
                    f"the surrogate was trained on {self.surrogate_.n_entities_} entities; "
                    f"{graph.name} has {graph.n_entities}"
                )
            return self.surrogate_
        return self._kge(int(rng.integers(2**31 - 1))).fit(graph)

    def _poison(self, dataset: Any, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        if not isinstance(dataset, KnowledgeGraph):
            raise DataError(f"attack {type(self).__name__} poisons a knowledge graph")
        self.check(dataset)  # parameters are checked here too: a graph attack runs outside a grid
        target = self._target(dataset)
        model = self._model(dataset, rng) if self.needs_model else None
        added, removed = self._edits(dataset, target, model, n_poison, rng)
        added = np.asarray(added, dtype=np.int64).reshape(-1, 3)
        removed = np.asarray(removed, dtype=np.int64).reshape(-1, 3)
        kept = dataset.triples[~np.isin(dataset.keys(), dataset.keys(removed))]
        poisoned = dataset.with_triples(np.concatenate([kept, added]))
        mask = np.zeros(len(poisoned), dtype=bool)
        mask[len(kept) :] = True
        # the result carries a graph where a table's attacks carry a Dataset
        return PoisonResult(cast(Any, poisoned), mask, removed=removed if len(removed) else None)

    @abstractmethod
    def _edits(
        self, graph: KnowledgeGraph, target: np.ndarray, model: Any, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Facts to add and facts to delete, together at most ``budget``."""


def rarer_entity(graph: KnowledgeGraph, fact: np.ndarray) -> int:
    """The entity of ``fact`` with fewer training facts (the head on a tie): fewer facts hold it."""
    degree = np.bincount(graph.triples[:, [0, 2]].ravel(), minlength=graph.n_entities)
    h, t = int(fact[0]), int(fact[2])
    return t if degree[t] < degree[h] else h


def _shift(model: Any, target: np.ndarray, step: float) -> dict[int, Any]:
    """Each target entity's embedding shift that most lowers the target's score (first order)."""
    import torch

    E, R = model.entity_vectors(), model.relation_vectors()
    h, r, t = (int(v) for v in target)
    head = E[h].clone().requires_grad_(True)
    tail = E[t].clone().requires_grad_(True)
    model.interact(head, R[r], tail).sum().backward()
    shifts = {}
    for entity, leaf in ((h, head), (t, tail)):
        grad = leaf.grad
        norm = torch.linalg.vector_norm(grad)
        scale = step * torch.linalg.vector_norm(E[entity])
        shifts[entity] = E[entity] - scale * grad / norm.clamp_min(1e-12)
    return shifts


def _benefit_tables(model: Any, entity: int, moved: Any) -> tuple[np.ndarray, np.ndarray]:
    """Score change of every ``(entity, r', x)`` and every ``(x, r', entity)`` when ``entity`` moves."""
    import torch

    E, R = model.entity_vectors(), model.relation_vectors()
    with torch.no_grad():
        r_ax, x_ax = R[:, None, :], E[None, :, :]
        as_head = model.interact(moved[None, None, :], r_ax, x_ax) - model.interact(
            E[entity][None, None, :], r_ax, x_ax
        )
        as_tail = model.interact(x_ax, r_ax, moved[None, None, :]) - model.interact(
            x_ax, r_ax, E[entity][None, None, :]
        )
    return as_head.double().numpy(), as_tail.double().numpy()


def _around(graph: KnowledgeGraph, model: Any, entity: int, moved: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every fact ``(entity, r', x)`` and ``(x, r', entity)``, and its score change when ``entity`` moves."""
    as_head, as_tail = _benefit_tables(model, entity, moved)
    grid = np.meshgrid(np.arange(graph.n_relations), np.arange(graph.n_entities), indexing="ij")
    rel, other = grid[0].ravel(), grid[1].ravel()
    facts = np.concatenate(
        [
            np.stack([np.full_like(rel, entity), rel, other], 1),
            np.stack([other, rel, np.full_like(rel, entity)], 1),
        ]
    )
    return facts, np.concatenate([as_head.ravel(), as_tail.ravel()])


def _rank_edits(
    candidates: np.ndarray, gain: np.ndarray, present: np.ndarray, budget: int, *, deletes: bool, adds: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The ``budget`` most beneficial edits: facts to add, facts to delete."""
    # to first order, deleting a fact removes its pull on the entity, adding one puts it there
    benefit = np.where(present, -gain, gain)
    allowed = np.flatnonzero((present & deletes) | (~present & adds))
    chosen = allowed[np.argsort(-benefit[allowed], kind="stable")][:budget]
    return candidates[chosen[~present[chosen]]], candidates[chosen[present[chosen]]]


def _first_readings(keys: np.ndarray) -> np.ndarray:
    """A mask keeping the first of equal fact keys (a candidate listed twice is ranked once)."""
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(keys), dtype=bool)
    keep[first] = True
    return keep


def _check_step(step: Any) -> None:
    """The embedding shift's relative size: a positive finite number."""
    if isinstance(step, bool) or not (isinstance(step, int | float) and 0 < step < np.inf):
        raise ConfigError(f"step must be a positive number, got {step!r}")


class _Direct(GraphAttack):
    """The direct attacks: one benefit ranking, over deletions, additions or both."""

    #: Whether the attack deletes present facts and adds absent ones.
    deletes: ClassVar[bool] = True
    adds: ClassVar[bool] = True

    def __init__(
        self,
        *,
        step: float = 0.1,
        entity: str = "rarer",
        interaction: str = "transe",
        dim: int = 64,
        surrogate_epochs: int = 100,
        lr: float = 0.03,
    ) -> None:
        super().__init__(interaction=interaction, dim=dim, surrogate_epochs=surrogate_epochs, lr=lr)
        self.step = step
        self.entity = entity

    def check(self, dataset: Any) -> None:
        super().check(dataset)
        _check_step(self.step)
        if self.entity not in ("rarer", "both"):
            raise ConfigError(f"entity must be 'rarer' or 'both', got {self.entity!r}")

    def _candidates(
        self, graph: KnowledgeGraph, target: np.ndarray, model: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every fact around the attacked entity, with its perturbation benefit (score rise under ε)."""
        shifts = _shift(model, target, float(self.step))
        if self.entity == "rarer":
            rarer = rarer_entity(graph, target)
            shifts = {rarer: shifts[rarer]}
        facts, gains = zip(
            *(_around(graph, model, entity, moved) for entity, moved in shifts.items()), strict=True
        )
        candidates, gain = np.concatenate(facts), np.concatenate(gains)
        keys = graph.keys(candidates)
        # a fact around both entities: its first reading
        keep = _first_readings(keys) & (keys != graph.keys(target[None])[0])
        return candidates[keep], gain[keep]

    def _edits(
        self, graph: KnowledgeGraph, target: np.ndarray, model: Any, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        candidates, gain = self._candidates(graph, target, model)
        present = graph.contains(candidates)
        return _rank_edits(candidates, gain, present, budget, deletes=self.deletes, adds=self.adds)


class DirectDeletion(_Direct):
    """Delete the facts around the target's entity that most hold it in place (Zhang et al. 2019).

    Parameters
    ----------
    step : float
        Size of the embedding shift, relative to the entity embedding's norm.
    entity : {"rarer", "both"}
        Attack the target entity with fewer training facts (fewer facts hold it in
        place), or both entities with their candidates ranked together.
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """

    adds = False


class DirectAddition(_Direct):
    """Add the false facts around the target's entity that most drag it along ε (Zhang et al. 2019).

    Parameters
    ----------
    step : float
        Size of the embedding shift, relative to the entity embedding's norm.
    entity : {"rarer", "both"}
        Attack the target entity with fewer training facts (fewer facts hold it in
        place), or both entities with their candidates ranked together.
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """

    deletes = False


class DirectAttack(_Direct):
    """Delete and add facts around the target's entity, ranked together by benefit (Zhang et al. 2019).

    To first order, deleting a fact takes its pull on the entity's embedding away and
    adding one puts a pull there, so both kinds of change are ranked on one scale: a
    present fact by how far its score falls under the shift, an absent one by how far
    its score rises.

    Parameters
    ----------
    step : float
        Size of the embedding shift, relative to the entity embedding's norm.
    entity : {"rarer", "both"}
        Attack the target entity with fewer training facts, or both entities.
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """


def _drag(model: Any, linking: np.ndarray, leader: int, moved: Any, follower: int, step: float) -> Any:
    """Where ``follower`` should move so that the facts ``linking`` it to ``leader`` follow the leader's move.

    The follower's pull from those facts is the gradient of their summed scores with
    respect to it; the leader's move changes that pull, and the follower shifts by
    ``step`` (relative to its norm) along the change: where training would carry it
    once the leader stands at ``moved``.
    """
    import torch

    E, R = model.entity_vectors(), model.relation_vectors()

    def pull(leader_vector: Any) -> Any:
        leaf = E[follower].clone().requires_grad_(True)
        scores = [
            model.interact(
                leader_vector if h == leader else leaf, R[r], leader_vector if t == leader else leaf
            )
            for h, r, t in linking.tolist()
        ]
        torch.stack([v.sum() for v in scores]).sum().backward()
        return leaf.grad

    change = pull(moved) - pull(E[leader])
    scale = step * torch.linalg.vector_norm(E[follower])
    return E[follower] + scale * change / torch.linalg.vector_norm(change).clamp_min(1e-12)


class IndirectAttack(GraphAttack):
    """Demote the target through a neighbour: edit only facts that do not touch it (Zhang et al. 2019).

    The indirect attack of Zhang et al. never changes a fact that involves the target's
    entities. It finds the shift ``ε`` of the target entity that most lowers the target's
    score (as the direct attacks do), then follows a path of ``hops`` training facts
    away from that entity to a *proxy* entity. Along the path, each entity's desired
    shift follows the previous one's: a step of relative size ``step`` along the change
    that the previous entity's move makes to the pull of the facts linking the two (see
    :func:`_drag`; the same coupling then lets training on those facts drag the target
    entity after the proxy). The proxy is then attacked
    as the direct attack attacks an entity: the facts around it are ranked by
    perturbation benefit under its desired shift, and the best ``budget`` deletions
    and additions (``kg_direct``'s joint ranking) are made, leaving out every fact that
    involves the target's entities or links the path.

    The path is the one whose pull reaches the target entity most strongly: the product,
    over its links, of the share of the nearer entity's training facts that link it to
    the next (an entity held by few facts follows each of them more); among equals,
    the proxy with the fewest facts, which ``budget`` edits move furthest.

    Parameters
    ----------
    hops : int
        Length of the path from the target entity to the proxy (1: a neighbour; 2: a
        neighbour's neighbour).
    step : float
        Size of each embedding shift, relative to the entity embedding's norm.
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """

    def __init__(
        self,
        *,
        hops: int = 1,
        step: float = 0.1,
        interaction: str = "transe",
        dim: int = 64,
        surrogate_epochs: int = 100,
        lr: float = 0.03,
    ) -> None:
        super().__init__(interaction=interaction, dim=dim, surrogate_epochs=surrogate_epochs, lr=lr)
        self.hops = hops
        self.step = step

    def check(self, dataset: Any) -> None:
        super().check(dataset)
        if isinstance(self.hops, bool) or self.hops not in (1, 2):
            raise ConfigError(f"hops must be 1 or 2, got {self.hops!r}")
        _check_step(self.step)

    def path(self, graph: KnowledgeGraph, target: np.ndarray) -> list[int]:
        """The entities from the target's rarer entity to the proxy (``hops + 1`` of them)."""
        start = rarer_entity(graph, target)
        ends = {int(target[0]), int(target[2])}
        triples = graph.triples
        degree = np.bincount(triples[:, [0, 2]].ravel(), minlength=graph.n_entities)

        def links(entity: int) -> dict[int, int]:
            """Facts linking ``entity`` to each neighbour (a fact with itself at both ends excluded)."""
            rows = triples[(triples[:, 0] == entity) ^ (triples[:, 2] == entity)]
            others = np.where(rows[:, 0] == entity, rows[:, 2], rows[:, 0])
            values, counts = np.unique(others, return_counts=True)
            return dict(zip(values.tolist(), counts.tolist(), strict=True))

        frontier = [([start], 1.0)]
        for _ in range(self.hops):
            grown = []
            for walk, pull in frontier:
                for other, n in links(walk[-1]).items():
                    if other in ends or other in walk:
                        continue
                    grown.append(([*walk, other], pull * n / degree[walk[-1]]))
            frontier = grown
        paths = [(-pull, int(degree[walk[-1]]), walk) for walk, pull in frontier]
        if not paths:
            raise DataError(
                f"the target fact {graph.names(target[None])[0]} has no path of {self.hops} training "
                f"fact{'s' if self.hops > 1 else ''} away from its entities: nothing to attack indirectly"
            )
        return min(paths, key=lambda item: (item[0], item[1]))[2]

    def _edits(
        self, graph: KnowledgeGraph, target: np.ndarray, model: Any, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        walk = self.path(graph, target)
        triples = graph.triples
        moved = _shift(model, target, float(self.step))[walk[0]]
        linking = []
        for leader, follower in itertools.pairwise(walk):
            rows = triples[
                ((triples[:, 0] == leader) & (triples[:, 2] == follower))
                | ((triples[:, 0] == follower) & (triples[:, 2] == leader))
            ]
            linking.append(rows)
            moved = _drag(model, rows, leader, moved, follower, float(self.step))
        candidates, gain = _around(graph, model, walk[-1], moved)
        keys = graph.keys(candidates)
        untouchable = np.isin(candidates[:, [0, 2]], [int(target[0]), int(target[2])]).any(axis=1)
        untouchable |= np.isin(keys, graph.keys(np.concatenate(linking)))
        keep = _first_readings(keys) & ~untouchable  # a fact with the proxy at both ends: once
        candidates, gain = candidates[keep], gain[keep]
        return _rank_edits(candidates, gain, graph.contains(candidates), budget, deletes=True, adds=True)


class RandomDeletion(GraphAttack):
    """Delete ``budget`` random training facts around the target's rarer entity: the baseline.

    The entity is the one the direct attacks perturb by default (:func:`rarer_entity`),
    so a targeted attack's effect can be told from what any ``budget`` deletions
    around that entity do. It reads no model.
    """

    needs_model: ClassVar[bool] = False

    def __init__(self) -> None:  # no surrogate: none of the model parameters apply
        super().__init__()

    def check(self, dataset: Any) -> None:
        """Nothing to check: the attack takes no parameters and reads no model."""

    def _edits(
        self, graph: KnowledgeGraph, target: np.ndarray, model: Any, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        entity = rarer_entity(graph, target)
        around = np.flatnonzero((graph.triples[:, 0] == entity) | (graph.triples[:, 2] == entity))
        drop = rng.choice(around, size=min(budget, around.size), replace=False)
        return np.zeros((0, 3), dtype=np.int64), graph.triples[np.sort(drop)]


class _Pattern(GraphAttack):
    """Decoys and the budget loop shared by the inference-pattern attacks."""

    #: Facts each decoy costs.
    cost: ClassVar[int] = 1

    def _edits(
        self, graph: KnowledgeGraph, target: np.ndarray, model: Any, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        s, r, o = (int(v) for v in target)
        known = graph.keys()
        sides = []
        for side, scores in (
            ("tail", model.tail_scores(np.array([[s, r]]))[0]),
            ("head", model.head_scores(np.array([[r, o]]))[0]),
        ):
            candidates = np.arange(graph.n_entities)
            facts = (
                np.stack([np.full_like(candidates, s), np.full_like(candidates, r), candidates], 1)
                if side == "tail"
                else np.stack([candidates, np.full_like(candidates, r), np.full_like(candidates, o)], 1)
            )
            false = ~np.isin(graph.keys(facts), known) & (candidates != (o if side == "tail" else s))
            order = np.argsort(-scores, kind="stable")
            sides.append([(side, int(c)) for c in order if false[c]])
        added: list[np.ndarray] = []
        seen = set(known.tolist())
        for pair in zip(*sides, strict=False):
            for side, decoy in pair:
                fact = (s, r, decoy) if side == "tail" else (decoy, r, o)
                edits = [
                    e for e in self._infer(graph, model, fact) if graph.keys(np.array(e)[None])[0] not in seen
                ]
                if not edits or len(added) + len(edits) > budget:
                    continue
                for e in edits:
                    seen.add(int(graph.keys(np.array(e)[None])[0]))
                added.extend(np.array(e, dtype=np.int64) for e in edits)
            if len(added) + self.cost > budget:
                break
        return np.array(added, dtype=np.int64).reshape(-1, 3), np.zeros((0, 3), dtype=np.int64)

    @abstractmethod
    def _infer(
        self, graph: KnowledgeGraph, model: Any, decoy: tuple[int, int, int]
    ) -> list[tuple[int, int, int]]:
        """The facts from which the model would infer ``decoy``."""


def _relation_distance(model: Any, r: int) -> np.ndarray:
    """Distance of every relation to the inverse of ``r`` under the model's algebra."""
    import torch

    R = model.relation_vectors()
    interaction = model.interaction
    with torch.no_grad():
        if interaction == "transe":
            d = torch.linalg.vector_norm(R + R[r], dim=-1)
        elif interaction == "complex":
            d = torch.linalg.vector_norm(R - torch.conj(R[r]), dim=-1)
        else:  # DistMult is symmetric: a relation is its own inverse, so the nearest other one
            d = torch.linalg.vector_norm(R - R[r], dim=-1)
    return d.double().numpy()


class SymmetryAttack(_Pattern):
    """Add ``(o', r, s)`` so a model that learnt ``r`` as symmetric infers the decoy (Bhardwaj et al. 2021).

    Parameters
    ----------
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """

    def _infer(
        self, graph: KnowledgeGraph, model: Any, decoy: tuple[int, int, int]
    ) -> list[tuple[int, int, int]]:
        s, r, o = decoy
        return [(o, r, s)]


class InversionAttack(_Pattern):
    """Add ``(o', r⁻, s)`` with ``r⁻`` the relation nearest the inverse of ``r`` (Bhardwaj et al. 2021).

    Parameters
    ----------
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """

    def _infer(
        self, graph: KnowledgeGraph, model: Any, decoy: tuple[int, int, int]
    ) -> list[tuple[int, int, int]]:
        s, r, o = decoy
        distance = _relation_distance(model, r)
        distance[r] = np.inf
        return [(o, int(np.argmin(distance)), s)]


class CompositionAttack(_Pattern):
    """Add ``(s, r₁, x)`` and ``(x, r₂, o')`` with ``r₁ ∘ r₂`` nearest ``r`` (Bhardwaj et al. 2021).

    Parameters
    ----------
    interaction, dim, surrogate_epochs, lr
        The surrogate the attack trains when none is given (``KGEModel``'s parameters).
    """

    cost = 2

    def _infer(
        self, graph: KnowledgeGraph, model: Any, decoy: tuple[int, int, int]
    ) -> list[tuple[int, int, int]]:
        import torch

        s, r, o = decoy
        R = model.relation_vectors()
        with torch.no_grad():
            pairs = (
                R[:, None, :] + R[None, :, :]
                if model.interaction == "transe"
                else R[:, None, :] * R[None, :, :]
            )
            distance = torch.linalg.vector_norm(pairs - R[r], dim=-1).double().numpy()
        distance[r, :] = np.inf  # r itself is not a composition of r with another relation
        distance[:, r] = np.inf
        r1, r2 = np.unravel_index(int(np.argmin(distance)), distance.shape)
        first = model.tail_scores(np.array([[s, r1]]))[0]
        second = model.head_scores(np.array([[r2, o]]))[0]
        plausible = np.minimum(1 / (1 + np.exp(-first)), 1 / (1 + np.exp(-second)))
        plausible[[s, o]] = -np.inf
        x = int(np.argmax(plausible))
        return [(s, int(r1), x), (x, int(r2), o)]
