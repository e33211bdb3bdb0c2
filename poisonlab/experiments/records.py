"""Run records: what one run left behind, frozen and typed, one type per scenario.

Every scenario's :meth:`~poisonlab.experiments.scenarios.Scenario.execute` returns
a record; ``summary.json`` and ``results.csv`` are :data:`COLUMNS` of each record's
:meth:`RunRecord.row`. Records read like mappings too (``record["asr"]``), a column
a scenario does not have reads as ``None``.

Figures that compare runs (``acc_drop``, ``mse_ratio``, ``der``) are filled in once
the grid's records are known, by each record type's :meth:`RunRecord.derive`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from poisonlab import metrics
from poisonlab.experiments.spec import NONE

__all__ = [
    "COLUMNS",
    "CentralisedRecord",
    "FederatedRecord",
    "GraphRecord",
    "PrivacyRecord",
    "RunRecord",
    "StreamRecord",
    "condition_text",
    "derive",
    "from_stored",
]

#: Columns of summary.json / results.csv, in order; each scenario fills its own.
COLUMNS = (
    "run_id",
    "scenario",
    "dataset",
    "model",
    "attack",
    "phase",
    "poison_rate",
    "budget",
    "defense",
    "aggregator",
    "malicious_share",
    "n_malicious",
    "gate",
    "seed",
    "n_poison",
    "clean_acc",
    "asr",
    "ra",
    "acc_drop",
    "n_modified",
    "perturbation",
    "persistence",
    "subpop_acc",
    "subpop_drop",
    "rest_acc",
    "rest_drop",
    "test_mse",
    "mse_ratio",
    "n_targets",
    "target_mrr",
    "target_mrr_drop",
    "target_mrr_se",
    "hits_at_1",
    "hits_at_10",
    "graph_mrr",
    "graph_mrr_change",
    "shadow_models",
    "lira_tpr_01",
    "lira_tpr_1",
    "lira_auc",
    "lira_tpr_01_clean",
    "lira_tpr_1_clean",
    "lira_auc_clean",
    "n_removed",
    "det_tpr",
    "det_fpr",
    "det_precision",
    "det_f1",
    "det_auroc",
    "der",
    "certified_acc",
    "dp_epsilon",
    "malicious_selected",
    "diverged_round",
    "n_admitted_poison",
    "n_train",
    "n_test",
    "seconds",
    "torch_threads",
    "versions",
    "status",
    "error",
)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """What every run records: who it was, how it went; subclasses add their figures."""

    scenario: ClassVar[str]
    #: The columns that say how the run went; a finished run fills at least one.
    figures: ClassVar[tuple[str, ...]] = ("clean_acc", "test_mse")

    run_id: str
    dataset: str
    model: str
    attack: str
    seed: int
    status: str = "ok"
    error: str | None = None
    seconds: float | None = None
    #: PyTorch's intra-op thread count during the run (figures depend on it); None if torch was not used
    torch_threads: int | None = None
    #: what computed the run: "poisonlab 0.1.0, numpy 2.2.6, scikit-learn 1.7.2, torch 2.13.0"
    versions: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    clean_acc: float | None = None
    asr: float | None = None
    acc_drop: float | None = None
    #: a failed run's cause: ``"user"`` (a :class:`~poisonlab.errors.PoisonlabError`:
    #: bad data, a bad parameter) or ``"bug"`` (anything else)
    failure: str | None = None
    #: the failure's traceback, for the store only (never a column)
    traceback: str | None = field(default=None, repr=False)

    # -- reading ------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key == "scenario":
            return self.scenario
        if key in self._field_names():
            return getattr(self, key)
        if key in COLUMNS:
            return None
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def row(self) -> dict[str, Any]:
        """The record's value of every column (``None`` where the scenario has none)."""
        return {c: self[c] for c in COLUMNS}

    def to_json(self) -> str:
        """Everything the store keeps: the row and the scenario's extras (not the traceback)."""
        stored = {k: getattr(self, k) for k in self._field_names() if k != "traceback"}
        return json.dumps({"scenario": self.scenario, **stored}, default=_plain)

    @classmethod
    def _field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    # -- grouping -----------------------------------------------------------------------
    def cell(self) -> tuple[Any, ...]:
        """What identifies the run's grid cell across seeds (mean ± std are taken over it)."""
        raise NotImplementedError

    def condition(self) -> tuple[str, str]:
        """(column, value) of the cell's condition: a rate, a share of malicious clients, ..."""
        raise NotImplementedError

    def defended_by(self) -> tuple[str, str]:
        """(column, value) of what stands between the attacker and the model."""
        raise NotImplementedError

    @classmethod
    def derive(cls, records: list[RunRecord]) -> list[RunRecord]:
        """Fill the figures that compare this scenario's runs with each other.

        ``acc_drop`` is the C-ACC of the attack-free run of the same (dataset, model,
        defense, seed) minus this run's, the defense being what :meth:`defended_by`
        names (a defense, an aggregation rule, a gate); scenarios add their own figures.
        """
        runs = [r for r in records if isinstance(r, cls)]
        baseline = {r._baseline_key(): r for r in runs if r.attack == NONE and r.status == "ok"}
        out: list[RunRecord] = []
        for r in runs:
            base = baseline.get(r._baseline_key())
            out.append(dataclasses.replace(r, acc_drop=_drop(base.clean_acc if base else None, r.clean_acc)))
        return out

    def _baseline_key(self) -> tuple[Any, ...]:
        return (self.dataset, self.model, self.defended_by()[1], self.seed)

    def failed(self, error: str, *, failure: str = "bug", traceback: str | None = None) -> RunRecord:
        """This record as a failed run's: ``failure`` is ``"user"`` or ``"bug"``."""
        return dataclasses.replace(self, status="failed", error=error, failure=failure, traceback=traceback)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__}")


