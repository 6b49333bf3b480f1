import json
import os
from html.parser import HTMLParser

import numpy as np
import pytest

from astrogen.report.html import Section, write_report
from astrogen.report.style import figure_to_data_uri, new_figure


class Links(HTMLParser):
    """Collects every src/href attribute and the classes of table cells."""

    def __init__(self):
        super().__init__()
        self.links, self.cells = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[a] for a in ("src", "href") if a in attrs]
        if tag == "td" and "class" in attrs:
            self.cells.append(attrs["class"])


def sections():
    fig, axes = new_figure()
    axes[0, 0].plot(np.arange(3))
    return [Section("Power <spectrum>", [figure_to_data_uri(fig)], "a note & more")]


def test_report_is_self_contained_with_a_coloured_scorecard(tmp_path, scorecard):
    path = write_report(tmp_path / "out", sections(), scorecard, {"real": {"file": "r.h5"}, "seed": 0})
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text()
    parser = Links()
    parser.feed(text)
    assert parser.links and all(link.startswith("data:image/png;base64,") for link in parser.links)
    assert "<link" not in text and "<script" not in text
    assert parser.cells.count("pass") == 1 and parser.cells.count("fail") == 1
    assert "Overall: <span class=\"fail\">FAIL</span>" in text and "1 of 2" in text
    assert "Power &lt;spectrum&gt;" in text and "&lt;b&gt;too many" in text  # escaped, not markup
    assert "r.h5" in text
    card = json.loads((tmp_path / "out" / "scorecard.json").read_text())
    assert card["passed"] is False and [r["statistic"] for r in card["rows"]] == ["power", "peaks"]


def test_external_figures_are_refused(tmp_path, scorecard):
    with pytest.raises(ValueError, match="data URIs"):
        write_report(tmp_path, [Section("x", ["https://example.org/a.png"])], scorecard, {})


def test_interrupted_write_keeps_the_previous_report_and_no_partial_file(tmp_path, scorecard, monkeypatch):
    path = write_report(tmp_path, sections(), scorecard, {"run": 1})
    before = path.read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path, sections(), scorecard, {"run": 2})
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "scorecard.json"]


def test_grid_tables_and_extra_scorecard_entries(tmp_path, scorecard):
    grid = [["bin", "n", "bias", "agree"], ["[0, 1)", 3, "0.1 ± 0.02", True], ["[1, 2]", 0, None, None],
            ["[2, 3]", 5, "<0.3>", False]]
    path = write_report(tmp_path, [Section("Judge", grid=grid)], scorecard, {}, extra={"redshift_judge": {
        "edges": np.array([0.0, 1.0]), "value": np.nan}})
    text = path.read_text()
    assert "<th>agree</th>" in text and "n/a" in text and "&lt;0.3&gt;" in text
    parser = Links()
    parser.feed(text)
    assert parser.cells.count("pass") == 2 and parser.cells.count("fail") == 2  # scorecard row + verdict each
    card = json.loads((tmp_path / "scorecard.json").read_text())
    assert card["redshift_judge"] == {"edges": [0.0, 1.0], "value": None} and "rows" in card and "passed" in card
