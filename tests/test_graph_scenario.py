"""The graph scenario of the run config: knowledge-graph poisoning, target by target, as grid runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS
from poisonlab.cli import main
from poisonlab.data.graph import load_graph
from poisonlab.defenses import DETECTORS
from poisonlab.errors import ConfigError, DataError, IncompatibleError
from poisonlab.experiments import COLUMNS, SCENARIOS, GraphRecord, GraphSpec, parse_config, run_grid
from poisonlab.experiments.run import run_experiment
from poisonlab.models.kge import KGEModel, filtered_ranks

pytest.importorskip("pykeen")

# Nations (14 countries) with a small DistMult: a run of three targets takes a few seconds.
SMALL = {"name": "distmult", "dim": 32, "epochs": 60}


def config(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "scenario": "graph",
        "datasets": ["nations"],
        "models": [SMALL],
        "attacks": ["kg_direct"],
        "budgets": [10],
        "targets": 3,
        "seeds": [0],
    }
    raw.update(overrides)
    return raw


def test_the_graph_scenario_is_registered_with_its_record_type() -> None:
    assert SCENARIOS.get("graph").tag("records") == GraphRecord.__name__


def test_a_graph_config_expands_to_one_run_per_cell_with_baselines_first() -> None:
    exp = parse_config(
        config(
            models=[SMALL, "transe"],
            attacks=["kg_delete", "kg_add"],
            budgets=[5, 10],
            seeds=[0, 1],
            defenses=["none", "kg_plausibility"],
        )
    )
    assert all(isinstance(s, GraphSpec) for s in exp.runs)
    # per model and defense: baseline (no budget) × 2 seeds + 2 attacks × 2 budgets × 2 seeds
    assert len(exp.runs) == 2 * 2 * (2 + 2 * 2 * 2)
    assert len({s.run_id for s in exp.runs}) == len(exp.runs)
    first = exp.runs[:2]
    assert [s.attack.name for s in first] == ["none", "none"] and all(s.budget is None for s in first)
    assert len(parse_config(config(baseline=False)).runs) == 1


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"budgets": [0]}, ConfigError, "budget"),
        ({"budgets": [2.5]}, ConfigError, "budget"),
        ({"targets": 0}, ConfigError, "targets"),
        ({"test_size": 0.3}, ConfigError, "test_size"),
        ({"attacks": ["badnets"]}, IncompatibleError, "badnets"),
        ({"models": ["cnn"]}, IncompatibleError, "cnn"),
        ({"defenses": ["spectral"]}, IncompatibleError, "spectral"),
        ({"models": [{"name": "transe", "random_state": 3}]}, ConfigError, "random_state"),
        ({"models": [{"name": "transe", "epochs": 0}]}, ConfigError, "epochs"),
        ({"datasets": ["no_such_graph"]}, DataError, "no_such_graph"),
        ({"datasets": ["digits"]}, DataError, "digits"),
        ({"poison_rates": [0.1]}, ConfigError, "poison_rates"),
    ],
)
def test_bad_graph_configs_fail_in_one_line_before_any_run(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        parse_config(config(**overrides))
    assert "\n" not in str(caught.value)


def test_an_attack_demotes_its_targets_and_leaves_the_rest_of_the_graph(tmp_path: Path) -> None:
    outcome = run_grid(parse_config(config(attacks=["kg_direct", "kg_random"])), tmp_path)
    assert outcome.n_failed == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    runs = summary["runs"]
    assert all(list(r) == list(COLUMNS) for r in runs)
    by = {r["attack"]: r for r in runs}
    clean, attacked, random = by["none"], by["kg_direct"], by["kg_random"]
    # as many random deletions around the same entity leave the targets where they were
    # (measured: MRR 1.00), the targeted attack does not
    assert random["n_modified"] == 10 and random["target_mrr"] > attacked["target_mrr"] + 0.2
    # the targets are facts the clean victim ranks first on both sides
    assert clean["target_mrr"] == 1.0 and clean["hits_at_1"] == 1.0 and clean["graph_mrr_change"] == 0.0
    assert clean["budget"] is None and attacked["budget"] == 10 and attacked["n_targets"] == 3
    # Measured (nations, DistMult dim 32, 60 epochs, seed 0): 10 facts changed per target,
    # target MRR 1.00 -> 0.53 (Hits@1 0.33), the other test facts' MRR -0.006.
    assert attacked["n_modified"] == 10
    assert attacked["target_mrr"] < 0.75 and attacked["target_mrr_drop"] > 0.25
    assert attacked["hits_at_1"] < 1.0
    assert abs(attacked["graph_mrr_change"]) < 0.02
    assert attacked["target_mrr_se"] is not None
    cells = {row["attack"]: row for row in summary["aggregate"]}
    assert cells["kg_direct"]["condition"] == "budget" and cells["kg_direct"]["budget"] == 10
    assert cells["kg_direct"]["target_mrr"][0] == pytest.approx(attacked["target_mrr"])


def test_a_record_is_the_benchmark_protocol_computed_by_hand() -> None:
    exp = parse_config(config(targets=1, baseline=False))
    (spec,) = exp.runs
    record = run_experiment(spec, exp.dataset_of(spec))
    assert record.status == "ok", record.error
    split = load_graph("nations")
    known = split.known()
    clean = KGEModel(interaction="distmult", dim=32, epochs=60, random_state=0).fit(split.train)
    ranks = filtered_ranks(clean, split.test.triples, known)
    pool = np.flatnonzero(ranks.max(axis=1) <= 1)
    (index,) = np.random.default_rng(0).choice(pool, size=1, replace=False)
    fact = split.test.triples[index]
    attack = ATTACKS.create("kg_direct").surrogate(clean).aim(fact)
    poisoned = attack.poison(split.train, 10, 0).dataset
    victim = KGEModel(interaction="distmult", dim=32, epochs=60, random_state=0).fit(poisoned)
    after = filtered_ranks(victim, fact[None], known)[0]
    assert record.target_mrr == pytest.approx(float(np.mean(1.0 / after)))
    assert record.hits_at_10 == pytest.approx(float(np.mean(after <= 10)))


def test_a_defense_scans_each_poisoned_graph_and_is_judged_on_the_added_facts(tmp_path: Path) -> None:
    exp = parse_config(config(attacks=["kg_add"], targets=1, defenses=["kg_plausibility"]))
    outcome = run_grid(exp, tmp_path)
    assert outcome.n_failed == 0
    by = {r.attack: r for r in outcome.records}
    added = by["kg_add"]
    assert added.defense == "kg_plausibility"
    # the same scan by hand: the target the run drew, kg_add's graph, the detector with the
    # victim's interaction and the run's seed
    split = load_graph("nations")
    clean = KGEModel(interaction="distmult", dim=32, epochs=60, random_state=0).fit(split.train)
    pool = np.flatnonzero(filtered_ranks(clean, split.test.triples, split.known()).max(axis=1) <= 1)
    (index,) = np.random.default_rng(0).choice(pool, size=1, replace=False)
    result = (
        ATTACKS.create("kg_add").surrogate(clean).aim(split.test.triples[index]).poison(split.train, 10, 0)
    )
    flags = DETECTORS.create("kg_plausibility", interaction="distmult", random_state=0).fit(result.dataset)
    flagged = flags.auto_flags()
    assert added.n_removed == flagged.sum()
    assert added.det_tpr == pytest.approx((flagged & result.poison_mask).sum() / result.poison_mask.sum())
    # on the clean graph there is nothing to find: no precision or recall, only what it removed
    assert by["none"].det_tpr is None and by["none"].n_removed is not None


def test_a_graph_given_as_a_tsv_file_runs_and_its_content_names_the_run(tmp_path: Path) -> None:
    split = load_graph("nations")
    path = tmp_path / "facts.tsv"
    lines = ["\t".join(f) for part in (split.train, split.valid, split.test) for f in part.names()]
    path.write_text("\n".join(lines) + "\n")
    exp = parse_config(config(datasets=[{"path": str(path)}], baseline=False, targets=1))
    (spec,) = exp.runs
    assert spec.dataset.name == "facts" and spec.data_digest
    record = run_experiment(spec)  # loaded from the spec when the grid does not pass it
    assert record.status == "ok", record.error
    path.write_text("\n".join(lines[:-1]) + "\n")  # other content: another run
    assert parse_config(config(datasets=[{"path": str(path)}], baseline=False)).runs[0].run_id != spec.run_id


def test_poisonlab_run_prints_the_graph_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "graph.toml"
    path.write_text(
        'scenario = "graph"\ndatasets = ["nations"]\n'
        'models = [{ name = "distmult", dim = 32, epochs = 60 }]\n'
        'attacks = ["kg_delete"]\nbudgets = [5]\ntargets = 1\n'
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "target MRR" in out and "5 facts" in out
    page = (tmp_path / "out" / "report.html").read_text()
    assert "target MRR" in page and "budget 5 facts per target" in page and "500%" not in page
    assert main(["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o2")]) == 2


def test_resume_keeps_finished_graph_runs(tmp_path: Path) -> None:
    exp = parse_config(config(targets=1))
    first = run_grid(exp, tmp_path)
    assert first.n_failed == 0
    again = run_grid(parse_config(config(targets=1, budgets=[10, 5])), tmp_path, resume=True)
    assert again.n_failed == 0
    stored = {r.run_id: r for r in again.records}
    assert len(stored) == 3  # the baseline and budget 10 kept, budget 5 added
    kept = {r.run_id: r for r in first.records}
    for run_id, record in kept.items():
        assert isinstance(stored[run_id], GraphRecord)
        assert stored[run_id].target_mrr == record.target_mrr


def test_a_malformed_graph_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = tmp_path / "broken.tsv"
    facts.write_text("a\tlikes\tb\nc\td\n" * 10)
    path = tmp_path / "graph.toml"
    path.write_text(
        f'scenario = "graph"\ndatasets = [{{ path = "{facts.name}" }}]\nattacks = ["kg_delete"]\n'
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "broken.tsv" in err
    assert not (tmp_path / "out").exists()


def test_poisonlab_run_from_python_returns_the_graph_rows(tmp_path: Path) -> None:
    import poisonlab

    frame = poisonlab.run(config(targets=1, baseline=False), out=tmp_path / "py")
    assert list(frame["scenario"]) == ["graph"]
    assert frame["budget"].iloc[0] == 10 and frame["n_targets"].iloc[0] == 1
    # one target: its reciprocal rank, averaged over the head and tail side, in (0, 1]
    assert 0 < frame["target_mrr"].iloc[0] <= 1
    again = poisonlab.load_results(tmp_path / "py")
    assert again["target_mrr"].iloc[0] == frame["target_mrr"].iloc[0]
