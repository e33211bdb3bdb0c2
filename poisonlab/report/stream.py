"""The report of ``poisonlab stream``: accuracy, ASR and admitted poisons over time, gated and ungated."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonlab.report.charts import Series, lines, panels
from poisonlab.report.page import Page, Plot, svg_of

if TYPE_CHECKING:
    from poisonlab.stream.simulation import StreamResult

__all__ = ["stream_page"]


def stream_page(
    results: Mapping[str, StreamResult],
    settings: Mapping[str, Any],
    ledger: Any = None,
    provenance: Sequence[tuple[str, str]] = (),
) -> Page:
    """``results``: arm name (``gated``, ``ungated``) → that run; ``ledger``: the gated run's summary."""
    first = next(iter(results.values()))
    page = Page(
        "poisonlab stream",
        f"{first.n_stream} streamed samples, {first.n_poison} poisoned; "
        + ", ".join(
            f"{arm}: accuracy {100 * r.accuracy:.1f}%, ASR {100 * r.asr:.1f}%" for arm, r in results.items()
        ),
    )
    page.heading("Figures")
    plots = [
        _over_time(results, "accuracy", "Accuracy over time", "clean test accuracy"),
        _over_time(results, "asr", "Backdoor ASR over time", "ASR"),
        _admitted(results),
    ]
    for i, (title, caption, figure) in enumerate(plots):
        page.figure(Plot(title, caption, svg_of(figure, f"t{i}")))
    page.heading("Totals")
    page.table(
        ("", *results),
        [
            ("final accuracy %", *(f"{100 * r.accuracy:.1f}" for r in results.values())),
            ("final ASR %", *(f"{100 * r.asr:.1f}" for r in results.values())),
            ("poisons admitted", *(f"{r.n_poison_admitted} / {r.n_poison}" for r in results.values())),
            ("clean samples rejected", *(r.n_clean_rejected for r in results.values())),
        ],
    )
    page.heading("Provenance")
    facts = [("settings", "\n".join(f"{k} = {json.dumps(v, default=str)}" for k, v in settings.items()))]
    if ledger is not None:
        facts.append(("ledger (gated run)", json.dumps(ledger, indent=1, default=str)))
    page.facts([*facts, *provenance])
    return page


def _over_time(
    results: Mapping[str, StreamResult], metric: str, title: str, axis: str
) -> tuple[str, str, Any]:
    series: dict[str, Series] = {}
    for arm, result in results.items():
        measured = [r for r in result.records if getattr(r, metric) is not None]
        series[arm] = ([r.step for r in measured], [getattr(r, metric) for r in measured], None)
    figure, axes = panels(1)
    lines(axes[0], series, title=title, xlabel="batch", ylabel=axis)
    return title, "Measured after every evaluated batch of the stream.", figure


def _admitted(results: Mapping[str, StreamResult]) -> tuple[str, str, Any]:
    series: dict[str, Series] = {}
    for arm, result in results.items():
        steps = [r.step for r in result.records]
        series[f"{arm}: admitted"] = (
            steps,
            np.cumsum([r.n_admitted_poison for r in result.records]).tolist(),
            None,
        )
    first = next(iter(results.values()))
    streamed = np.cumsum([r.n_poison for r in first.records]).tolist()
    series["streamed"] = ([r.step for r in first.records], streamed, None)
    figure, axes = panels(1)
    lines(
        axes[0],
        series,
        title="poisons streamed and admitted",
        xlabel="batch",
        ylabel="poisons",
        percent_y=False,
    )
    return (
        "Poisons the learner was given",
        "Cumulative poisoned samples in the stream, and how many of them each learner admitted.",
        figure,
    )
