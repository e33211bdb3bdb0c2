"""Knowledge graphs: loading, filtered ranking, the graph attacks' effect, and the CLI around them.

The contract of every graph attack, model and detector is checked by the conformance
battery (tests/test_checks.py); here are the quantities: ranks computed right, a target
fact demoted on a real graph while the rest stays put, and bad input refused in one line.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS
from poisonlab.attacks.graph import rarer_entity
from poisonlab.checks._data import toy_graph
from poisonlab.data import GRAPHS, load_graph
from poisonlab.data.graph import KnowledgeGraph
from poisonlab.errors import ConfigError, DataError
from poisonlab.models.kge import KGEModel, filtered_ranks, link_metrics

pytest.importorskip("pykeen")


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


# -- data ---------------------------------------------------------------------------------------


def test_the_builtin_graphs_load_with_their_published_sizes() -> None:
    assert GRAPHS.names() == ["nations", "kinships", "umls"]
    umls = load_graph("umls")
    assert (len(umls.train), len(umls.valid), len(umls.test)) == (5216, 652, 661)
    assert (umls.train.n_entities, umls.train.n_relations) == (135, 46)
    nations = GRAPHS.create("nations")
    assert (len(nations.train), nations.train.n_entities, nations.train.n_relations) == (1592, 14, 55)
    # one vocabulary for the three parts, so indices compare across them
    assert nations.test.entities == nations.train.entities
    assert nations.train.triples.flags.writeable is False


def test_a_tsv_file_or_folder_loads_and_a_bad_one_is_refused_in_one_line(tmp_path: Path) -> None:
    facts = [f"e{i}\tlinks\te{(i + 1) % 30}" for i in range(30)]
    (tmp_path / "one.tsv").write_text("\n".join(facts) + "\n", encoding="utf-8")
    split = load_graph(tmp_path / "one.tsv", seed=1)
    assert (len(split.train), len(split.valid), len(split.test)) == (24, 3, 3)
    assert len(split.known()) == 30
    folder = tmp_path / "g"
    folder.mkdir()
    for part, rows in (("train", facts[:20]), ("valid", facts[20:25]), ("test", facts[25:])):
        (folder / f"{part}.tsv").write_text("\n".join(rows), encoding="utf-8")
    assert len(load_graph(folder).train) == 20

    (tmp_path / "bad.tsv").write_text("a\tb\tc\nd\te\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv, line 2: a fact has 3 tab-separated columns .* found 2"):
        load_graph(tmp_path / "bad.tsv")
    (tmp_path / "blank.tsv").write_text("a\t \tc\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: an empty entity or relation name"):
        load_graph(tmp_path / "blank.tsv")
    (tmp_path / "latin.tsv").write_bytes(b"caf\xe9\tis\tx\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_graph(tmp_path / "latin.tsv")
    (folder / "test.tsv").unlink()
    with pytest.raises(DataError, match=r"missing test\.tsv"):
        load_graph(folder)
    with pytest.raises(DataError, match="no graph 'nowhere'"):
        load_graph("nowhere")


def test_facts_by_name_and_unknown_names() -> None:
    graph, _ = toy_graph()
    assert graph.index_of("e3 next e4").tolist() == [3, 0, 4]
    assert graph.index_of("e3\tnext\te4").tolist() == [3, 0, 4]
    assert graph.names(np.array([[3, 0, 4]])) == [("e3", "next", "e4")]
    with pytest.raises(DataError, match="unknown relation 'knows'"):
        graph.index_of("e3 knows e4")
    with pytest.raises(DataError, match="got 2 part"):
        graph.index_of("e3 next")
    with pytest.raises(DataError, match="outside the 12 entities"):
        KnowledgeGraph(np.array([[0, 0, 12]]), graph.entities, graph.relations)


# -- ranking ------------------------------------------------------------------------------------


class _FixedScores:
    """Scores every entity by its index (higher index = more plausible), whatever the query."""

    def __init__(self, n: int) -> None:
        self.n = n

    def tail_scores(self, pairs: np.ndarray) -> np.ndarray:
        return np.tile(np.arange(self.n, dtype=float), (len(pairs), 1))

    def head_scores(self, pairs: np.ndarray) -> np.ndarray:
        return self.tail_scores(pairs)


def test_filtered_ranks_leave_other_true_answers_out_and_split_ties() -> None:
    model = _FixedScores(5)
    # tail of (0, r0, ?) is 2: entities 3 and 4 score higher, but (0, 0, 4) is known, so rank 2
    known = np.array([[0, 0, 2], [0, 0, 4]])
    ranks = filtered_ranks(model, np.array([[0, 0, 2]]), known)  # type: ignore[arg-type]
    assert ranks[0, 0] == 2.0
    # head of (?, r0, 2) is 0: entities 1..4 all score higher, none is filtered
    assert ranks[0, 1] == 5.0
    metrics = link_metrics(ranks)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 / 5) / 2)
    assert metrics["hits@1"] == 0.0 and metrics["hits@3"] == 0.5

    class _Ties(_FixedScores):
        def tail_scores(self, pairs: np.ndarray) -> np.ndarray:
            return np.zeros((len(pairs), self.n))

    # five equal scores: the realistic rank is the mean of 1..5
    assert filtered_ranks(_Ties(5), np.array([[0, 0, 2]]), np.zeros((0, 3)))[0, 0] == 3.0  # type: ignore[arg-type]


def test_a_model_trained_on_umls_predicts_its_test_facts() -> None:
    split = load_graph("umls")
    model = KGEModel(interaction="transe", random_state=0).fit(split.train)
    metrics = link_metrics(filtered_ranks(model, split.test.triples, split.known()))
    # published TransE figures on UMLS lie near MRR 0.7 / Hits@10 0.9
    assert metrics["mrr"] >= 0.6 and metrics["hits@10"] >= 0.85
    with pytest.raises(ConfigError, match="unknown interaction 'rotate'"):
        KGEModel(interaction="rotate").fit(split.train)


# -- attacks ------------------------------------------------------------------------------------


def test_direct_deletion_demotes_a_known_umls_fact_and_leaves_the_rest() -> None:
    # a development case (seed 101) of bench_kg.py: a fact about a concept with 24 training facts
    split = load_graph("umls")
    known = split.known()
    fact = split.train.index_of("research_device causes anatomical_abnormality")
    clean = KGEModel(random_state=101).fit(split.train)
    assert filtered_ranks(clean, fact[None], known).max() <= 1
    result = ATTACKS.create("kg_delete").surrogate(clean).aim(fact).poison(split.train, 10, 0)
    assert result.n_poison == 10 and result.removed is not None
    assert not result.poison_mask.any()  # deletions only
    # every deleted fact touches the rarer target entity (research_device, 24 facts)
    assert np.all((result.removed[:, 0] == fact[0]) | (result.removed[:, 2] == fact[0]))
    poisoned = KGEModel(random_state=101).fit(result.dataset)
    after = filtered_ranks(poisoned, fact[None], known)[0]
    assert after.min() >= 5  # from first place to fifth or lower on both sides
    rest = split.test.triples[np.any(split.test.triples != fact, axis=1)]
    before_mrr = link_metrics(filtered_ranks(clean, rest, known))["mrr"]
    after_mrr = link_metrics(filtered_ranks(poisoned, rest, known))["mrr"]
    assert abs(after_mrr - before_mrr) <= 0.02


def test_the_pattern_attacks_add_the_facts_their_patterns_name() -> None:
    graph, target = toy_graph()
    model = KGEModel(interaction="distmult", epochs=50).fit(graph)
    s, r, o = (int(v) for v in target)
    symmetry = ATTACKS.create("kg_symmetry").surrogate(model).aim(target).poison(graph, 4, 0)
    added = symmetry.dataset.triples[symmetry.poison_mask]
    assert len(added) == 4 and symmetry.removed is None
    # (o', r, s) for a tail decoy o', (o, r, s') for a head decoy s'
    assert np.all(added[:, 1] == r) and np.all((added[:, 2] == s) | (added[:, 0] == o))
    composition = ATTACKS.create("kg_composition").surrogate(model).aim(target).poison(graph, 4, 0)
    pairs = composition.dataset.triples[composition.poison_mask]
    # chains s → x → o' (tail decoys) or s' → x → o (head decoys) in the poisoned graph: an
    # added fact starts at s, ends at o, or completes a path whose other half is there
    assert 2 <= len(pairs) <= 4 and len(set(pairs[:, 1].tolist())) <= 2
    poisoned = composition.dataset
    for a, _, b in pairs:
        assert (
            a == s
            or b == o
            or poisoned.contains(np.array([[s, q, a] for q in range(3)])).any()
            or poisoned.contains(np.array([[b, q, o] for q in range(3)])).any()
        )


def test_the_indirect_attack_edits_around_a_neighbour_and_never_touches_the_target() -> None:
    graph, target = toy_graph()
    model = KGEModel(interaction="distmult", epochs=50).fit(graph)
    attack = ATTACKS.create("kg_indirect", interaction="distmult").surrogate(model).aim(target)
    walk = attack.path(graph, target)
    # e0 (the rarer entity on a tie) is linked by two facts each to e2, e3 and e11, all of
    # ten facts: the first of them is the proxy; e1, the target's other end, never is
    assert walk == [0, 2]
    result = attack.poison(graph, 4, 0)
    removed = result.removed if result.removed is not None else np.zeros((0, 3), dtype=np.int64)
    changed = np.concatenate([result.dataset.triples[result.poison_mask], removed])
    assert len(changed) == result.n_poison == 4
    assert np.all((changed[:, 0] == 2) | (changed[:, 2] == 2))  # around the proxy
    assert not np.isin(changed[:, [0, 2]], [0, 1]).any()  # nothing of the target's entities
    two = ATTACKS.create("kg_indirect", hops=2).path(graph, target)
    assert len(two) == 3 and two[0] == 0 and len(set(two) | {1}) == 4
    for a, b in itertools.pairwise(two):  # each step is a training fact
        assert (
            (graph.triples[:, [0, 2]] == [a, b]).all(1) | (graph.triples[:, [0, 2]] == [b, a]).all(1)
        ).any()


def test_the_indirect_attack_moves_the_proxy_where_its_facts_carry_the_target() -> None:
    import torch

    from poisonlab.attacks.graph import _drag

    graph, _ = toy_graph()
    model = KGEModel(interaction="distmult", epochs=50).fit(graph)
    E, R = model.entity_vectors(), model.relation_vectors()
    shift = torch.randn(E.shape[1], generator=torch.Generator().manual_seed(0))
    linking = graph.triples[
        ((graph.triples[:, 0] == 0) & (graph.triples[:, 2] == 2))
        | ((graph.triples[:, 0] == 2) & (graph.triples[:, 2] == 0))
    ]
    assert len(linking) == 2 and set(linking[:, 1].tolist()) == {2}  # e0 peer e2, both ways
    moved = _drag(model, linking, 0, E[0] + shift, 2, 0.1)
    # DistMult's pull on e2 from (e0, r, e2) and (e2, r, e0) is e0∘r each: e0's move by δ changes it by 2·δ∘r
    expected = R[2] * shift
    change = moved - E[2]
    assert torch.nn.functional.cosine_similarity(change, expected, dim=0) > 0.999
    assert torch.linalg.vector_norm(change) == pytest.approx(
        0.1 * float(torch.linalg.vector_norm(E[2])), rel=1e-4
    )


def test_the_indirect_attack_refuses_what_it_cannot_do_in_one_line() -> None:
    graph, _ = toy_graph()
    with pytest.raises(ConfigError, match="hops must be 1 or 2, got 3"):
        ATTACKS.create("kg_indirect", hops=3).check(graph)
    lonely = KnowledgeGraph(
        np.array([[0, 0, 1], [1, 0, 2], [2, 0, 1]]), ("a", "b", "c"), ("r", "s"), "lonely"
    )
    model = KGEModel(epochs=3).fit(lonely)
    with pytest.raises(DataError, match=r"has no path of 1 training fact away from its entities"):
        ATTACKS.create("kg_indirect").surrogate(model).aim(np.array([0, 1, 1])).poison(lonely, 2, 0)


def test_an_attack_refuses_a_training_fact_as_its_target() -> None:
    graph, _ = toy_graph()
    with pytest.raises(DataError, match="is a training fact"):
        ATTACKS.create("kg_add", surrogate_epochs=3).aim(graph.triples[0]).poison(graph, 2, 0)
    with pytest.raises(DataError, match="three integer indices"):
        ATTACKS.create("kg_add").aim(np.array([0.5, 0, 1]))
    with pytest.raises(ConfigError, match="entity must be 'rarer' or 'both'"):
        ATTACKS.create("kg_delete", entity="all").check(graph)


# -- the command line ---------------------------------------------------------------------------


def test_attack_writes_the_poisoned_graph_and_its_changes(tmp_path: Path) -> None:
    fact = _nations_fact("test")
    done = poisonlab(
        "attack", "kg_delete", "nations", "--target-fact", fact, "--count", "6", "--out", "p.tsv",
        "--param", "surrogate_epochs=20", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "deleted 6 of 1592 facts of nations" in done.stdout
    written = load_graph(tmp_path / "p.tsv")
    assert len(written.known()) == 1592 - 6
    changes = (tmp_path / "p.changes.tsv").read_text(encoding="utf-8").splitlines()
    assert changes[0] == "head\trelation\ttail\tchange" and len(changes) == 7
    assert all(line.endswith("\tdeleted") for line in changes[1:])


def _nations_fact(kind: str) -> str:
    split = load_graph("nations")
    if kind == "train":
        return "\t".join(split.train.names(split.train.triples[:1])[0])
    if kind == "test":
        return "\t".join(split.test.names(split.test.triples[:1])[0])
    known = set(map(tuple, split.known().tolist()))
    h, r, t = next(
        (h, r, t) for h in range(14) for r in range(55) for t in range(14) if (h, r, t) not in known
    )
    return "\t".join(split.train.names(np.array([[h, r, t]]))[0])


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("unknown", [], "unknown relation 'nowhere'"),
        ("two-parts", [], "a fact is 'head relation tail'"),
        ("train", [], "is a training fact of nations"),
        ("absent", [], "is not a fact of nations: there is nothing to demote"),
        ("none", [], "aims at one fact: give it with --target-fact"),
        ("test", ["--count", "100000"], "poison count must lie in 1..1592"),
    ],
)
def test_attack_refuses_bad_graph_input_in_one_line(
    tmp_path: Path, kind: str, extra: list[str], message: str
) -> None:
    given = {"unknown": "usa nowhere uk", "two-parts": "brazil"}
    target = [] if kind == "none" else ["--target-fact", given.get(kind) or _nations_fact(kind)]
    budget = extra or ["--count", "3"]
    done = poisonlab("attack", "kg_add", "nations", *target, *budget, "--out", "p.tsv", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "p.tsv").exists()


def test_attack_refuses_a_tsv_with_the_wrong_columns(tmp_path: Path) -> None:
    (tmp_path / "g.tsv").write_text("a\tb\tc\td\n", encoding="utf-8")
    done = poisonlab(
        "attack", "kg_add", "g.tsv", "--target-fact", "a b c", "--count", "1", "--out", "p.tsv", cwd=tmp_path
    )
    assert done.returncode == 2 and "line 1: a fact has 3 tab-separated columns" in done.stderr


def test_a_run_config_naming_a_graph_says_where_graphs_run(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text('datasets = ["umls"]\nattacks = ["kg_add"]\n', encoding="utf-8")
    done = poisonlab("run", "grid.toml", "--out", "runs", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "umls is a knowledge graph" in done.stderr


def test_a_graph_attack_checks_its_parameters_and_its_surrogate_when_it_poisons() -> None:
    graph, target = toy_graph()
    with pytest.raises(ConfigError, match="entity must be 'rarer' or 'both'"):
        ATTACKS.create("kg_delete", entity="all", surrogate_epochs=3).aim(target).poison(graph, 2, 0)
    other = graph.with_triples(graph.triples)
    small = KnowledgeGraph(np.array([[0, 0, 1], [1, 0, 2]]), ("a", "b", "c"), ("r",), "small")
    model = KGEModel(epochs=3).fit(small)
    with pytest.raises(DataError, match="the surrogate was trained on 3 entities; toy_graph has 12"):
        ATTACKS.create("kg_add").surrogate(model).aim(target).poison(other, 2, 0)


def test_attack_on_one_tsv_holds_the_target_out_of_it(tmp_path: Path) -> None:
    facts = [f"e{i}\tlinks\te{(i + 1) % 40}" for i in range(40)] + [
        f"e{i}\tpeer\te{i ^ 1}" for i in range(40)
    ]
    (tmp_path / "g.tsv").write_text("\n".join(facts) + "\n", encoding="utf-8")
    done = poisonlab(
        "attack", "kg_add", "g.tsv", "--target-fact", "e0 links e1", "--count", "3", "--out", "p.tsv",
        "--param", "surrogate_epochs=20", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "added 3 and deleted 0 of 79 facts of g" in done.stdout
    written = (tmp_path / "p.tsv").read_text(encoding="utf-8").splitlines()
    assert len(written) == 79 + 3 and "e0\tlinks\te1" not in written
    absent = poisonlab(
        "attack",
        "kg_add",
        "g.tsv",
        "--target-fact",
        "e0 links e2",
        "--count",
        "3",
        "--out",
        "q.tsv",
        cwd=tmp_path,
    )
    assert absent.returncode == 2 and "is not a fact of g: there is nothing to demote" in absent.stderr


def test_random_deletion_drops_facts_of_the_rarer_entity_and_reads_no_model() -> None:
    graph, target = toy_graph()
    attack = ATTACKS.create("kg_random").aim(target)
    assert not ATTACKS.get("kg_random").tag("needs_model")
    result = attack.poison(graph, 3, 0)
    removed = result.removed
    assert removed is not None and len(removed) == 3 and result.n_poison == 3
    assert not result.poison_mask.any() and len(result.dataset) == len(graph) - 3
    entity = rarer_entity(graph, target)
    assert all(entity in (h, t) for h, _, t in removed)
    assert np.array_equal(removed, attack.poison(graph, 3, 0).removed)  # the seed decides the draw
    draws = {attack.poison(graph, 3, seed).removed.tobytes() for seed in range(5)}  # type: ignore[union-attr]
    assert len(draws) > 1
