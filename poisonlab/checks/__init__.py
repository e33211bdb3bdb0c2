"""The public conformance battery: one ``check_<kind>`` per kind of component.

Each function runs every check that its component's tags call for and raises
:class:`CheckFailed` (an ``AssertionError``) naming the first check that fails.
The test suite runs them over every registered component; run them on your own
component the same way::

    from poisonlab.checks import check_attack
    check_attack(MyAttack())           # tags are read from the class attributes

``yield_<kind>_checks`` give the same checks one by one (to parametrise a test
runner with them). Checks use small synthetic data and take seconds.
"""

from importlib import import_module
from typing import Any

from poisonlab.checks._base import Check, CheckFailed, run_checks

# Public names and the module each lives in; imported on first use.
_EXPORTS = {
    "check_attack": "poisonlab.checks.attacks",
    "yield_attack_checks": "poisonlab.checks.attacks",
    "check_detector": "poisonlab.checks.detectors",
    "yield_detector_checks": "poisonlab.checks.detectors",
    "check_defense": "poisonlab.checks.detectors",
    "yield_defense_checks": "poisonlab.checks.detectors",
    "check_model": "poisonlab.checks.models",
    "yield_model_checks": "poisonlab.checks.models",
    "check_sklearn_estimator": "poisonlab.checks.models",
    "check_dataset": "poisonlab.checks.models",
    "yield_dataset_checks": "poisonlab.checks.models",
    "check_scenario": "poisonlab.checks.scenarios",
    "yield_scenario_checks": "poisonlab.checks.scenarios",
    # federated kinds
    "check_aggregator": "poisonlab.checks.federated",
    "yield_aggregator_checks": "poisonlab.checks.federated",
    "check_client_attack": "poisonlab.checks.federated",
    "yield_client_attack_checks": "poisonlab.checks.federated",
    # stream and provenance kinds
    "check_learner": "poisonlab.checks.stream",
    "yield_learner_checks": "poisonlab.checks.stream",
    "check_transform": "poisonlab.checks.provenance",
    "yield_transform_checks": "poisonlab.checks.provenance",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'poisonlab.checks' has no attribute {name!r}")


__all__ = ["Check", "CheckFailed", "run_checks", *sorted(_EXPORTS)]
