"""The HTML report: one self-contained file (inline CSS, figures as PNG data URIs) plus scorecard.json.

The page reads like a paper's figure page: a header with what was compared (files, sizes, sources, the model and
its card, date, version), the scorecard with each row's detail in words, then one card per section laid out on a
CSS grid (cards too wide for one column span the row). Every PNG is shown at its pixel size
(`astrogen.report.style.REPORT_DPI`), shrunk only where the window is narrower.
"""

from __future__ import annotations

import base64
import html
import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astrogen import __version__
from astrogen._io import atomic_write_text, jsonable
from astrogen.errors import InputFileError
from astrogen.report.style import GENERATED, REAL

COLUMN_PX = 480  # narrowest grid column; a window of 1400 px holds two
NARROW_PX = 640  # a section whose figures (side by side) are wider than this spans the whole row
FIGURE_GAP_PX = 16

CSS = f"""
body {{ font-family: system-ui, sans-serif; max-width: 2000px; margin: 0 auto; padding: 1em 1.5em; color: #222; }}
h1 {{ font-size: 1.6em; margin: .3em 0; }}
h2 {{ font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin: .2em 0 .4em; }}
header {{ margin-bottom: 1em; }}
header p.meta {{ color: #444; margin: .2em 0 .6em; }}
.sections {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(min({COLUMN_PX}px, 100%), 1fr));
  gap: 1.2em 1.5em; grid-auto-flow: row dense; align-items: start; }}
.card {{ min-width: 0; }}
.card.wide {{ grid-column: 1 / -1; }}
.figures {{ display: flex; flex-wrap: wrap; gap: {FIGURE_GAP_PX}px; align-items: flex-start; }}
.figures img {{ max-width: 100%; height: auto; display: block; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; margin: .4em 0 .8em; font-size: .9em; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }}
th {{ background: #f2f2f2; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
/* Okabe-Ito blue for pass, vermillion for fail: distinguishable with colour-vision deficiencies */
.pass {{ background: #d6e9f5; color: #00466e; font-weight: bold; }}
.fail {{ background: #f9dccb; color: #8a3600; font-weight: bold; }}
th.real {{ color: {REAL}; }} th.generated {{ color: {GENERATED}; }}
.detail {{ color: #444; font-size: .9em; min-width: 20em; }}
.detail .what {{ color: #222; }}
.path {{ color: #666; font-size: .85em; word-break: break-all; }}
p.note {{ color: #444; margin: .3em 0 .6em; }}
pre {{ margin: 0; white-space: pre-wrap; word-break: break-word; font-size: .85em; }}
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


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool, np.generic)) or value is None


def _detail_text(detail: Mapping) -> str:
    """A scorecard row's ``detail`` in words (HTML): what is measured, the 95% interval, the maps compared.

    The per-bin arrays (``x``, ``real_mean``, ``generated_mean``) are for plotting and stay in scorecard.json;
    other entries show as ``name: value``, containers by their length, never as raw dict text.
    """
    detail = dict(detail or {})
    for key in ("x", "real_mean", "generated_mean", "distance_kind"):  # plotting data; the description says the kind
        detail.pop(key, None)
    lines = []
    if isinstance(detail.get("description"), str):
        lines.append(f'<span class="what">{html.escape(detail.pop("description"))}</span>')
    facts = []
    interval = detail.pop("interval95", None)
    if interval is not None and np.size(interval) == 2:
        low, high = (float(v) for v in np.ravel(interval))
        facts.append(f"95% bootstrap interval {low:.4g} to {high:.4g}")
    if "n_real" in detail and "n_generated" in detail:
        facts.append(f"{detail.pop('n_real')} real and {detail.pop('n_generated')} generated maps")
    if "condition_bin" in detail:
        facts.append(f"condition bin {detail.pop('condition_bin')}")
    if detail.get("clamped_fraction") == 0:
        detail.pop("clamped_fraction")
    for key, value in detail.items():
        name = str(key).replace("_", " ")
        if _is_scalar(value):
            facts.append(f"{name}: {_format(value.item() if isinstance(value, np.generic) else value)}")
        else:
            facts.append(f"{name}: {np.size(value) if hasattr(value, '__len__') else 1} values (in scorecard.json)")
    if facts:
        lines.append(html.escape("; ".join(facts)))
    return "<br>".join(lines)


def _scorecard_html(scorecard) -> str:
    verdict = "PASS" if scorecard.passed else "FAIL"
    passed = sum(bool(row.passed) for row in scorecard.rows)
    lines = [
        f'<p>Overall: <span class="{verdict.lower()}">{verdict}</span> '
        f"({passed} of {len(scorecard.rows)} statistics within tolerance). A statistic passes when its "
        "distance between the sets is within tolerance; the error is the bootstrap spread over maps.</p>",
        '<div class="scroll"><table><tr><th>statistic</th><th>distance</th><th>error</th><th>tolerance</th>'
        "<th>result</th><th>detail</th></tr>",
    ]
    for row in scorecard.rows:
        result = "pass" if row.passed else "fail"
        lines.append(
            f"<tr><td>{html.escape(str(row.statistic))}</td><td class=num>{row.distance:.4g}</td>"
            f"<td class=num>{row.error:.4g}</td><td class=num>{row.tolerance:.4g}</td>"
            f'<td class="{result}">{result}</td><td class=detail>{_detail_text(row.detail)}</td></tr>'
        )
    lines.append("</table></div>")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, bool):
        return f'<td class="{"pass" if value else "fail"}">{"yes" if value else "no"}</td>'
    return f"<td class=num>{html.escape('n/a' if value is None else _format(value))}</td>"


def _grid_html(grid: Sequence[Sequence[object]]) -> str:
    header = "".join(f"<th>{html.escape(str(h))}</th>" for h in grid[0])
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in grid[1:])
    return f'<div class="scroll"><table><tr>{header}</tr>{rows}</table></div>'


def _provenance_html(provenance: Mapping) -> str:
    rows = []
    for key, value in provenance.items():
        text = json.dumps(jsonable(value), indent=1, sort_keys=True, default=str) if isinstance(value, (dict, list)) \
            else str(value)
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td><pre>{html.escape(text)}</pre></td></tr>")
    return '<div class="scroll"><table>' + "\n".join(rows) + "</table></div>"


def _date(created) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM UTC`` (as given when it is not one)."""
    text = str(created)
    if len(text) >= 16 and text[10] == "T" and text.endswith(("+00:00", "Z")):
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def _source(info: Mapping) -> str:
    """Where a compared set came from, as HTML: the model and its card, or the simulator, or an import."""
    made = info.get("provenance") if isinstance(info.get("provenance"), Mapping) else {}
    model = info.get("model") if isinstance(info.get("model"), Mapping) else None
    if model:
        text = f"model <b>{html.escape(str(model.get('source')))}</b>"
        if model.get("summary"):
            text += f": {html.escape(str(model['summary']))}"
        if model.get("training_steps") is not None:
            text += f" ({html.escape(str(model['training_steps']))} training steps)"
        if model.get("card"):
            card = Path(str(model["card"]))
            text += (f'; card <a href="{html.escape(card.as_uri() if card.is_absolute() else str(card))}">'
                     f"{html.escape(card.name)}</a> <span class=path>{html.escape(str(card))}</span>")
        return text
    if made.get("generated_from"):
        return f"generated by {html.escape(str(made['generated_from']))} (no model card found)"
    if info.get("simulator"):
        text = f"simulator {html.escape(str(info['simulator']))}"
        if info.get("simulator_version"):
            text += f" v{html.escape(str(info['simulator_version']))}"
        if info.get("seed") is not None:
            text += f", seed {html.escape(str(info['seed']))}"
        return text
    known = [f"{k}: {v}" for k, v in made.items() if _is_scalar(v) and k != "astrogen_version"]
    return html.escape("; ".join(known)) if known else "unknown"