@dataclass(frozen=True, kw_only=True)
class CentralisedRecord(RunRecord):
    """One poison → defend → train → evaluate run (see :mod:`poisonlab.experiments.centralised`)."""

    scenario: ClassVar[str] = "centralised"

    poison_rate: float | None = None
    defense: str = NONE
    n_poison: int | None = None
    ra: float | None = None
    test_mse: float | None = None
    mse_ratio: float | None = None
    n_removed: int | None = None
    det_tpr: float | None = None
    det_fpr: float | None = None
    det_precision: float | None = None
    det_f1: float | None = None
    det_auroc: float | None = None
    der: float | None = None
    #: when the attacker acted: ``"training"`` (poisoning) or ``"inference"`` (evasion)
    phase: str = "training"
    #: training samples poisoned, or test inputs perturbed
    n_modified: int | None = None
    #: what each modified sample may change, in words (an ε ball), where the attack bounds it
    perturbation: str | None = None
    #: share of untouched future inputs the attack costs: a poisoning's ΔACC (≥ 0); 0 for evasion
    persistence: float | None = None
    #: a subpopulation attack's accuracy on its group's test inputs and on the rest, and the
    #: drops from the clean model of the same split and seed
    subpop_acc: float | None = None
    subpop_drop: float | None = None
    rest_acc: float | None = None
    rest_drop: float | None = None
    #: a certifying defense's certified accuracy at the radius this run's poisons need
    certified_acc: float | None = None
    #: the ε a differentially private training spent
    dp_epsilon: float | None = None

    def cell(self) -> tuple[Any, ...]:
        return (self.scenario, self.dataset, self.model, self.attack, self.poison_rate, self.defense)

    def condition(self) -> tuple[str, str]:
        return "poison_rate", self.poison_rate  # type: ignore[return-value]

    def defended_by(self) -> tuple[str, str]:
        return "defense", self.defense

    @classmethod
    def derive(cls, records: list[RunRecord]) -> list[RunRecord]:
        """``acc_drop``, ``mse_ratio`` and BackdoorBench's ``der``.

        ``acc_drop`` = the clean baseline's C-ACC − this run's, per (dataset, model,
        defense, seed). ``mse_ratio`` = this run's test MSE / the test MSE of the
        unpoisoned, *undefended* model of (dataset, model, seed), so a defense's cost
        on clean data shows as a ratio above 1. ``der`` = [max(0, ΔASR) − max(0,
        ΔACC) + 1] / 2 against the undefended run of the same cell.
        """
        runs = [r for r in records if isinstance(r, CentralisedRecord)]
        ok = [r for r in runs if r.status == "ok"]
        baseline = {(r.dataset, r.model, r.defense, r.seed): r for r in ok if r.attack == NONE}
        undefended = {
            (r.dataset, r.model, r.attack, r.poison_rate, r.seed): r for r in ok if r.defense == NONE
        }
        out: list[RunRecord] = []
        for r in runs:
            base = baseline.get((r.dataset, r.model, r.defense, r.seed))
            clean = baseline.get((r.dataset, r.model, NONE, r.seed))
            plain = undefended.get((r.dataset, r.model, r.attack, r.poison_rate, r.seed))
            drop = _drop(base.clean_acc if base else None, r.clean_acc)
            ratio = None
            if clean is not None and clean.test_mse and r.test_mse is not None:
                ratio = round(r.test_mse / clean.test_mse, 6)
            der = None
            if r.defense != NONE and plain is not None and r.asr is not None and plain.asr is not None:
                assert plain.clean_acc is not None and r.clean_acc is not None  # a backdoor run has both
                der = metrics.defense_effectiveness_rating(plain.asr, r.asr, plain.clean_acc, r.clean_acc)
            persistence = 0.0 if r.phase == "inference" else (None if drop is None else max(0.0, drop))
            if r.attack == NONE:
                persistence = None
            out.append(
                dataclasses.replace(r, acc_drop=drop, mse_ratio=ratio, der=der, persistence=persistence)
            )
        return out


