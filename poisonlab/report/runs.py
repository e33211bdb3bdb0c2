"""The report of a results folder: every grid ``poisonlab run`` and ``poisonlab fl`` wrote.

Which figures appear depends on what the runs measured: poisoning against rate
(C-ACC, ASR, RA, ΔACC, MSE), each defense's effect and its detection precision and
recall, federated accuracy and kept malicious updates per round, stream accuracy and
ASR over time. Means and spreads are over seeds, as in ``summary.json``'s aggregate.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from poisonlab.experiments.records import (
    CentralisedRecord,
    FederatedRecord,
    RunRecord,
    StreamRecord,
    condition_text,
)
from poisonlab.experiments.spec import NONE
from poisonlab.report.charts import Series, bars, lines, panels
from poisonlab.report.page import Page, Plot, svg_of

__all__ = ["run_page"]

R = TypeVar("R", bound=RunRecord)


def run_page(
    records: Sequence[RunRecord], invocations: Sequence[dict[str, Any]], configs: dict[str, Any], where: Path
) -> Page:
    """The page for a results folder's records (derived), its recorded starts and run configs."""
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status != "ok"]
    page = Page(
        f"poisonlab results: {where.name}",
        f"{len(records)} runs in {where} ({len(ok)} finished, {len(failed)} failed)",
    )
    central = [r for r in ok if isinstance(r, CentralisedRecord)]
    federated = [r for r in ok if isinstance(r, FederatedRecord)]
    stream = [r for r in ok if isinstance(r, StreamRecord)]
    plots = [*_centralised(central), *_federated(federated), *_stream(stream)]
    if plots:
        page.heading("Figures")
    for i, plot in enumerate(plots):
        page.figure(Plot(plot[0], plot[1], svg_of(plot[2], f"f{i}")))
    _aggregate_table(page, ok)
    if failed:
        page.heading("Failed runs")
        page.table(
            ("attack", "dataset", "model", "seed", "cause", "error"),
            [(r.attack, r.dataset, r.model, r.seed, r.failure, r.error) for r in failed],
        )
    _provenance(page, records, invocations, configs)
    return page


_Drawn = tuple[str, str, Any]  # title, caption, matplotlib Figure


def _label(r: RunRecord) -> str:
    by, value = r.defended_by()
    # the undefended run is named by its attack alone; a stream's gate is named either way
    return r.attack if value in (NONE, "fedavg") and by != "gate" else f"{r.attack} + {by} {value}"


