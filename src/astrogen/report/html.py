"""The HTML report: one self-contained file (inline CSS, figures as PNG data URIs) plus scorecard.json."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astrogen import __version__
from astrogen._io import atomic_write_text, jsonable
from astrogen.errors import InputFileError

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
/* Okabe-Ito blue for pass, vermillion for fail: distinguishable with colour-vision deficiencies */
.pass { background: #d6e9f5; color: #00466e; font-weight: bold; }
.fail { background: #f9dccb; color: #8a3600; font-weight: bold; }
.detail { color: #555; font-size: .85em; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
p.note { color: #444; }
"""


@dataclass
class Section:
    """One report section: a title, figures as data URIs (`astrogen.report.style.figure_to_data_uri`), a note."""

    title: str
    images: list[str] = field(default_factory=list)
    note: str = ""
    table: Mapping[str, object] | None = None  # name -> value rows shown above the figures
    grid: Sequence[Sequence[object]] | None = None  # a table with a header row, shown above the figures;
    # True / False cells show as "yes" / "no" in the pass / fail colours, None as "n/a"


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _scorecard_html(scorecard) -> str:
    verdict = "PASS" if scorecard.passed else "FAIL"
    passed = sum(bool(row.passed) for row in scorecard.rows)
    lines = [
        f'<p>Overall: <span class="{verdict.lower()}">{verdict}</span> '
        f"({passed} of {len(scorecard.rows)} statistics within tolerance). A statistic passes when its "
        "distance between the sets is within tolerance; the error is the bootstrap spread over maps.</p>",
        "<table><tr><th>statistic</th><th>distance</th><th>error</th><th>tolerance</th><th>result</th>"
        "<th>detail</th></tr>",
    ]
    for row in scorecard.rows:
        result = "pass" if row.passed else "fail"
        detail = ", ".join(f"{k}={_format(v)}" for k, v in (row.detail or {}).items())
        lines.append(
            f"<tr><td>{html.escape(str(row.statistic))}</td><td class=num>{row.distance:.4g}</td>"
            f"<td class=num>{row.error:.4g}</td><td class=num>{row.tolerance:.4g}</td>"
            f'<td class="{result}">{result}</td><td class=detail>{html.escape(detail[:300])}</td></tr>'
        )
    lines.append("</table>")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, bool):
        return f'<td class="{"pass" if value else "fail"}">{"yes" if value else "no"}</td>'
    return f"<td class=num>{html.escape('n/a' if value is None else _format(value))}</td>"


def _grid_html(grid: Sequence[Sequence[object]]) -> str:
    header = "".join(f"<th>{html.escape(str(h))}</th>" for h in grid[0])
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in grid[1:])
    return f"<table><tr>{header}</tr>{rows}</table>"


def _provenance_html(provenance: Mapping) -> str:
    rows = []
    for key, value in provenance.items():
        text = json.dumps(value, indent=1, sort_keys=True, default=str) if isinstance(value, (dict, list)) \
            else str(value)
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td><pre>{html.escape(text)}</pre></td></tr>")
    return "<table>" + "\n".join(rows) + "</table>"


def render_html(sections: Sequence[Section], scorecard, provenance: Mapping, title: str) -> str:
    """The report page as one string; every figure is embedded, nothing is loaded from elsewhere."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if scorecard is not None:
        parts += ["<h2>Scorecard</h2>", _scorecard_html(scorecard)]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
        if section.table:
            rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td class=num>{html.escape(_format(v))}</td></tr>"
                           for k, v in section.table.items())
            parts.append(f"<table>{rows}</table>")
        if section.grid:
            parts.append(_grid_html(section.grid))
        for uri in section.images:
            if not uri.startswith("data:image/"):
                raise ValueError(f"section {section.title!r}: figures must be data URIs, got {uri[:40]!r}")
            parts.append(f'<img src="{uri}" alt="{html.escape(section.title)}">')
    parts += ["<h2>Provenance</h2>", _provenance_html(provenance),
              f'<p class="note">made by astrogen {html.escape(__version__)}</p>', "</body></html>"]
    return "\n".join(parts)


def write_report(out_dir: str | os.PathLike, sections: Sequence[Section], scorecard, provenance: Mapping,
                 title: str = "astrogen evaluation: real vs generated", extra: Mapping | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/scorecard.json``; return the HTML path.

    Parameters
    ----------
    out_dir : output folder, created if missing.
    sections : figures and notes in display order.
    scorecard : an `astrogen.stats.compare.Scorecard` (``rows``, ``passed``, ``to_json(path)``), or None
        for reports without one (model evaluations): no scorecard section and no ``scorecard.json``.
    provenance : what was compared (input files, their metadata, sample counts, seed), shown verbatim.
    title : page title.
    extra : top-level entries added to ``scorecard.json`` beside the scorecard's own (e.g. ``redshift_judge``).

    Both files are written atomically (temporary file, then rename): an interrupted run leaves either
    the previous files or none, never a truncated one.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputFileError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    page = render_html(sections, scorecard, provenance, title)
    if scorecard is not None and extra:
        atomic_write_text(out_dir / "scorecard.json", json.dumps(jsonable({**scorecard.to_dict(), **extra}), indent=1))
    elif scorecard is not None:
        scorecard.to_json(out_dir / "scorecard.json")
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path
