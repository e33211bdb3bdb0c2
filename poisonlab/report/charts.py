"""Chart helpers shared by every report: lines with their spread, grouped bars, panels.

matplotlib's object API (:class:`matplotlib.figure.Figure`, no pyplot) keeps no
global state, so reports can be drawn from worker threads and tests alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: One line: x values, means and standard deviations (``None`` for one seed).
Series = tuple[Sequence[float], Sequence[float], Sequence[float] | None]


def panels(n: int, *, width: float | None = None, height: float = 3.4) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels, at most three to a row, about 1,000 px wide in all."""
    from matplotlib.figure import Figure

    width = width if width is not None else {1: 7.0, 2: 5.2}.get(n, 4.3)
    cols = min(3, max(1, n))
    rows = -(-n // cols)
    figure = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel().tolist()
    for extra in axes[n:]:
        extra.set_visible(False)
    return figure, axes[:n]


def lines(
    ax: Axes,
    series: Mapping[str, Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    percent_x: bool = False,
    percent_y: bool = True,
    flat: Mapping[str, float] | None = None,
    style: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """One line per label with a shaded band of ± one standard deviation.

    ``flat`` draws horizontal dashed references (the clean baseline, which has no rate);
    ``style`` gives a label's matplotlib line properties (the same colour for an attack
    in every figure of a page).
    """
    scale_x = 100.0 if percent_x else 1.0
    scale_y = 100.0 if percent_y else 1.0
    for label, (x, mean, std) in series.items():
        xs = np.asarray(x, dtype=float) * scale_x
        ys = np.asarray(mean, dtype=float) * scale_y
        props = {"marker": "o", **(style or {}).get(label, {})}
        (line,) = ax.plot(xs, ys, label=label, **props)
        if std is not None and len(xs) > 0:
            spread = np.asarray(std, dtype=float) * scale_y
            ax.fill_between(xs, ys - spread, ys + spread, alpha=0.15, color=line.get_color())
    for label, value in (flat or {}).items():
        ax.axhline(value * scale_y, linestyle="--", color="0.4", linewidth=1, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel + (" (%)" if percent_x else ""))
    ax.set_ylabel(ylabel + (" (%)" if percent_y else ""))
    ax.grid(alpha=0.3)
    if series or flat:
        ax.legend(fontsize=7)


def bars(
    ax: Axes,
    groups: Sequence[str],
    values: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    errors: Mapping[str, Sequence[float | None]] | None = None,
    percent: bool = True,
) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per key of ``values``."""
    scale = 100.0 if percent else 1.0
    n = max(1, len(values))
    width = 0.8 / n
    x = np.arange(len(groups))
    for i, (label, vals) in enumerate(values.items()):
        heights = np.array([np.nan if v is None else v * scale for v in vals], dtype=float)
        err: Any = None
        if errors is not None and label in errors:
            err = np.array([0.0 if e is None else e * scale for e in errors[label]], dtype=float)
        ax.bar(x + (i - (n - 1) / 2) * width, np.nan_to_num(heights), width, yerr=err, label=label, capsize=2)
    ax.set_xticks(
        x, groups, rotation=30 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center"
    )
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    ax.grid(axis="y", alpha=0.3)
    if len(values) > 1:
        ax.legend(fontsize=7)