def _styles(records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Line properties per label: one colour per attack, one dash pattern per defense."""
    attacks = sorted({r.attack for r in records})
    defenses = sorted({r.defended_by()[1] for r in records})
    palette = [f"C{i}" for i in range(10)]
    dashes = ["-", "--", ":", "-."]
    return {
        _label(r): {
            "color": palette[attacks.index(r.attack) % 10],
            "linestyle": dashes[defenses.index(r.defended_by()[1]) % 4],
        }
        for r in records
    }


def _grouped(records: Iterable[R], key: Callable[[R], Any]) -> dict[Any, list[R]]:
    out: dict[Any, list[R]] = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return dict(out)


def _rate(rate: float | None) -> str:
    return condition_text("poison_rate", rate) or "no poison"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _by_rate(records: Sequence[CentralisedRecord], metric: str) -> tuple[dict[str, Series], dict[str, float]]:
    """Per line label: metric mean and std against poison rate; the clean baseline as a flat line."""
    series: dict[str, Series] = {}
    flat: dict[str, float] = {}
    for label, runs in _grouped(records, _label).items():
        points: dict[float, list[float]] = defaultdict(list)
        baseline: list[float] = []
        for r in runs:
            value = r[metric]
            if value is None:
                continue
            if r.poison_rate is None:
                baseline.append(value)
            else:
                points[r.poison_rate].append(value)
        if points:
            rates = sorted(points)
            stats = [_mean_std(points[x]) for x in rates]
            spread = [s for _, s in stats] if max(len(points[x]) for x in rates) > 1 else None
            series[label] = (rates, [m for m, _ in stats], spread)
        elif baseline:
            flat[f"{label} (no poison)"] = float(np.mean(baseline))
    return series, flat


#: Metrics drawn against poison rate: (column, title, axis label, caption).
_RATE_METRICS = (
    (
        "clean_acc",
        "Clean accuracy (C-ACC) against poison rate",
        "C-ACC",
        "Accuracy on the untouched test set; the dashed line is the model trained without poison.",
    ),
    (
        "asr",
        "Attack success rate (ASR) against poison rate",
        "ASR",
        "Share of triggered (or targeted) test inputs of other classes that the model sends to "
        "the attacker's class.",
    ),
    (
        "ra",
        "Robust accuracy (RA) against poison rate",
        "RA",
        "Share of triggered test inputs still given their true class.",
    ),
    (
        "acc_drop",
        "Accuracy drop (ΔACC) against poison rate",
        "ΔACC",
        "C-ACC of the clean model of the same defense and seed minus the poisoned model's: "
        "what an availability or label-flip attack costs.",
    ),
    (
        "test_mse",
        "Test MSE against poison rate",
        "MSE",
        "Mean squared error of the regression model on the untouched test set.",
    ),
    (
        "certified_acc",
        "Certified accuracy against poison rate",
        "certified accuracy",
        "Share of test inputs classified correctly with a certificate that covers the run's poisons.",
    ),
)


def _centralised(records: list[CentralisedRecord]) -> list[_Drawn]:
    if not records:
        return []
    drawn: list[_Drawn] = []
    cells = _grouped(records, lambda r: (r.dataset, r.model))
    style = _styles(records)
    for metric, title, axis, caption in _RATE_METRICS:
        if not any(r[metric] is not None for r in records):
            continue
        figure, axes = panels(len(cells))
        for ax, ((dataset, model), runs) in zip(axes, cells.items(), strict=True):
            series, flat = _by_rate(runs, metric)
            lines(
                ax,
                series,
                flat=flat if metric == "clean_acc" or metric == "test_mse" else None,
                title=f"{dataset} · {model}",
                xlabel="poison rate",
                ylabel=axis,
                percent_x=True,
                percent_y=metric != "test_mse",
                style=style,
            )
        drawn.append((title, caption + " Bands: ± one standard deviation over seeds.", figure))
    attacked = [r for r in records if r.asr is not None and r.clean_acc is not None]
    if attacked:
        figure, axes = panels(1, width=5.5, height=4)
        ax = axes[0]
        for label, runs in _grouped(attacked, _label).items():
            asr = [100 * float(r.asr or 0.0) for r in runs]
            acc = [100 * float(r.clean_acc or 0.0) for r in runs]
            marker = "o" if style[label]["linestyle"] == "-" else "x"
            ax.scatter(asr, acc, label=label, s=22, color=style[label]["color"], marker=marker)
        ax.set_xlabel("ASR (%)")
        ax.set_ylabel("C-ACC (%)")
        ax.set_title("each run: effect against stealth", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        drawn.append(
            (
                "Effect against stealth, one point per run",
                "An attack at the top right works and goes unnoticed by accuracy alone; a defense "
                "moves its points left.",
                figure,
            )
        )
    drawn += _defense_effect(records)
    drawn += _detection(records)
    return drawn


def _defense_effect(records: list[CentralisedRecord]) -> list[_Drawn]:
    """Before/after bars: each defended cell beside the undefended run of the same attack and rate."""
    defended = [r for r in records if r.defense != NONE and r.attack != NONE]
    if not defended:
        return []
    groups = sorted({(r.dataset, r.model, r.attack, r.poison_rate) for r in defended}, key=str)
    defenses = sorted({r.defense for r in defended})
    figure, axes = panels(2 if any(r.asr is not None for r in records) else 1, width=5.5)
    names = [
        f"{a} {100 * (p or 0):g}%" + ("" if len(groups) == len(set(g[2:] for g in groups)) else f" {d}·{m}")
        for d, m, a, p in groups
    ]
    for ax, metric, axis in zip(axes, ("clean_acc", "asr"), ("C-ACC", "ASR"), strict=False):
        values: dict[str, list[float | None]] = {}
        errors: dict[str, list[float | None]] = {}
        for defense in (NONE, *defenses):
            runs = _grouped(
                [r for r in records if r.defense == defense],
                lambda r: (r.dataset, r.model, r.attack, r.poison_rate),
            )
            cells = [[r[metric] for r in runs.get(g, []) if r[metric] is not None] for g in groups]
            label = "undefended" if defense == NONE else defense
            values[label] = [float(np.mean(c)) if c else None for c in cells]
            errors[label] = [float(np.std(c)) if c else None for c in cells]
        bars(ax, names, values, errors=errors, title=f"{axis} without and with each defense", ylabel=axis)
    ders = [r.der for r in defended if r.der is not None]
    note = (
        f" Mean DER over defended backdoor runs: {np.mean(ders):.2f} (0.5 = no effect, 1 = ideal)."
        if ders
        else ""
    )
    return [
        (
            "Each defense's effect",
            "Mean over seeds of the undefended run and of each defense on the same poisoned data; "
            "error bars: one standard deviation." + note,
            figure,
        )
    ]


def _detection(records: list[CentralisedRecord]) -> list[_Drawn]:
    """Precision and recall (TPR) of each detector-based defense per attack and rate."""
    found = [r for r in records if r.det_precision is not None or r.det_tpr is not None]
    if not found:
        return []
    cells = _grouped(found, lambda r: (r.attack, r.poison_rate, r.defense))
    names = [f"{a} {_rate(p)} · {d}" for a, p, d in cells]
    values: dict[str, list[float | None]] = {}
    errors: dict[str, list[float | None]] = {}
    for metric, label in (("det_precision", "precision"), ("det_tpr", "recall"), ("det_fpr", "FPR")):
        per = [[r[metric] for r in runs if r[metric] is not None] for runs in cells.values()]
        values[label] = [float(np.mean(c)) if c else None for c in per]
        errors[label] = [float(np.std(c)) if c else None for c in per]
    figure, axes = panels(1, width=max(5.5, 0.9 * len(names)), height=3.6)
    bars(axes[0], names, values, errors=errors, title="detection per case", ylabel="share")
    return [
        (
            "Detection precision, recall and false-positive rate",
            "Of the samples each defense removed, the share that were poisons (precision); of the "
            "poisons, the share removed (recall); of the clean samples, the share removed (FPR).",
            figure,
        )
    ]


def _per_step(
    records: Sequence[RunRecord],
    steps: Callable[[RunRecord], Sequence[dict[str, Any]]],
    x: str,
    metric: str,
) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for label, runs in _grouped(records, lambda r: (r.attack, r.condition()[1], r.defended_by()[1])).items():
        points: dict[int, list[float]] = defaultdict(list)
        for r in runs:
            for step in steps(r):
                if step.get(metric) is not None:
                    points[int(step[x])].append(float(step[metric]))
        if points:
            xs = sorted(points)
            stats = [_mean_std(points[k]) for k in xs]
            attack, condition, by = label
            name = attack if condition is None else f"{attack} {100 * condition:g}%"
            series[f"{name} · {by}"] = (xs, [m for m, _ in stats], [s for _, s in stats])
    return series


#: Per-step figures: (column, title, axis label, caption) for each scenario that records steps.
_ROUND_METRICS = (
    ("accuracy", "Federated global accuracy per round", "accuracy", "Global model on the test set."),
    ("asr", "Federated backdoor ASR per round", "ASR", "Triggered test inputs sent to the target class."),
    (
        "malicious_selected",
        "Share of malicious updates kept per round",
        "kept",
        "Of the malicious clients' updates in a round, the share a selection rule let through.",
    ),
)
_STREAM_METRICS = (
    ("accuracy", "Stream accuracy over time, gated and ungated", "accuracy", ""),
    ("asr", "Stream backdoor ASR over time, gated and ungated", "ASR", ""),
)


def _federated(records: list[FederatedRecord]) -> list[_Drawn]:
    note = " Lines per attack, malicious share and aggregation rule; bands: ± one std over seeds."
    return _over_steps(records, lambda r: r.rounds, "round", _ROUND_METRICS, note)  # type: ignore[attr-defined]


def _stream(records: list[StreamRecord]) -> list[_Drawn]:
    note = "Measured after every evaluated batch; 'on' is the gated learner, 'off' the ungated."
    return _over_steps(records, lambda r: r.timeline, "step", _STREAM_METRICS, note)  # type: ignore[attr-defined]


def _over_steps(
    records: Sequence[RunRecord],
    steps: Callable[[RunRecord], Sequence[dict[str, Any]]],
    x: str,
    metrics: Sequence[tuple[str, str, str, str]],
    note: str,
) -> list[_Drawn]:
    """One figure per metric a scenario records step by step (rounds, stream batches)."""
    drawn: list[_Drawn] = []
    for metric, title, axis, caption in metrics:
        series = _per_step(records, steps, x, metric)
        if not series:
            continue
        figure, axes = panels(1, width=6, height=3.6)
        lines(axes[0], series, title=title, xlabel="batch" if x == "step" else x, ylabel=axis)
        drawn.append((title, f"{caption} {note}".strip(), figure))
    return drawn


def _aggregate_table(page: Page, records: list[RunRecord]) -> None:
    from poisonlab.experiments.runner import aggregate

    rows = aggregate(list(records))
    if not rows:
        return
    names = {
        "clean_acc": "C-ACC %",
        "asr": "ASR %",
        "ra": "RA %",
        "acc_drop": "ΔACC %",
        "test_mse": "MSE",
        "det_precision": "precision %",
        "det_tpr": "recall %",
        "der": "DER",
        "malicious_selected": "kept %",
        "n_admitted_poison": "admitted",
        "target_mrr": "target MRR",
        "target_mrr_drop": "target MRR drop %",
        "hits_at_10": "target Hits@10 %",
        "graph_mrr_change": "other facts' MRR Δ",
        "lira_tpr_01_clean": "LiRA TPR@0.1% FPR, clean %",
        "lira_tpr_01": "LiRA TPR@0.1% FPR, poisoned %",
        "lira_tpr_1_clean": "LiRA TPR@1% FPR, clean %",
        "lira_tpr_1": "LiRA TPR@1% FPR, poisoned %",
        "lira_auc_clean": "LiRA AUC, clean",
        "lira_auc": "LiRA AUC, poisoned",
        "dp_epsilon": "ε",
    }
    metrics = [m for m in names if any(r.get(m) is not None for r in rows)]
    header = ["dataset", "model", "attack", "condition", "defended by", "seeds", *(names[m] for m in metrics)]
    table = []
    for r in rows:
        said = condition_text(r["condition"], r.get(r["condition"])) or "no poison"
        condition = f"{r['condition']} {said}"
        cells = [r["dataset"], r["model"], r["attack"], condition, r[r["defended_by"]], r["n_seeds"]]
        for m in metrics:
            value = r.get(m)
            scale = 100.0 if names[m].endswith("%") else 1.0
            cells.append("—" if value is None else f"{scale * value[0]:.4g} ± {scale * value[1]:.2g}")
        table.append(cells)
    page.heading("Results per cell")
    page.table(header, table, caption="mean ± std over seeds")


def _provenance(
    page: Page, records: Sequence[RunRecord], invocations: Sequence[dict[str, Any]], configs: dict[str, Any]
) -> None:
    page.heading("Provenance")
    versions = sorted({r.versions for r in records if r.versions})
    threads = sorted({r.torch_threads for r in records if r.torch_threads is not None})
    digests = sorted(
        {
            (c.get("dataset", {}).get("name", "?"), c.get("data_digest"))
            for c in configs.values()
            if isinstance(c, dict) and c.get("data_digest")
        }
    )
    facts = [
        ("computed with", "\n".join(versions) or "not recorded (written by an older poisonlab)"),
        ("PyTorch threads", ", ".join(map(str, threads)) or "not recorded"),
    ]
    if digests:
        facts.append(("data (content digest)", "\n".join(f"{n}: {d}" for n, d in digests)))
    for i, call in enumerate(invocations, 1):
        facts.append((f"start {i} at {call['started']}: command", shlex.join(map(str, call["command"]))))
        config = call["config"]
        shown = "\n".join(f"{k} = {json.dumps(config[k])}" for k in sorted(config)) or "(built-in default)"
        facts.append((f"start {i}: config", shown))
    if not invocations:
        facts.append(("command and config", "not recorded (written by an older poisonlab)"))
    page.facts(facts)