def _sizes(info: Mapping, shape) -> tuple[str, str]:
    """(maps used, map size) of a compared set."""
    maps = str(info.get("samples", shape[0] if shape else "?"))
    if not shape or len(shape) < 3:
        return maps, "?"
    channels, pixels = shape[1], " × ".join(str(s) for s in shape[2:])
    size = f"{pixels} pixels, {channels} channel{'s' if channels != 1 else ''}"
    if info.get("pixel_size") and info.get("pixel_unit") not in (None, "pixel"):
        size += f" ({_format(float(info['pixel_size']))} {info['pixel_unit']} per pixel)"
    return maps, size


def _header_html(title: str, provenance: Mapping, scorecard) -> str:
    """Title, date and version, and a table of the compared sets (file, maps used, map size, channels, source)."""
    info = {**(getattr(scorecard, "provenance", None) or {}), **provenance}
    meta = [f"astrogen {__version__}"]
    if info.get("created"):
        meta.append(f"created {_date(info['created'])}")
    sets = [name for name in ("real", "generated") if isinstance(info.get(name), Mapping)]
    if "seed" in info and sets:
        meta.append(f"evaluation seed {info['seed']}")
    if info.get("n_max") is not None and sets:
        meta.append(f"at most {info['n_max']} maps per set")
    if not sets:  # model reports: checkpoint, data, task, ...
        meta += [f"{k}: {v}" for k, v in provenance.items() if _is_scalar(v) and k not in ("created", "seed")]
    parts = ["<header>", f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">{html.escape(" · ".join(meta))}</p>']
    if sets:
        rows = ["<tr><th></th><th>file</th><th>maps used</th><th>map size</th><th>channels [units]</th>"
                "<th>source</th></tr>"]
        for name in sets:
            one = info[name]
            maps, size = _sizes(one, info.get(f"{name}_shape"))
            path = Path(str(one.get("file", "?")))
            channels = ", ".join(map(str, one.get("channels") or []))
            units = one.get("units")
            rows.append(f'<tr><th class="{name}">{name}</th><td><b>{html.escape(path.name)}</b><br>'
                        f"<span class=path>{html.escape(str(path))}</span></td><td>{html.escape(maps)}</td>"
                        f"<td>{html.escape(size)}</td>"
                        f"<td>{html.escape(channels)}{html.escape(f' [{units}]') if units else ''}</td>"
                        f"<td>{_source(one)}</td></tr>")
        parts.append('<div class="scroll"><table class="compared">' + "".join(rows) + "</table></div>")
    parts.append("</header>")
    return "\n".join(parts)


def _png_width(uri: str) -> int | None:
    """Pixel width of a PNG data URI (from its IHDR chunk), None for anything else."""
    if not uri.startswith("data:image/png;base64,"):
        return None
    head = base64.b64decode(uri.split(",", 1)[1][:32])
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">I", head[16:20])[0]


