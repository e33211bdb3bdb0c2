"""Knowledge graphs: the ``graph`` modality, a set of ``(head, relation, tail)`` facts.

A :class:`KnowledgeGraph` holds its facts as an ``N×3`` int64 array of entity and
relation indices into its vocabulary (``entities``, ``relations``), so attacks and
models work on arrays while files and reports speak the names. A
:class:`GraphSplit` is the training, validation and test graphs of one vocabulary,
as link-prediction benchmarks ship them.

Graphs come from the small benchmarks that PyKEEN ships inside its wheel (Nations,
Kinships, UMLS; ``pip install 'poisonlab[kg]'``; no network) or from a user's
tab-separated files of ``head relation tail`` (a folder with ``train.tsv``,
``valid.tsv`` and ``test.tsv``, or one file that poisonlab splits 80/10/10, seeded).
"""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from poisonlab.errors import DataError
from poisonlab.registry import Registry

__all__ = [
    "GRAPHS",
    "GraphSplit",
    "KnowledgeGraph",
    "load_graph",
    "read_triples",
    "write_triples",
]

#: The built-in graphs: the small link-prediction benchmarks PyKEEN ships in its wheel.
GRAPHS: Registry[GraphSplit] = Registry("graph", tags={"modality": "graph", "task": "link_prediction"})


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.int64, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class KnowledgeGraph:
    """Facts as indices into a vocabulary: ``triples[i] = (head, relation, tail)``.

    Immutable; operations return new graphs over the same vocabulary, so indices
    stay comparable between a graph, its poisoned copy and its test facts.
    """

    triples: np.ndarray
    entities: tuple[str, ...]
    relations: tuple[str, ...]
    name: str = "graph"

    #: Read by the registries' tag checks, as ``Dataset.modality`` and ``Dataset.task`` are.
    modality = "graph"
    task = "link_prediction"
    is_regression = False

    def __post_init__(self) -> None:
        triples = np.asarray(self.triples)
        if triples.size == 0:
            triples = triples.reshape(0, 3)
        if triples.ndim != 2 or triples.shape[1] != 3:
            raise DataError(f"{self.name}: facts must be an N×3 array of (head, relation, tail)")
        if not np.issubdtype(triples.dtype, np.integer):
            raise DataError(f"{self.name}: facts must be integer indices, got dtype {triples.dtype}")
        for column, vocabulary, what in ((0, self.entities, "entity"), (1, self.relations, "relation")):
            values = triples[:, column]
            if values.size and (values.min() < 0 or values.max() >= len(vocabulary)):
                raise DataError(f"{self.name}: a {what} index lies outside the {len(vocabulary)} {what}s")
        tails = triples[:, 2]
        if tails.size and (tails.min() < 0 or tails.max() >= len(self.entities)):
            raise DataError(f"{self.name}: an entity index lies outside the {len(self.entities)} entities")
        object.__setattr__(self, "triples", _frozen(triples))
        object.__setattr__(self, "entities", tuple(str(e) for e in self.entities))
        object.__setattr__(self, "relations", tuple(str(r) for r in self.relations))

    def __len__(self) -> int:
        return int(self.triples.shape[0])

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_relations(self) -> int:
        return len(self.relations)

    def keys(self, triples: np.ndarray | None = None) -> np.ndarray:
        """One int64 per fact, equal for equal facts (for set operations on facts)."""
        t = self.triples if triples is None else np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        return (t[:, 0] * self.n_relations + t[:, 1]) * self.n_entities + t[:, 2]

    def contains(self, triples: np.ndarray) -> np.ndarray:
        """Which of ``triples`` are facts of this graph."""
        return np.isin(self.keys(triples), self.keys())

    def with_triples(self, triples: np.ndarray, name: str | None = None) -> KnowledgeGraph:
        """The same vocabulary with other facts."""
        return KnowledgeGraph(np.asarray(triples), self.entities, self.relations, name or self.name)

    def index_of(self, fact: Sequence[str] | str) -> np.ndarray:
        """A fact given by names (``"head relation tail"`` split on tabs or spaces) as indices."""
        parts = fact.split("\t") if isinstance(fact, str) and "\t" in fact else fact
        if isinstance(parts, str):
            parts = parts.split()
        if len(parts) != 3:
            raise DataError(f"a fact is 'head relation tail'; got {len(parts)} part(s) in {fact!r}")
        head, relation, tail = (str(p) for p in parts)
        out = []
        for value, vocabulary, what in (
            (head, self.entities, "entity"),
            (relation, self.relations, "relation"),
            (tail, self.entities, "entity"),
        ):
            try:
                out.append(vocabulary.index(value))
            except ValueError:
                raise DataError(f"{self.name}: unknown {what} {value!r}") from None
        return np.asarray(out, dtype=np.int64)

    def names(self, triples: np.ndarray | None = None) -> list[tuple[str, str, str]]:
        """Facts as ``(head, relation, tail)`` names."""
        t = self.triples if triples is None else np.asarray(triples).reshape(-1, 3)
        return [(self.entities[h], self.relations[r], self.entities[o]) for h, r, o in t]