@dataclass(frozen=True, kw_only=True)
class FederatedRecord(RunRecord):
    """One federated simulation (see :mod:`poisonlab.experiments.federated`).

    ``clean_acc`` and ``asr`` are the global model's after the last round;
    ``malicious_selected`` the mean share of malicious updates a selection rule
    kept; ``rounds`` every round's record.
    """

    scenario: ClassVar[str] = "federated"

    aggregator: str = "fedavg"
    malicious_share: float | None = None
    n_malicious: int | None = None
    malicious_selected: float | None = None
    diverged_round: int | None = None
    rounds: tuple[dict[str, Any], ...] = ()

    def cell(self) -> tuple[Any, ...]:
        return (self.scenario, self.dataset, self.model, self.attack, self.malicious_share, self.aggregator)

    def condition(self) -> tuple[str, str]:
        return "malicious_share", self.malicious_share  # type: ignore[return-value]

    def defended_by(self) -> tuple[str, str]:
        return "aggregator", self.aggregator


@dataclass(frozen=True, kw_only=True)
class StreamRecord(RunRecord):
    """One online-learning stream, gated or not (see :mod:`poisonlab.experiments.stream`).

    ``poison_rate`` is the poisoned share of the stream, ``gate`` ``"on"``/``"off"``;
    ``clean_acc``/``asr`` are the model's after the last batch, ``n_admitted_poison``
    the poisons the learner was given; ``timeline`` the accuracy and ASR at each
    evaluated step (``step``, ``accuracy``, ``asr``).
    """

    scenario: ClassVar[str] = "stream"

    poison_rate: float | None = None
    gate: str = "on"
    n_poison: int | None = None
    n_admitted_poison: int | None = None
    n_removed: int | None = None
    timeline: tuple[dict[str, Any], ...] = ()

    def cell(self) -> tuple[Any, ...]:
        return (self.scenario, self.dataset, self.model, self.attack, self.poison_rate, self.gate)

    def condition(self) -> tuple[str, str]:
        return "poison_rate", self.poison_rate  # type: ignore[return-value]

    def defended_by(self) -> tuple[str, str]:
        # the attack-free baseline runs with the same gate: acc_drop is the poison's cost
        # alone; the gate's own cost on clean data is the gated baseline's n_removed
        return "gate", self.gate


@dataclass(frozen=True, kw_only=True)
class GraphRecord(RunRecord):
    """One knowledge-graph poisoning run, target by target (see :mod:`poisonlab.experiments.graph`).

    ``budget`` is the facts the attack may change per target (``None`` for the
    attack-free baseline), ``n_modified`` the facts it changed per target on
    average. ``target_mrr`` is the targets' mean reciprocal rank after the attack
    (filtered, head and tail side; 1 before it, by the choice of targets),
    ``target_mrr_drop`` its relative drop ``1 − target_mrr`` and ``target_mrr_se``
    the standard error of the per-target reciprocal ranks; ``hits_at_1`` and
    ``hits_at_10`` the targets' Hits@k after. ``graph_mrr`` is the MRR of the other
    test facts after retraining and ``graph_mrr_change`` its change from the clean
    victim's (a targeted attack should leave it alone). With a defense,
    ``n_removed`` is the facts it flagged per target, ``det_precision`` and
    ``det_tpr`` judge all its flags against all the facts the attack added.
    """

    scenario: ClassVar[str] = "graph"
    figures: ClassVar[tuple[str, ...]] = ("target_mrr", "graph_mrr")

    budget: int | None = None
    defense: str = NONE
    n_targets: int | None = None
    n_modified: float | None = None
    target_mrr: float | None = None
    target_mrr_drop: float | None = None
    target_mrr_se: float | None = None
    hits_at_1: float | None = None
    hits_at_10: float | None = None
    graph_mrr: float | None = None
    graph_mrr_change: float | None = None
    n_removed: float | None = None
    det_precision: float | None = None
    det_tpr: float | None = None

    def cell(self) -> tuple[Any, ...]:
        return (self.scenario, self.dataset, self.model, self.attack, self.budget, self.defense)

    def condition(self) -> tuple[str, str]:
        return "budget", self.budget  # type: ignore[return-value]

    def defended_by(self) -> tuple[str, str]:
        return "defense", self.defense


