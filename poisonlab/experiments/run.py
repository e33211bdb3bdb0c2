"""One run: load → split → poison → defend → train → evaluate. A pure function of its spec."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from poisonlab import metrics
from poisonlab.attacks import ATTACKS
from poisonlab.data.dataset import train_test_split
from poisonlab.defenses import DEFENSES
from poisonlab.experiments.config import RunSpec, load_dataset_component
from poisonlab.experiments.federated import FederatedSpec, federated_record
from poisonlab.models import MODELS

#: Columns of summary.json / results.csv, in order.
RECORD_FIELDS = (
    "run_id",
    "scenario",
    "dataset",
    "model",
    "attack",
    "poison_rate",
    "defense",
    "seed",
    "n_poison",
    "clean_acc",
    "asr",
    "ra",
    "acc_drop",
    "test_mse",
    "mse_ratio",
    "n_removed",
    "det_tpr",
    "det_fpr",
    "det_precision",
    "det_f1",
    "det_auroc",
    "der",
    "malicious_selected",
    "seconds",
    "status",
    "error",
)


def run_experiment(
    spec: RunSpec | FederatedSpec, on_round: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Execute one run and return its result record; never raises for a failed run.

    ``asr`` is BackdoorBench's attack success rate for backdoors and, for a targeted
    label flip, the share of source-class test inputs predicted as the target;
    ``ra`` (robust accuracy) exists for backdoors only. ``acc_drop`` is filled in
    later from the clean baseline run of the same cell. Regression runs report
    ``test_mse`` instead of accuracies, and ``mse_ratio`` (this run's test MSE over
    the clean baseline's) is filled in later the same way. A federated run (see
    :mod:`poisonlab.experiments.federated`) calls ``on_round`` with each round's
    record as it finishes.
    """
    start = time.perf_counter()
    record = run_record_stub(spec)
    try:
        if isinstance(spec, FederatedSpec):
            record.update(_evaluate_federated(spec, on_round))
        else:
            record.update(_evaluate(spec))
        record["status"] = "ok"
    except Exception as exc:  # a failed run is recorded and the grid goes on
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def run_record_stub(spec: RunSpec | FederatedSpec) -> dict[str, Any]:
    """The identifying fields of a run's record, with every metric still empty.

    A federated run's aggregation rule is its defense, and its share of malicious
    clients its poison rate.
    """
    if isinstance(spec, FederatedSpec):
        rate, defense = spec.malicious_share, spec.aggregator.label
    else:
        rate, defense = spec.poison_rate, spec.defense.label
    return {
        "run_id": spec.run_id,
        "scenario": spec.scenario,
        "dataset": spec.dataset.label,
        "model": spec.model.label,
        "attack": spec.attack.label,
        "poison_rate": rate,
        "defense": defense,
        "seed": spec.seed,
        "n_poison": None,
        "clean_acc": None,
        "asr": None,
        "ra": None,
        "acc_drop": None,
        "test_mse": None,
        "mse_ratio": None,
        "malicious_selected": None,
        "n_removed": None,
        "det_tpr": None,
        "det_fpr": None,
        "det_precision": None,
        "det_f1": None,
        "det_auroc": None,
        "der": None,
        "error": None,
    }


def _evaluate(spec: RunSpec) -> dict[str, Any]:
    data = load_dataset_component(spec.dataset)
    train, test = train_test_split(data, test_size=spec.test_size, random_state=spec.seed)
    attack = ATTACKS.create(spec.attack.name, **spec.attack.params)
    rng = np.random.default_rng([spec.seed, 1])
    poisoned = attack.poison(train, spec.poison_rate, rng)
    defense = DEFENSES.create(spec.defense.name, **spec.defense.params)
    defended = defense.apply(poisoned.dataset, np.random.default_rng([spec.seed, 2]))
    MODELS.require(spec.model.name, f"dataset {spec.dataset.label!r} ({data.task})", task=data.task)
    model = MODELS.create(spec.model.name, random_state=spec.seed, **spec.model.params)
    model.fit(defended.dataset.X, defended.dataset.y)

    out: dict[str, Any] = {
        "n_poison": poisoned.n_poison,
        "n_train": len(defended.dataset),
        "n_test": len(test),
        "n_removed": int(defended.removed_mask.sum()),
    }
    if data.is_regression:
        out["test_mse"] = metrics.mean_squared_error(test.y, model.predict(test.X))
    else:
        out["clean_acc"] = metrics.clean_accuracy(test.y, model.predict(test.X))
    if spec.defense.name != "none":
        detection = metrics.detection_scores(poisoned.poison_mask, defended.removed_mask, defended.scores)
        out.update({f"det_{k}": v for k, v in detection.items()})
    if poisoned.trigger is not None and poisoned.target_class is not None:
        eligible = metrics.non_target_mask(test.y, poisoned.target_class)
        triggered = poisoned.trigger.apply(test.X[eligible])
        y_pred = model.predict(triggered)
        y_true = test.y[eligible]
        out["asr"] = metrics.attack_success_rate(y_true, y_pred, poisoned.target_class)
        out["ra"] = metrics.robust_accuracy(y_true, y_pred, poisoned.target_class)
    elif poisoned.source_class is not None and poisoned.target_class is not None:
        out["asr"] = metrics.targeted_flip_success(
            test.y, model.predict(test.X), poisoned.source_class, poisoned.target_class
        )
    return out


def _evaluate_federated(
    spec: FederatedSpec, on_round: Callable[[dict[str, Any]], None] | None
) -> dict[str, Any]:
    from poisonlab.federated.simulation import plan_simulation, simulate

    data = load_dataset_component(spec.dataset)
    train, test = train_test_split(data, test_size=spec.test_size, random_state=spec.seed)
    kwargs = spec.simulate_kwargs()
    rounds = simulate(train, test, on_round=on_round, **kwargs)
    kwargs.pop("seed")
    plan = plan_simulation(n_train=len(train), n_classes=train.n_classes, **kwargs)
    return {"n_train": len(train), "n_test": len(test), **federated_record(rounds, plan.n_malicious)}