def _is_wide(section: Section) -> bool:
    """Whether a section needs the whole row: a grid table, or figures wider than one column side by side."""
    if section.grid:
        return True
    widths = [_png_width(uri) for uri in section.images]
    if any(w is None for w in widths):
        return True
    return sum(widths) + FIGURE_GAP_PX * (len(widths) - 1) > NARROW_PX


def _section_html(section: Section) -> str:
    parts = [f'<section class="card{" wide" if _is_wide(section) else ""}">',
             f"<h2>{html.escape(section.title)}</h2>"]
    if section.note:
        parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    if section.table:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td class=num>{html.escape(_format(v))}</td></tr>"
                       for k, v in section.table.items())
        parts.append(f"<table>{rows}</table>")
    if section.grid:
        parts.append(_grid_html(section.grid))
    if section.images:
        parts.append('<div class="figures">')
        for uri in section.images:
            if not uri.startswith("data:image/"):
                raise ValueError(f"section {section.title!r}: figures must be data URIs, got {uri[:40]!r}")
            parts.append(f'<img src="{uri}" alt="{html.escape(section.title)}">')
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(sections: Sequence[Section], scorecard, provenance: Mapping, title: str) -> str:
    """The report page as one string; every figure is embedded, nothing is loaded from elsewhere."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        _header_html(title, provenance, scorecard),
        '<main class="sections">',
    ]
    if scorecard is not None:
        parts += ['<section class="card wide">', "<h2>Scorecard</h2>", _scorecard_html(scorecard), "</section>"]
    parts += [_section_html(section) for section in sections]
    parts += ['<section class="card wide">', "<h2>Provenance</h2>", _provenance_html(provenance),
              f'<p class="note">made by astrogen {html.escape(__version__)}</p>', "</section>",
              "</main>", "</body></html>"]
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