@dataclass(frozen=True, kw_only=True)
class PrivacyRecord(RunRecord):
    """One membership audit, clean against poisoned (see :mod:`poisonlab.experiments.privacy`).

    LiRA's true-positive rate at 0.1% and 1% false positives and its AUC on the
    targets, with the attack's copies (``lira_*``) and without (``lira_*_clean``), on
    the same halves and model seeds. ``clean_acc`` is the poisoned models' accuracy on
    the rows outside their half, ``acc_drop`` what the poisons cost against the clean
    models of the same run, ``n_modified`` the poisons added (targets × copies),
    ``dp_epsilon`` the mean ε a DP-SGD defense spent.
    """

    scenario: ClassVar[str] = "privacy"
    figures: ClassVar[tuple[str, ...]] = ("lira_tpr_1", "lira_auc")

    defense: str = NONE
    shadow_models: int | None = None
    n_targets: int | None = None
    n_modified: float | None = None
    lira_tpr_01: float | None = None
    lira_tpr_1: float | None = None
    lira_auc: float | None = None
    lira_tpr_01_clean: float | None = None
    lira_tpr_1_clean: float | None = None
    lira_auc_clean: float | None = None
    dp_epsilon: float | None = None

    def cell(self) -> tuple[Any, ...]:
        return (self.scenario, self.dataset, self.model, self.attack, self.n_targets, self.defense)

    def condition(self) -> tuple[str, str]:
        return "n_targets", self.n_targets  # type: ignore[return-value]

    def defended_by(self) -> tuple[str, str]:
        return "defense", self.defense

    @classmethod
    def derive(cls, records: list[RunRecord]) -> list[RunRecord]:
        """Nothing to derive: each run holds its clean side (``acc_drop`` is computed in the run)."""
        return [r for r in records if isinstance(r, cls)]


def condition_text(column: str, value: Any) -> str | None:
    """A cell's condition as a reader says it (``None`` for a baseline, which has none).

    A share in % (a poison rate, a share of malicious clients), a graph attack's
    budget in facts per target, a membership audit's number of targets.
    """
    if value is None:
        return None
    if column == "budget":
        return f"{value} facts per target"
    if column == "n_targets":
        return str(value)
    return f"{100 * value:g}%"


def _drop(base: float | None, acc: float | None) -> float | None:
    return None if base is None or acc is None else round(base - acc, 6)


RECORD_TYPES: dict[str, type[RunRecord]] = {
    cls.scenario: cls
    for cls in (CentralisedRecord, FederatedRecord, StreamRecord, GraphRecord, PrivacyRecord)
}


def derive(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Every record with its comparative figures filled in, in the order given."""
    records = list(records)
    done: dict[str, RunRecord] = {}
    for cls in RECORD_TYPES.values():
        for r in cls.derive([r for r in records if type(r) is cls]):
            done[r.run_id] = r
    return [done.get(r.run_id, r) for r in records]


def from_stored(stored: dict[str, Any]) -> RunRecord:
    """A record read back from the results store, written by this or an earlier poisonlab.

    Before records were typed, a federated run stored its aggregation rule under
    ``defense``, its share of malicious clients under ``poison_rate`` and their
    number under ``n_poison``; those are read into their own fields.
    """
    data = dict(stored)
    cls = RECORD_TYPES.get(data.pop("scenario", "centralised"))
    if cls is None:
        raise ValueError(f"stored record of unknown scenario {stored.get('scenario')!r}")
    if cls is FederatedRecord and "aggregator" not in data:
        data["aggregator"] = data.pop("defense", "fedavg")
        data["malicious_share"] = data.pop("poison_rate", None)
        data["n_malicious"] = data.pop("n_poison", None)
    for key in ("rounds", "timeline"):
        if key in data:
            data[key] = tuple(data[key])
    known = cls._field_names()
    return cls(**{k: v for k, v in data.items() if k in known})
