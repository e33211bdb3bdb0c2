"""Injected facts in a knowledge graph: implausible under models that never saw them.

:class:`CrossFittedPlausibility` splits the graph's facts into ``folds`` parts, trains
an embedding model on all parts but one and ranks each held-out fact against every
other entity (filtered, both sides), so no fact is judged by a model that learnt it.
A fact's suspicion is the mean log of its two ranks: an injected fact, whose pattern the
rest of the graph does not support, ranks low where a true fact that the graph implies
ranks near the top. This is the cross-fitting of confident learning (Northcutt et al.
2021) carried over to link prediction, with the plausibility score of the embedding
model in place of a class probability; Pezeshkpour et al. (2019) use a model's scores
the same way to find erroneous facts.

The automatic rule flags scores far above the bulk, by the robust z-score of
:func:`~poisonlab.defenses.detectors.base.flag_outlying`, with the cut-off ``z``.

References
----------
C. Northcutt, L. Jiang, I. Chuang. "Confident learning: estimating uncertainty in
dataset labels." JAIR 70, 2021.
P. Pezeshkpour, Y. Tian, S. Singh. "Investigating robustness and interpretability of
link prediction via adversarial modifications." NAACL 2019.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from poisonlab.data.graph import KnowledgeGraph
from poisonlab.defenses.detectors.base import Detector, Evidence, flag_outlying
from poisonlab.errors import ConfigError, DataError, IncompatibleError

__all__ = ["CrossFittedPlausibility"]


class CrossFittedPlausibility(Detector):
    """Flag facts that models trained without them rank far down (cross-fitted filtered ranks).

    Parameters
    ----------
    folds : int
        Parts the facts are split into; each is ranked by a model of the others.
    z : float
        Robust z-score above which a fact is flagged.
    interaction, dim, epochs, lr
        The embedding model (``KGEModel``'s parameters).
    random_state : int
        Seeds the folds and the models.
    """

    tasks: ClassVar[tuple[str, ...]] = ("link_prediction",)
    min_samples: ClassVar[int] = 20

    def __init__(
        self,
        *,
        folds: int = 5,
        z: float = 3.5,
        interaction: str = "transe",
        dim: int = 64,
        epochs: int = 100,
        lr: float = 0.03,
        random_state: int = 0,
    ) -> None:
        self.folds = folds
        self.z = z
        self.interaction = interaction
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.random_state = random_state

    def fit(self, dataset: Any, evidence: Evidence | None = None) -> Self:
        if getattr(dataset, "task", None) not in self.tasks:
            raise IncompatibleError(
                f"{type(self).__name__} scans knowledge graphs; {getattr(dataset, 'name', 'the data')} "
                f"is a {getattr(dataset, 'task', 'different')} dataset"
            )
        if not isinstance(dataset, KnowledgeGraph):
            raise DataError(f"{type(self).__name__} scans a knowledge graph")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds must be an integer ≥ 2, got {self.folds!r}")
        if not (isinstance(self.z, int | float) and np.isfinite(self.z)):
            raise ConfigError(f"z must be a finite number, got {self.z!r}")
        if len(dataset) < max(self.min_samples, 2 * self.folds):
            raise DataError(
                f"{type(self).__name__} needs at least {self.min_samples} facts, got {len(dataset)}"
            )
        self.scores_ = self._score(dataset, None)
        self.flags_ = flag_outlying(self.scores_, z=float(self.z))
        return self

    def _score(self, dataset: Any, evidence: Any) -> np.ndarray:
        from poisonlab.models.kge import KGEModel, filtered_ranks

        graph: KnowledgeGraph = dataset
        rng = np.random.default_rng(self.random_state)
        fold = rng.permutation(len(graph)) % self.folds
        scores = np.zeros(len(graph))
        for k in range(self.folds):
            held = fold == k
            model = KGEModel(
                interaction=self.interaction,
                dim=self.dim,
                epochs=self.epochs,
                lr=self.lr,
                random_state=self.random_state + k,
            ).fit(graph.with_triples(graph.triples[~held]))
            ranks = filtered_ranks(model, graph.triples[held], graph.triples)
            scores[held] = np.log(ranks).mean(axis=1)
        return scores
