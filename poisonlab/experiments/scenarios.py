"""Every scenario by name: the registry the config parser, the runner and the CLI dispatch through."""

from __future__ import annotations

from poisonlab.experiments.centralised import CentralisedScenario
from poisonlab.experiments.federated import FederatedScenario
from poisonlab.experiments.graph import GraphScenario
from poisonlab.experiments.privacy import PrivacyScenario
from poisonlab.experiments.protocol import Scenario
from poisonlab.experiments.stream import StreamScenario
from poisonlab.registry import Registry

__all__ = ["SCENARIOS"]

#: ``records``: the record type of the scenario's runs.
SCENARIOS: Registry[Scenario] = Registry("scenario", tags={"records": "RunRecord"})
SCENARIOS.add(
    "centralised",
    CentralisedScenario,
    "Poison a training set, defend it, train one model, measure C-ACC, ASR, RA or MSE",
    records="CentralisedRecord",
)
SCENARIOS.add(
    "federated",
    FederatedScenario,
    "Federated training with malicious clients and a robust aggregation rule",
    records="FederatedRecord",
)
SCENARIOS.add(
    "stream",
    StreamScenario,
    "Online learning from batched sources, one poisoned with a backdoor, with or without a gate",
    records="StreamRecord",
)
SCENARIOS.add(
    "graph",
    GraphScenario,
    "Knowledge-graph poisoning: target facts demoted by changed facts, with or without a scan",
    records="GraphRecord",
)
SCENARIOS.add(
    "privacy",
    PrivacyScenario,
    "Truth Serum's membership poisoning measured by LiRA with shadow models, clean against poisoned",
    records="PrivacyRecord",
)
