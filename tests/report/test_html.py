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


class Cells(HTMLParser):
    """The inner HTML of every element with a given class, and the classes of every <section>."""

    def __init__(self, cls):
        super().__init__()
        self.cls, self.depth, self.found, self.sections = cls, 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("class", ""))
        if self.depth:
            self.depth += tag not in ("br", "img")
            self.found[-1] += self.get_starttag_text()
        elif self.cls in (attrs.get("class") or "").split():
            self.depth = 1
            self.found.append("")

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1
            if self.depth:
                self.found[-1] += f"</{tag}>"

    def handle_data(self, data):
        if self.depth:
            self.found[-1] += data


def evaluation_provenance():
    """The provenance `astrogen.report.evaluate` passes: both sets' files, sizes and metadata, date, seed."""
    common = {"channels": ["kappa", "tsz"], "units": "uK", "pixel_size": 2.0, "pixel_unit": "arcmin"}
    return {"real": {"file": "/data/sims/real_maps.h5", "samples": "40 of 50", **common, "simulator": "grf",
                     "simulator_version": "2", "seed": 7, "config": {"slope": -2}, "provenance": {}},
            "generated": {"file": "/data/gen/gen_maps.h5", "samples": "40 of 40", **common,
                          "provenance": {"generated_from": "pretrained:matter-demo"},
                          "model": {"source": "pretrained:matter-demo", "summary": "a <tiny> DDPM",
                                    "training_steps": 18000, "card": "/models/matter-demo/MODEL.md"}},
            "seed": 0, "n_max": 1000, "created": "2026-01-02T03:04:05+00:00"}


def test_header_names_what_was_compared(tmp_path, scorecard):
    from astrogen import __version__

    scorecard.provenance.update({"real_shape": [40, 2, 32, 32], "generated_shape": [40, 2, 32, 32]})
    text = write_report(tmp_path, sections(), scorecard, evaluation_provenance()).read_text()
    header = text[text.index("<header>"):text.index("</header>")]
    for expected in ("real_maps.h5", "/data/sims/real_maps.h5", "gen_maps.h5", "40 of 50", "40 of 40",
                     "32 × 32 pixels, 2 channels (2 arcmin per pixel)", "kappa, tsz [uK]", "simulator grf v2, seed 7",
                     f"astrogen {__version__}", "created 2026-01-02 03:04 UTC", "pretrained:matter-demo",
                     "a &lt;tiny&gt; DDPM", "18000 training steps", 'href="file:///models/matter-demo/MODEL.md"'):
        assert expected in header, expected
    assert "Provenance" in text and "/data/sims/real_maps.h5" in text[text.index("</header>"):]  # still verbatim


def test_header_of_a_model_report_has_date_and_version(tmp_path):
    from astrogen import __version__

    path = write_report(tmp_path, sections(), None, {"checkpoint": "m.ckpt", "task": "regressor",
                                                     "created": "2026-01-02T03:04:05+00:00"})
    header = path.read_text().split("</header>")[0]
    assert f"astrogen {__version__}" in header and "2026-01-02 03:04 UTC" in header and "checkpoint: m.ckpt" in header


def test_scorecard_detail_is_text_not_a_dict(tmp_path):
    from astrogen.stats.compare import compare

    maps = np.random.default_rng(0).normal(size=(16, 1, 16, 16))
    card = compare(maps[:8], maps[8:], stats=("power", "mean"), n_bootstrap=20)
    card.rows[0].detail["extra"] = {"a": [1, 2]}  # anything else a statistic records
    cells = Cells("detail")
    cells.feed(write_report(tmp_path, [], card, {}).read_text())
    assert len(cells.found) == 2
    for detail in cells.found:
        assert "{" not in detail and "[" not in detail and "distance_kind" not in detail, detail
        assert "95% bootstrap interval" in detail and "8 real and 8 generated maps" in detail
    assert "mean |P_gen / P_real - 1| over k bins" in cells.found[0] and "extra: 1 values" in cells.found[0]


def test_figures_fill_a_css_grid_and_wide_sections_span_the_row(tmp_path, scorecard):
    narrow, wide = new_figure(), new_figure(1, 4)
    for fig, _ in (narrow, wide):
        fig.axes[0].plot(np.arange(3))
    sections = [Section("One panel", [figure_to_data_uri(narrow[0])]), Section("Four panels",
                                                                              [figure_to_data_uri(wide[0])])]
    text = write_report(tmp_path, sections, scorecard, {}).read_text()
    assert "display: grid" in text and "grid-template-columns: repeat(auto-fill, minmax(" in text
    parser = Cells("figures")
    parser.feed(text)
    assert len(parser.found) == 2 and all("<img" in f for f in parser.found)
    # scorecard, one panel (480 px: one column), four panels (1920 px), provenance
    assert parser.sections == ["card wide", "card", "card wide", "card wide"]
