"""The stream scenario of the run config: online-learning streams, gated or not, as grid runs."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from poisonlab.data.dataset import train_test_split
from poisonlab.data.readers import load_dataset
from poisonlab.errors import ConfigError, IncompatibleError, UnknownNameError
from poisonlab.experiments import COLUMNS, SCENARIOS, StreamSpec, parse_config, run_grid
from poisonlab.experiments.records import StreamRecord
from poisonlab.experiments.stream import SETTINGS
from poisonlab.stream import simulate_stream

# Small enough to run the whole grid in a couple of seconds: evaluate after the last batch only.
FAST = {"batch_size": 50, "trusted": 200, "epochs_per_batch": 2, "eval_every": 1000}


def config(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "scenario": "stream",
        "datasets": ["digits"],
        "models": ["sgd"],
        "attacks": ["badnets"],
        "poison_rates": [0.1],
        "gates": ["on", "off"],
        "seeds": [0],
        "stream": dict(FAST),
    }
    raw.update(overrides)
    return raw


def test_the_stream_scenario_is_registered_with_its_record_type() -> None:
    assert SCENARIOS.get("stream").tag("records") == StreamRecord.__name__


def test_the_settings_defaults_are_simulate_streams_own() -> None:
    params = inspect.signature(simulate_stream).parameters
    assert SETTINGS == {name: params[name].default for name in SETTINGS}


def test_a_stream_config_expands_to_one_run_per_cell_with_baselines_first() -> None:
    exp = parse_config(config(seeds=[0, 1], poison_rates=[0.05, 0.1]))
    specs = [s for s in exp.runs if isinstance(s, StreamSpec)]
    assert len(specs) == len(exp.runs)
    # per gate: (baseline: no rate) + (badnets: 2 rates), × 2 seeds
    assert len(exp.runs) == 2 * (1 + 2) * 2
    assert len({s.run_id for s in exp.runs}) == len(exp.runs)
    for gate in ("on", "off"):
        cell = [s for s in specs if s.gate == gate]
        assert [s.attack.name for s in cell[:2]] == ["none", "none"]
        assert all(s.poison_rate is None for s in cell[:2])
    assert len(parse_config(config(baseline=False)).runs) == 2


def test_the_gate_keeps_the_backdoor_out_and_the_records_go_to_the_summary(tmp_path: Path) -> None:
    exp = parse_config(config())
    batches: list[dict[str, Any]] = []
    outcome = run_grid(exp, tmp_path, on_progress=batches.append)
    assert outcome.n_failed == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert all(list(r) == list(COLUMNS) for r in summary)
    assert all(r["scenario"] == "stream" and r["status"] == "ok" for r in summary)
    by = {(r["attack"], r["gate"]): r for r in summary}
    assert set(by) == {("none", "on"), ("none", "off"), ("badnets", "on"), ("badnets", "off")}
    on, off = by[("badnets", "on")], by[("badnets", "off")]
    # Measured (digits, sgd, seed 0, FAST): 115 poisons streamed; the gate admits 0 of
    # them and ASR is 0.0, without it all 115 reach the learner and ASR is 1.0;
    # clean accuracy 0.944 gated, 0.958 ungated (baselines 0.949 and 0.951).
    assert on["n_poison"] == off["n_poison"] == 115
    assert off["n_admitted_poison"] == 115 and off["n_removed"] == 0
    assert on["n_admitted_poison"] < off["n_admitted_poison"] / 4
    assert off["asr"] > 0.9 and on["asr"] < off["asr"] - 0.5
    assert on["n_removed"] >= on["n_poison"] - on["n_admitted_poison"]
    assert all(r["clean_acc"] > 0.85 for r in summary)
    # acc_drop compares each run with the clean stream of the same gate
    for gate in ("on", "off"):
        base, run = by[("none", gate)], by[("badnets", gate)]
        assert base["acc_drop"] == 0.0 and base["asr"] is None and base["n_poison"] == 0
        assert run["acc_drop"] == pytest.approx(base["clean_acc"] - run["clean_acc"], abs=1e-6)
    # every run reports each of its batches as it finishes
    assert batches and {"step", "source", "n_admitted_poison", "accuracy", "asr"} <= set(batches[0])
    assert len(batches) == len(exp.runs) * max(b["step"] for b in batches)


def test_a_record_is_the_direct_simulation_with_the_same_arguments(tmp_path: Path) -> None:
    exp = parse_config(config(gates=["off", "on"], baseline=False))
    records = {r["gate"]: r for r in run_grid(exp, tmp_path).records}
    train, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=0)
    for gate in ("on", "off"):
        direct = simulate_stream(
            train,
            test,
            learner="sgd",
            attack="badnets",
            poison_share=0.1,
            gate=gate == "on",
            seed=0,
            **FAST,  # type: ignore[arg-type]
        )
        r = records[gate]
        assert (r["clean_acc"], r["asr"]) == (direct.accuracy, direct.asr)
        assert r["n_poison"] == direct.n_poison and r["n_admitted_poison"] == direct.n_poison_admitted
        assert r["n_removed"] == len(direct.quarantined)
        assert (r["n_train"], r["n_test"]) == (len(train), len(test))


def test_resume_skips_finished_stream_runs(tmp_path: Path) -> None:
    exp = parse_config(config())
    first = run_grid(exp, tmp_path)
    seen: list[str] = []
    again = run_grid(exp, tmp_path, resume=True, on_result=lambda r: seen.append(r["run_id"]))
    assert seen == [] and again.n_skipped == len(exp.runs)
    assert [r.row() for r in again.records] == [r.row() for r in first.records]
    # a new seed runs only its own runs
    more = parse_config(config(seeds=[0, 1]))
    run_grid(more, tmp_path, resume=True, on_result=lambda r: seen.append(r["run_id"]))
    assert sorted(seen) == sorted(s.run_id for s in more.runs if s.seed == 1)


def test_a_tabular_stream_runs_with_the_tabular_backdoor(tmp_path: Path) -> None:
    # wine's 133 training samples are fewer than the default trusted seed of 200
    stream = {"batch_size": 20, "trusted": 40, "eval_every": 1000}
    exp = parse_config(config(datasets=["wine"], attacks=["feature_trigger"], stream=stream))
    outcome = run_grid(exp, tmp_path)
    assert outcome.n_failed == 0 and len(outcome.records) == 4
    assert all(r["n_train"] == 133 and r["acc_drop"] is not None for r in outcome.records)


def test_learner_parameters_reach_the_learner(tmp_path: Path) -> None:
    plain = parse_config(config(gates=["off"], baseline=False))
    tuned = parse_config(config(gates=["off"], baseline=False, models=[{"name": "sgd", "alpha": 0.5}]))
    [a] = run_grid(plain, tmp_path / "a").records
    [b] = run_grid(tuned, tmp_path / "b").records
    assert b["model"] == "sgd[alpha=0.5]" and a["clean_acc"] != b["clean_acc"]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"stream": {"batch": 50}}, ConfigError, "unknown [stream] setting 'batch'"),
        ({"stream": {"poison_share": 0.1}}, ConfigError, "unknown [stream] setting 'poison_share'"),
        ({"aggregators": ["median"]}, ConfigError, "unknown config key 'aggregators' in a stream config"),
        ({"models": ["sgdd"]}, UnknownNameError, "unknown learner 'sgdd'"),
        ({"models": [{"name": "sgd", "beta": 1}]}, ConfigError, "'sgd' has no parameter 'beta'"),
        ({"models": [{"name": "sgd", "random_state": 1}]}, ConfigError, "the run's seed sets random_state"),
        ({"attacks": ["badnet"]}, UnknownNameError, "unknown attack 'badnet'"),
        ({"attacks": [{"name": "badnets", "target": 3}]}, ConfigError, "stream attacks take no parameters"),
        ({"gates": ["yes"]}, ConfigError, "each gate must be 'on' or 'off', got 'yes'"),
        ({"poison_rates": [1.0]}, ConfigError, "stream poison rate must lie in (0, 1)"),
        ({"datasets": ["wine"]}, IncompatibleError, "attack 'badnets' is for image data"),
        ({"attacks": ["label_flip"]}, IncompatibleError, "attack 'label_flip' has backdoor False"),
        ({"datasets": ["diabetes"], "attacks": ["none"]}, ConfigError, "needs classification data"),
        ({"models": ["cnn"], "datasets": ["wine"]}, IncompatibleError, "learner 'cnn' is for image data"),
        ({"stream": {"trusted": 5000}}, ConfigError, "trusted (5000) must be smaller than the 1347"),
        ({"stream": {"batch_size": 0}}, ConfigError, "[stream] batch_size must be an integer >= 1"),
        ({"stream": {"target": 10}}, ConfigError, "[stream] target class 10 does not exist"),
        ({"stream": {"poisoned_sources": ["x"]}}, ConfigError, "poisoned source 'x' is not one of"),
        ({"stream": {"sources": ["a", "a"]}}, ConfigError, "sources must be distinct names"),
        ({"stream": {"sources": "abc"}}, ConfigError, "[stream] sources must be a list of names, got 'abc'"),
        ({"poison_rates": [0.5]}, ConfigError, "send only"),
    ],
)
def test_bad_stream_configs_fail_in_one_line_before_any_run(
    overrides: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        parse_config(config(**overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_poison_budget_is_refused_exactly_where_the_simulation_refuses() -> None:
    # With the default three sources the poisoned one sends about a third of the stream.
    with pytest.raises(ConfigError) as info:
        parse_config(config(poison_rates=[0.35], gates=["off"], baseline=False))
    found = re.search(r"needs (\d+) poisoned samples .* send only (\d+) non-target", str(info.value))
    assert found is not None, str(info.value)
    train, test = train_test_split(load_dataset("digits"), test_size=0.25, random_state=0)
    kwargs: dict[str, Any] = {"learner": "sgd", "gate": False, "seed": 0, **FAST}
    with pytest.raises(ConfigError, match=f"needs {found[1]} poisoned samples .* only {found[2]} non"):
        simulate_stream(train, test, poison_share=0.35, **kwargs)
    n_stream = len(train) - FAST["trusted"]
    most = int(found[2]) / n_stream  # exactly as many poisons as the non-target samples sent
    [spec] = parse_config(config(poison_rates=[most], gates=["off"], baseline=False)).runs
    assert isinstance(spec, StreamSpec)
    assert simulate_stream(train, test, poison_share=most, **kwargs).n_poison == int(found[2])
    assert spec.poison_rate == most
