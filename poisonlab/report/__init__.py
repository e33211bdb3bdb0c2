"""Reports: one self-contained HTML file of figures per result, readable offline.

:func:`write_run_report` draws a results folder (``poisonlab run``, ``poisonlab fl``);
:func:`write_scan_report` a scan; :func:`write_stream_report` a ``poisonlab stream``
run. Figures are matplotlib SVG inlined in the page: no script, no font or style
sheet fetched, nothing that needs a network; the page prints and archives as is.

matplotlib over Altair/Vega-Lite or Plotly: those render in the browser from a
JavaScript bundle (about 1–4 MB) that a self-contained file must inline, and
their figures exist only where JavaScript runs; matplotlib writes static SVG from
Python, installs as one wheel of a few MB, and is what the field's papers use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonlab.errors import ConfigError

if TYPE_CHECKING:
    from poisonlab.defenses.scan import ScanReport
    from poisonlab.report.page import Page

__all__ = ["REPORT_NAME", "write_page", "write_run_report", "write_scan_report", "write_stream_report"]

#: The report's file name inside a results folder.
REPORT_NAME = "report.html"


def write_run_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write the report of a results folder to ``out`` (default ``RUN_DIR/report.html``).

    Raises
    ------
    ConfigError
        If ``run_dir`` is not a results folder, or ``out`` is a folder.
    """
    from poisonlab.experiments.runner import STORE_NAME, load_records
    from poisonlab.experiments.store import ResultStore
    from poisonlab.report.runs import run_page

    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / REPORT_NAME
    _check_target(target)
    records = load_records(run_dir)  # refuses a folder that holds no results store
    if not records:
        raise ConfigError(f"{run_dir} holds a results store with no runs: there is nothing to report")
    with ResultStore(run_dir / STORE_NAME) as store:
        invocations, configs = store.invocations(), store.configs()
    with _drawing():
        page = run_page(records, invocations, configs, run_dir)
    return write_page(page, target)


def write_scan_report(
    report: ScanReport,
    out: str | os.PathLike[str],
    *,
    source: str = "",
    provenance: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the report of a scan (:func:`poisonlab.scan`) to ``out``.

    ``source`` names the data (a path); ``provenance`` adds (name, value) lines, such
    as the command line and the versions that computed the scan.
    """
    from poisonlab.report.scan import scan_page

    target = Path(out)
    _check_target(target)
    with _drawing():
        page = scan_page(report, source, provenance)
    return write_page(page, target)


def write_stream_report(
    results: dict[str, Any],
    settings: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    ledger: Any = None,
    provenance: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the report of ``poisonlab stream``'s runs (arm name → StreamResult) to ``out``.

    ``ledger`` is the gated run's ledger summary (a JSON-able mapping), if it kept one.
    """
    from poisonlab.report.stream import stream_page

    target = Path(out)
    _check_target(target)
    with _drawing():
        page = stream_page(results, settings, ledger, provenance)
    return write_page(page, target)


@contextlib.contextmanager
def _drawing() -> Iterator[None]:
    """matplotlib settings for every figure of a report.

    Names from data (datasets, attacks, ids) are drawn as plain text: with math
    parsing on, a name holding ``$...$`` would be read as TeX, and a malformed one
    would stop the report.
    """
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def _check_target(target: Path) -> None:
    if target.is_dir():
        raise ConfigError(
            f"{target} is a folder; give the report a file name, such as {target / REPORT_NAME}"
        )


def write_page(page: Page, target: Path) -> Path:
    """Write ``page`` to ``target`` atomically: a reader never sees half a report."""
    from poisonlab.atomic import write_atomically

    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, page.html())
    return target
