"""The report of a scan: where the flags fall, how scores spread per class, what flagged images look like.

For image data the page shows the most suspicious samples beside typical samples
of the same given class, and, for the class with the most flags, the mean of its
flagged samples minus the mean of the rest: where the flagged samples share a
trigger, that difference shows it (a patch lights up); where they are label noise
or outliers, it is diffuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonlab.report.charts import bars, panels
from poisonlab.report.page import Page, Plot, svg_of

if TYPE_CHECKING:
    from poisonlab.defenses.scan import ScanReport

__all__ = ["scan_page"]

#: How many of the most suspicious images the page shows, and typical ones beside each.
N_SUSPICIOUS = 8
N_TYPICAL = 3


def scan_page(report: ScanReport, source: str = "", provenance: Sequence[tuple[str, str]] = ()) -> Page:
    data = report.dataset
    rule = "its automatic rule" if report.contamination is None else f"top {report.contamination:g} share"
    page = Page(
        f"poisonlab scan: {data.name}",
        f"{len(data)} samples, detector {report.detector} ({rule}): {report.n_flagged} flagged",
    )
    plots: list[tuple[str, str, Any]] = []
    if not data.is_regression:
        plots.append(_flags_per_class(report))
        plots.append(_scores_per_class(report))
    else:
        plots.append(_score_histogram(report))
    if len(report.per_detector) > 1:
        plots.append(_per_detector(report))
    if data.modality == "image" and report.n_flagged:
        plots.append(_suspicious_images(report))
        difference = _shared_difference(report)
        if difference is not None:
            plots.append(difference)
    page.heading("Figures")
    for i, (title, caption, figure) in enumerate(plots):
        page.figure(Plot(title, caption, svg_of(figure, f"s{i}")))
    _flagged_table(page, report)
    _groups(page, report)
    page.heading("Provenance")
    page.facts([("data", source or data.name), *provenance])
    return page


def _classes(report: ScanReport) -> list[str]:
    return [str(c) for c in report.dataset.classes]


def _flags_per_class(report: ScanReport) -> tuple[str, str, Any]:
    classes = _classes(report)
    given = report.dataset.y
    flagged = [int(report.flags[given == k].sum()) for k in range(len(classes))]
    share = [f / max(1, int((given == k).sum())) for k, f in enumerate(flagged)]
    figure, axes = panels(2)
    bars(
        axes[0],
        classes,
        {"flagged": flagged},
        title="flagged samples per given class",
        ylabel="samples",
        percent=False,
    )
    bars(axes[1], classes, {"share": share}, title="share of each class flagged", ylabel="share")
    return (
        "Flags per class",
        "Poisons that change labels gather in the attacker's target class; flags spread evenly "
        "over every class look more like label noise.",
        figure,
    )


def _scores_per_class(report: ScanReport) -> tuple[str, str, Any]:
    classes = _classes(report)
    given = report.dataset.y
    figure, axes = panels(1, height=3.6)
    ax = axes[0]
    groups = [report.scores[given == k] for k in range(len(classes))]
    ax.boxplot(groups, showfliers=False)
    ax.set_xticks(np.arange(1, len(classes) + 1), classes)
    rng = np.random.default_rng(0)  # jitter only; the same picture every time
    for k in range(len(classes)):
        mask = (given == k) & report.flags
        if mask.any():
            x = k + 1 + rng.uniform(-0.15, 0.15, int(mask.sum()))
            ax.scatter(x, report.scores[mask], s=10, color="C3")
    ax.scatter([], [], s=10, color="C3", label="flagged")
    ax.legend(fontsize=7)
    ax.set_xlabel("given class")
    ax.set_ylabel("score (higher: more suspicious)")
    ax.set_title("score distribution per class", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return (
        "Scores per class",
        "Boxes: the middle half of each class's scores, whiskers 1.5 IQR; red: flagged samples.",
        figure,
    )


def _score_histogram(report: ScanReport) -> tuple[str, str, Any]:
    figure, axes = panels(1, height=3.4)
    ax = axes[0]
    edges = np.histogram_bin_edges(report.scores, bins=40).tolist()
    ax.hist(report.scores[~report.flags], bins=edges, label="kept", color="C0")
    ax.hist(report.scores[report.flags], bins=edges, label="flagged", color="C3")
    ax.set_xlabel("score (higher: more suspicious)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=7)
    ax.set_title("score distribution", fontsize=10)
    return "Score distribution", "Scores of kept and flagged samples.", figure


def _per_detector(report: ScanReport) -> tuple[str, str, Any]:
    names = list(report.per_detector)
    counts = [int(flags.sum()) for _, flags in report.per_detector.values()]
    figure, axes = panels(1, height=3.2)
    bars(axes[0], names, {"flagged": counts}, title="flags per detector", ylabel="samples", percent=False)
    return (
        "What each detector flagged",
        "The scan's verdict joins its detectors' flags; a detector that flags nothing found no "
        "evidence of its kind of poison.",
        figure,
    )


def _image(x: np.ndarray, low: float, high: float) -> tuple[np.ndarray, str | None]:
    """An N×C×H×W sample as something imshow draws: gray for one channel, RGB for three."""
    scaled = np.clip((x - low) / (high - low or 1.0), 0.0, 1.0)
    if scaled.shape[0] == 1:
        return scaled[0], "gray"
    return np.moveaxis(scaled[:3], 0, -1), None


def _suspicious_images(report: ScanReport) -> tuple[str, str, Any]:
    from matplotlib.figure import Figure

    data = report.dataset
    labels = data.original_labels()
    low, high = float(np.min(data.X)), float(np.max(data.X))
    flagged = np.flatnonzero(report.flags)
    top = flagged[np.argsort(-report.scores[flagged], kind="stable")][:N_SUSPICIOUS]
    figure = Figure(figsize=(1.4 * (1 + N_TYPICAL), 1.5 * len(top)), layout="constrained")
    axes = figure.subplots(len(top), 1 + N_TYPICAL, squeeze=False)
    for row, i in enumerate(top):
        same = np.flatnonzero((data.y == data.y[i]) & ~report.flags)
        typical = same[np.argsort(report.scores[same], kind="stable")][:N_TYPICAL]
        predicted = "" if report.predicted_labels is None else f"→{report.predicted_labels[i]}"
        shown = [(i, f"id {data.ids[i]}\n{labels[i]}{predicted}")]
        shown += [(j, f"typical {labels[j]}") for j in typical]
        for col, ax in enumerate(axes[row]):
            ax.set_axis_off()
            if col < len(shown):
                j, title = shown[col]
                image, cmap = _image(data.X[j], low, high)
                ax.imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(title, fontsize=7, color="C3" if col == 0 else "black")
    return (
        "The most suspicious images beside typical ones of their class",
        "Left: the flagged samples with the highest scores (id, given label → the scan's predicted "
        "label); right: the least suspicious samples of the same given class.",
        figure,
    )


def _shared_difference(report: ScanReport) -> tuple[str, str, Any] | None:
    """Mean of the flagged samples of the most-flagged class minus the mean of the rest of it."""
    data = report.dataset
    per_class = np.bincount(data.y[report.flags], minlength=data.n_classes)
    k = int(np.argmax(per_class))
    inside = (data.y == k) & report.flags
    rest = (data.y == k) & ~report.flags
    if inside.sum() < 2 or rest.sum() < 2:
        return None
    difference = data.X[inside].mean(axis=0) - data.X[rest].mean(axis=0)
    figure, axes = panels(2, height=3.0)
    bound = float(np.abs(difference).max()) or 1.0
    shown = axes[0].imshow(difference.mean(axis=0), cmap="RdBu_r", vmin=-bound, vmax=bound)
    figure.colorbar(shown, ax=axes[0], shrink=0.8)
    axes[0].set_title(f"class {data.classes[k]}: flagged mean − rest mean", fontsize=9)
    axes[0].set_axis_off()
    low, high = float(np.min(data.X)), float(np.max(data.X))
    image, cmap = _image(data.X[inside].mean(axis=0), low, high)
    axes[1].imshow(image, cmap=cmap, vmin=0, vmax=1)
    axes[1].set_title(f"mean of the {int(inside.sum())} flagged", fontsize=9)
    axes[1].set_axis_off()
    return (
        "What the flagged samples share",
        f"In class {data.classes[k]}, which holds the most flags: red pixels are brighter in the "
        "flagged samples than in the rest of the class, blue darker. A trigger the poisons share "
        "shows as a sharp patch; label noise leaves a blurred digit of another class.",
        figure,
    )


def _flagged_table(page: Page, report: ScanReport, limit: int = 30) -> None:
    data = report.dataset
    flagged = np.flatnonzero(report.flags)
    top = flagged[np.argsort(-report.scores[flagged], kind="stable")][:limit]
    if not len(top):
        page.paragraph("The scan flagged no sample.")
        return
    labels = data.original_labels()
    rows = [
        (
            int(i),
            data.ids[i],
            labels[i],
            "—" if report.predicted_labels is None else report.predicted_labels[i],
            float(report.scores[i]),
            ", ".join(report.agreeing(int(i))),
        )
        for i in top
    ]
    page.heading("Flagged samples")
    page.table(
        ("row", "id", "given", "predicted", "score", "flagged by"),
        rows,
        caption=f"the {len(top)} highest-scoring of {len(flagged)} flagged",
    )


def _groups(page: Page, report: ScanReport) -> None:
    """The groups of relabelled samples the scan accepted, with the values their rows share."""
    if not report.groups:
        return
    from poisonlab.defenses.scan import describe_group

    page.heading("Groups of relabelled samples")
    rows = [(g["class"], len(g["rows"]), *describe_group(g)) for g in report.groups]
    page.table(
        ("class", "rows", "voted into (rows)", "values shared by every row"),
        rows,
        caption="a backdoor's or a targeted relabelling's signature: once the group is left out, "
        "its rows' neighbours vote for other classes",
    )
