"""One self-contained HTML page: inline SVG figures, tables and text, no script, no external resource.

Every string that comes from data (dataset and attack names, ids, paths, command
lines, configs) goes through :func:`html.escape` here, so a hostile name cannot add
markup or script to a report. The page carries its own stylesheet and references
nothing outside itself: it opens offline, from an e-mail attachment or a CI artefact.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Page", "Plot", "svg_of"]


def svg_of(figure: Figure, key: str) -> str:
    """``figure`` as an SVG element to inline in HTML, its ids prefixed with ``key``.

    matplotlib writes a standalone SVG document: an XML prologue, a DOCTYPE and
    namespace declarations that name ``http://`` addresses, and RDF metadata. Inline
    in HTML5 the parser supplies the SVG namespace, so all of those are dropped; the
    ids (markers, clip paths) get a per-figure prefix, because several figures share
    one document and matplotlib's ids may repeat across figures.
    """
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text)
    text = text.replace("url(#", f"url(#{key}-").replace('href="#', f'href="#{key}-')
    return text.replace("<svg", '<svg class="figure"', 1)  # the page's stylesheet lets it shrink


@dataclass(frozen=True)
class Plot:
    """A figure on the page: its title, a sentence on how to read it, the SVG."""

    title: str
    caption: str
    svg: str


@dataclass
class Page:
    """Sections of figures, tables and key–value lists, rendered by :meth:`html`."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    n_figures: int = 0

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{_text(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{_text(text)}</p>")

    def figure(self, figure: Plot) -> None:
        self.n_figures += 1
        self.parts.append(
            f'<figure id="figure-{self.n_figures}"><figcaption><b>Figure {self.n_figures}. '
            f"{_text(figure.title)}</b> {_text(figure.caption)}</figcaption>"
            f"{figure.svg}</figure>"
        )

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> None:
        head = "".join(f"<th>{_text(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_text(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{_text(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def facts(self, items: Sequence[tuple[str, str]]) -> None:
        """A definition list; values are shown as preformatted text (commands, configs)."""
        body = "".join(f"<dt>{_text(k)}</dt><dd><pre>{_text(v)}</pre></dd>" for k, v in items)
        self.parts.append(f"<dl>{body}</dl>")

    def html(self) -> str:
        made = datetime.now(UTC).isoformat(timespec="seconds")
        sub = f"<p class='sub'>{_text(self.subtitle)}</p>" if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_text(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_text(self.title)}</h1>{sub}"
            + "".join(self.parts)
            + f"<footer>written by poisonlab at {made}</footer></body></html>\n"
        )


def _text(value: str) -> str:
    """``value`` as element text: ``<``, ``>`` and ``&`` escaped (quotes matter only in attributes,
    and the page puts no data in an attribute)."""
    return html.escape(value, quote=False)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em;
       color: #1b1b1b; }
h1 { margin-bottom: 0.2em; } .sub { color: #555; margin-top: 0; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
figure { margin: 1.5em 0; } figcaption { margin-bottom: 0.5em; }
svg.figure { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; } caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
dt { font-weight: bold; margin-top: 0.6em; } dd { margin: 0.2em 0 0 1em; }
pre { white-space: pre-wrap; word-break: break-all; background: #f7f7f7; padding: 0.4em;
      margin: 0; font-size: 0.85em; }
footer { color: #777; font-size: 0.8em; margin-top: 3em; }
"""
