"""Knowledge-graph embedding models: PyKEEN's interaction models, trained and ranked here.

The victims of the graph attacks (:mod:`poisonlab.attacks.graph`) are PyKEEN's own
models: TransE (Bordes et al. 2013), DistMult (Yang et al. 2015) and ComplEx (Trouillon
et al. 2016), built from PyKEEN's classes with their constraints and initialisers.
poisonlab trains them with one full-batch 1-N loop (every ``(head, relation)`` pair
scored against all tails and every ``(relation, tail)`` pair against all heads, binary
cross-entropy, Adam): on the small benchmark graphs that is a second or so per hundred
epochs on a laptop CPU, where PyKEEN's mini-batch loops spend most of their time in
Python. ``pip install 'poisonlab[kg]'``.

Evaluation is the field's filtered ranking (Bordes et al. 2013): the rank of the true
tail among all entities, other known facts left out, and likewise for the head; a tie
counts half (the "realistic" rank). MRR is the mean of ``1/rank`` over both sides,
Hits@k the share of ranks ``≤ k``.

References
----------
A. Bordes, N. Usunier, A. Garcia-Durán, J. Weston, O. Yakhnenko. "Translating
embeddings for modeling multi-relational data." NeurIPS 2013.
B. Yang, W. Yih, X. He, J. Gao, L. Deng. "Embedding entities and relations for learning
and inference in knowledge bases." ICLR 2015.
T. Trouillon, J. Welbl, S. Riedel, É. Gaussier, G. Bouchard. "Complex embeddings for
simple link prediction." ICML 2016.
M. Ali, M. Berrendorf, C. T. Hoyt, et al. "PyKEEN 1.0: a Python library for training
and evaluating knowledge graph embeddings." JMLR 22(82), 2021.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from poisonlab.data.graph import KnowledgeGraph
from poisonlab.errors import ConfigError, NotFittedError

__all__ = ["INTERACTIONS", "KGEModel", "filtered_ranks", "link_metrics"]

#: poisonlab name → PyKEEN model class name, and the keywords poisonlab changes from PyKEEN's
#: defaults. DistMult's unit-norm entities and L2 penalty on relations suit PyKEEN's margin
#: loss; under the 1-N loss they keep every logit near zero (UMLS test MRR 0.12 after 100
#: epochs), and without them it reaches 0.70.
INTERACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "transe": ("TransE", {}),
    "distmult": ("DistMult", {"regularizer": None, "entity_constrainer": None}),
    "complex": ("ComplEx", {}),
}


def _pykeen_models() -> Any:
    try:
        import pykeen.models
    except ImportError:
        raise ConfigError("knowledge-graph models need PyKEEN: pip install 'poisonlab[kg]'") from None
    return pykeen.models


class KGEModel:
    """One PyKEEN interaction model, trained on a :class:`KnowledgeGraph`.

    Parameters
    ----------
    interaction : {"transe", "distmult", "complex"}
        PyKEEN's model class.
    dim : int
        Embedding size (ComplEx's is complex, so it holds ``2·dim`` reals).
    epochs, lr : int, float
        Full-batch Adam steps and their rate.
    random_state : int
        Seeds the initial embeddings; the loop itself is deterministic.
    """

    def __init__(
        self,
        *,
        interaction: str = "transe",
        dim: int = 64,
        epochs: int = 100,
        lr: float = 0.03,
        random_state: int = 0,
    ) -> None:
        self.interaction = interaction
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.random_state = random_state

    def _check(self) -> None:
        if self.interaction not in INTERACTIONS:
            raise ConfigError(
                f"unknown interaction {self.interaction!r}; choose one of {', '.join(INTERACTIONS)}"
            )
        for name in ("dim", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")

    def fit(self, graph: KnowledgeGraph) -> KGEModel:
        """Train on ``graph``'s facts; returns ``self``."""
        self._check()
        if not isinstance(graph, KnowledgeGraph):
            raise ConfigError(f"a knowledge-graph model trains on a graph, not on {type(graph).__name__}")
        if len(graph) == 0:
            raise ConfigError(f"{graph.name}: no facts to train on")
        import torch
        from pykeen.triples import TriplesFactory

        models = _pykeen_models()
        triples = torch.as_tensor(np.array(graph.triples, dtype=np.int64))
        factory = TriplesFactory(
            mapped_triples=triples,
            entity_to_id={e: i for i, e in enumerate(graph.entities)},
            relation_to_id={r: i for i, r in enumerate(graph.relations)},
            num_entities=graph.n_entities,
            num_relations=graph.n_relations,
        )
        torch.manual_seed(self.random_state)
        name, defaults = INTERACTIONS[self.interaction]
        model = getattr(models, name)(
            triples_factory=factory, embedding_dim=self.dim, random_seed=self.random_state, **defaults
        )
        hr, hr_index = torch.unique(triples[:, :2], dim=0, return_inverse=True)
        rt, rt_index = torch.unique(triples[:, 1:], dim=0, return_inverse=True)
        tails = torch.zeros(len(hr), graph.n_entities)
        tails[hr_index, triples[:, 2]] = 1.0
        heads = torch.zeros(len(rt), graph.n_entities)
        heads[rt_index, triples[:, 0]] = 1.0
        optimiser = torch.optim.Adam(model.parameters(), lr=float(self.lr))
        loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
        model.train()
        for _ in range(self.epochs):
            optimiser.zero_grad()
            loss = loss_fn(model.score_t(hr), tails) + loss_fn(model.score_h(rt), heads)
            loss = loss + model.collect_regularization_term()
            loss.backward()
            optimiser.step()
            model.post_parameter_update()
        model.eval()
        self.model_ = model
        self.n_entities_ = graph.n_entities
        return self

    def _fitted(self) -> Any:
        model = getattr(self, "model_", None)
        if model is None:
            raise NotFittedError("this knowledge-graph model is not fitted yet: call fit(graph) first")
        return model

    # ---- scores -----------------------------------------------------------------
    def score(self, triples: np.ndarray) -> np.ndarray:
        """Plausibility of each fact (higher = more plausible), float64."""
        import torch

        model = self._fitted()
        with torch.no_grad():
            batch = torch.as_tensor(np.array(triples, dtype=np.int64).reshape(-1, 3))
            return model.score_hrt(batch).reshape(-1).double().numpy()

    def tail_scores(self, pairs: np.ndarray) -> np.ndarray:
        """Scores of every entity as the tail of each ``(head, relation)`` pair: ``n×E``."""
        import torch

        model = self._fitted()
        with torch.no_grad():
            return (
                model.score_t(torch.as_tensor(np.array(pairs, dtype=np.int64).reshape(-1, 2)))
                .double()
                .numpy()
            )

    def head_scores(self, pairs: np.ndarray) -> np.ndarray:
        """Scores of every entity as the head of each ``(relation, tail)`` pair: ``n×E``."""
        import torch

        model = self._fitted()
        with torch.no_grad():
            return (
                model.score_h(torch.as_tensor(np.array(pairs, dtype=np.int64).reshape(-1, 2)))
                .double()
                .numpy()
            )

    # ---- what the attacks differentiate -----------------------------------------
    def entity_vectors(self) -> Any:
        """All entity embeddings as one torch tensor (complex for ComplEx), detached."""
        import torch

        with torch.no_grad():
            return self._fitted().entity_representations[0](indices=None).detach().clone()

    def relation_vectors(self) -> Any:
        import torch

        with torch.no_grad():
            return self._fitted().relation_representations[0](indices=None).detach().clone()

    def interact(self, h: Any, r: Any, t: Any) -> Any:
        """The model's score of embedding vectors ``h, r, t`` (broadcast over leading axes)."""
        return self._fitted().interaction(h=h, r=r, t=t)


def filtered_ranks(model: KGEModel, triples: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Filtered realistic ranks ``n×2``: column 0 predicts the tail, column 1 the head."""
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    known = np.asarray(known, dtype=np.int64).reshape(-1, 3)
    if len(triples) == 0:
        return np.zeros((0, 2))
    ranks = np.empty((len(triples), 2))
    for side, (query, answer, scores) in enumerate(
        (
            ((0, 1), 2, model.tail_scores(triples[:, [0, 1]])),
            ((1, 2), 0, model.head_scores(triples[:, [1, 2]])),
        )
    ):
        true = scores[np.arange(len(triples)), triples[:, answer]]
        # other known answers of the same query do not count against the true one
        filtered = scores.copy()
        base = int(max(known.max(initial=0), triples.max())) + 1
        query_key = triples[:, query[0]] * base + triples[:, query[1]]
        known_key = known[:, query[0]] * base + known[:, query[1]]
        for i in range(len(triples)):
            others = known[known_key == query_key[i], answer]
            filtered[i, others] = -np.inf
            filtered[i, triples[i, answer]] = true[i]
        higher = (filtered > true[:, None]).sum(axis=1)
        ties = (filtered == true[:, None]).sum(axis=1) - 1
        ranks[:, side] = 1.0 + higher + 0.5 * ties
    return ranks


def link_metrics(ranks: np.ndarray) -> dict[str, float]:
    """MRR and Hits@1/3/10 of filtered ranks (both sides pooled)."""
    flat = np.asarray(ranks, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return {"mrr": float("nan"), "hits@1": float("nan"), "hits@3": float("nan"), "hits@10": float("nan")}
    return {
        "mrr": float(np.mean(1.0 / flat)),
        "hits@1": float(np.mean(flat <= 1)),
        "hits@3": float(np.mean(flat <= 3)),
        "hits@10": float(np.mean(flat <= 10)),
    }