@dataclass(frozen=True, eq=False)
class GraphSplit:
    """Training, validation and test facts over one vocabulary."""

    train: KnowledgeGraph
    valid: KnowledgeGraph
    test: KnowledgeGraph

    @property
    def name(self) -> str:
        return self.train.name

    def known(self) -> np.ndarray:
        """Every fact of the three parts: the filter of filtered ranking."""
        return np.concatenate([self.train.triples, self.valid.triples, self.test.triples])


def read_triples(path: Path) -> list[tuple[str, str, str]]:
    """The facts of a tab-separated file, one ``head<TAB>relation<TAB>tail`` per line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError:
        raise DataError(f"{path.name}: not a UTF-8 text file of facts") from None
    except OSError as error:
        raise DataError(f"cannot read {path.name}: {error.strerror or error}") from None
    facts = []
    for number, row in enumerate(rows, start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 3:
            raise DataError(
                f"{path.name}, line {number}: a fact has 3 tab-separated columns "
                f"(head, relation, tail), found {len(row)}"
            )
        if any(not cell.strip() for cell in row):
            raise DataError(f"{path.name}, line {number}: an empty entity or relation name")
        facts.append((row[0].strip(), row[1].strip(), row[2].strip()))
    if not facts:
        raise DataError(f"{path.name}: no facts in the file")
    return facts


def write_triples(graph: KnowledgeGraph, handle: TextIO, triples: np.ndarray) -> None:
    """Write ``triples`` of ``graph``'s vocabulary as tab-separated names to an open text handle."""
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE)
    for fact in graph.names(triples):
        writer.writerow(fact)


def _index(parts: dict[str, list[tuple[str, str, str]]], name: str) -> GraphSplit:
    entities = sorted({e for facts in parts.values() for h, _, t in facts for e in (h, t)})
    relations = sorted({r for facts in parts.values() for _, r, _ in facts})
    e_index = {e: i for i, e in enumerate(entities)}
    r_index = {r: i for i, r in enumerate(relations)}

    def graph(facts: list[tuple[str, str, str]], part: str) -> KnowledgeGraph:
        array = np.array([(e_index[h], r_index[r], e_index[t]) for h, r, t in facts], dtype=np.int64)
        unique = np.unique(array.reshape(-1, 3), axis=0)  # a repeated fact is one fact
        return KnowledgeGraph(
            unique, tuple(entities), tuple(relations), name if part == "train" else f"{name}:{part}"
        )

    return GraphSplit(
        graph(parts["train"], "train"), graph(parts["valid"], "valid"), graph(parts["test"], "test")
    )


def load_graph(source: str | Path, *, seed: int = 0) -> GraphSplit:
    """A built-in graph by name (``nations``, ``kinships``, ``umls``) or the user's TSV files.

    A folder must hold ``train.tsv``, ``valid.tsv`` and ``test.tsv``; a single file is
    split 80/10/10 by ``seed``. Test and validation facts whose entities never occur
    in training are kept: they are part of the vocabulary, and a model ranks them low.
    """
    text = str(source)
    if text.lower() in _BUILTIN and not Path(text).exists():
        spec = importlib.util.find_spec("pykeen")
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"the {text} graph ships with PyKEEN: pip install 'poisonlab[kg]'")
        folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / text.lower()
        parts = {p: read_triples(folder / f"{p}.txt") for p in ("train", "valid", "test")}
        return _index(parts, text.lower())
    path = Path(text)
    if path.is_dir():
        missing = [f"{p}.tsv" for p in ("train", "valid", "test") if not (path / f"{p}.tsv").is_file()]
        if missing:
            raise DataError(
                f"{path.name}: a graph folder needs train.tsv, valid.tsv and test.tsv; "
                f"missing {', '.join(missing)}"
            )
        return _index({p: read_triples(path / f"{p}.tsv") for p in ("train", "valid", "test")}, path.name)
    if not path.exists():
        known = ", ".join(_BUILTIN)
        raise DataError(f"no graph {text!r}: give a built-in graph ({known}) or a TSV file or folder")
    facts = read_triples(path)
    order = np.random.default_rng(seed).permutation(len(facts))
    n_test = max(1, len(facts) // 10)
    if len(facts) < 3 * n_test or len(facts) < 10:
        raise DataError(f"{path.name}: {len(facts)} facts are too few to split into train, valid and test")
    chosen = [facts[i] for i in order]
    parts = {"test": chosen[:n_test], "valid": chosen[n_test : 2 * n_test], "train": chosen[2 * n_test :]}
    return _index(parts, path.stem)


_BUILTIN = {
    "nations": "Nations: 14 countries, 55 relations, 1,992 facts (PyKEEN; pip install 'poisonlab[kg]')",
    "kinships": "Kinships: 104 people, 25 relations, 10,686 facts (PyKEEN; pip install 'poisonlab[kg]')",
    "umls": "UMLS: 135 medical concepts, 46 relations, 6,529 facts (PyKEEN; pip install 'poisonlab[kg]')",
}


def _builtin(name: str) -> Any:
    def factory() -> GraphSplit:
        return load_graph(name)

    factory.__name__ = name
    return factory


for _name, _description in _BUILTIN.items():
    GRAPHS.add(_name, _builtin(_name), _description)
