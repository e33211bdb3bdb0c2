"""Conformance checks for scenarios: parse → plan → execute on the scenario's own example config."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import partial
from typing import Any

from poisonlab.checks._base import Check, expect, run_checks
from poisonlab.errors import ConfigError
from poisonlab.experiments.config import Experiment, parse_config
from poisonlab.experiments.protocol import Scenario
from poisonlab.experiments.records import COLUMNS, RunRecord
from poisonlab.registry import Entry

__all__ = ["check_scenario", "yield_scenario_checks"]


def yield_scenario_checks(scenario: Scenario | Any) -> Iterator[Check]:
    """Every check of the scenario protocol, run on the scenario's ``example`` config.

    ``scenario`` is a registry entry of :data:`~poisonlab.experiments.scenarios.SCENARIOS`
    (its name is the config's ``scenario``), or a scenario instance registered there.
    """
    entry_name = scenario.name if isinstance(scenario, Entry) else None
    instance: Scenario = scenario.create() if isinstance(scenario, Entry) else scenario
    name = entry_name or type(instance).__name__
    state: dict[str, Any] = {}

    def experiment() -> Experiment:
        if "experiment" not in state:
            state["experiment"] = parse_config(instance.example)
        return state["experiment"]

    yield Check(f"{name}.example_declares_its_keys", partial(_keys, instance))
    yield Check(f"{name}.example_parses_into_unique_specs", partial(_parses, experiment, instance))
    yield Check(f"{name}.refuses_a_key_it_does_not_read", partial(_unknown_key, instance))
    yield Check(f"{name}.executes_into_typed_records", partial(_executes, experiment, instance, state))
    yield Check(f"{name}.same_spec_same_record", partial(_deterministic, experiment, instance, state))
    yield Check(f"{name}.stub_names_the_run", partial(_stub, experiment, instance))


def check_scenario(scenario: Scenario | Any) -> list[str]:
    """Run every check of :func:`yield_scenario_checks`; raise ``CheckFailed`` at the first failure."""
    return run_checks(yield_scenario_checks(scenario))


def _keys(scenario: Scenario) -> None:
    unread = sorted(set(scenario.example) - scenario.keys)
    expect(not unread, f"its example holds keys it does not read: {unread}")
    expect({"scenario", "datasets", "seeds"} <= scenario.keys, "it reads no scenario, datasets or seeds")


def _parses(experiment: Any, scenario: Scenario) -> None:
    runs = experiment().runs
    expect(runs, "its example expands to no run")
    expect(len({s.run_id for s in runs}) == len(runs), "two specs share a run id")
    again = parse_config(scenario.example).runs
    expect([s.run_id for s in again] == [s.run_id for s in runs], "parsing twice gives other run ids")


def _unknown_key(scenario: Scenario) -> None:
    try:
        parse_config({**scenario.example, "no_such_key": 1})
    except ConfigError:
        return
    expect(False, "a config key it does not read was accepted")


def _record(experiment: Any, scenario: Scenario, state: dict[str, Any]) -> RunRecord:
    if "record" not in state:
        exp = experiment()
        spec = exp.runs[-1]
        state["record"] = scenario.execute(spec, exp.dataset_of(spec))
    return state["record"]


def _executes(experiment: Any, scenario: Scenario, state: dict[str, Any]) -> None:
    record = _record(experiment, scenario, state)
    spec = experiment().runs[-1]
    expect(isinstance(record, RunRecord), f"execute returned a {type(record).__name__}, not a RunRecord")
    expect(record.scenario == spec.scenario, f"a {spec.scenario} spec gave a {record.scenario} record")
    expect(record.run_id == spec.run_id and record.status == "ok", "the record does not name its run")
    row = record.row()
    expect(list(row) == list(COLUMNS), "the record's row is not the summary's columns")
    expect(any(row[f] is not None for f in record.figures), "the record holds no figure")
    try:
        record.__setattr__("seed", -1)
    except dataclasses.FrozenInstanceError:
        return
    expect(False, "the record is not frozen")


def _deterministic(experiment: Any, scenario: Scenario, state: dict[str, Any]) -> None:
    first = _record(experiment, scenario, state).row()
    exp = experiment()
    spec = exp.runs[-1]
    second = scenario.execute(spec, exp.dataset_of(spec)).row()
    expect(first == second, "executing the same spec twice gave different records")


def _stub(experiment: Any, scenario: Scenario) -> None:
    spec = experiment().runs[0]
    stub = scenario.stub(spec)
    expect(stub.run_id == spec.run_id and stub.seed == spec.seed, "the stub does not name its run")
    expect(all(stub[f] is None for f in (*stub.figures, "asr")), "the stub holds figures")
