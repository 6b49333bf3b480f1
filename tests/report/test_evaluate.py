import json
from dataclasses import replace

import numpy as np
import pytest

from astrogen.data import FieldMeta, FieldSetWriter


def gaussian_maps(n, channels, size, slope, seed):
    """Periodic Gaussian random fields with P(k) ∝ k^slope, [n, channels, size, size]."""
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    amplitude = np.where(k > 0, k, np.inf) ** (slope / 2)
    noise = np.fft.fft2(rng.normal(size=(n, channels, size, size)))
    return np.fft.ifft2(noise * amplitude).real.astype(np.float32)


def write(path, images, channels, units="uK", pixel_size=2.0, z=None):
    meta = FieldMeta(channels=channels, units=units, pixel_size=pixel_size, pixel_unit="arcmin", periodic=True)
    z = np.linspace(0, 1, len(images)) if z is None else z
    with FieldSetWriter(path, images.shape[1:], meta, param_names=["z"]) as writer:
        writer.append(images, {"z": z})
    return str(path)


def test_incompatible_sets_are_one_line_errors(tmp_path, cli):
    images = gaussian_maps(4, 2, 16, -2, 0)
    real = write(tmp_path / "real.h5", images, ["a", "b"])
    for name, kwargs, message in [("chan.h5", {"channels": ["a", "c"]}, "channels differ"),
                                  ("units.h5", {"channels": ["a", "b"], "units": "K"}, "units differ"),
                                  ("pix.h5", {"channels": ["a", "b"], "pixel_size": 1.0}, "pixel size differ")]:
        other = write(tmp_path / name, images, **kwargs)
        code, _, err = cli("evaluate", real, other, "--out", str(tmp_path / "r"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("evaluate", real, write(tmp_path / "s.h5", images[..., :8], ["a", "b"]),
                       "--out", str(tmp_path / "r"))
    assert code == 2 and "map shape differ" in err
    code, _, err = cli("evaluate", real, real, "--out", str(tmp_path / "r"), "--condition", "z")
    assert code == 2 and "add 'morphology'" in err
    code, _, err = cli("evaluate", real, real, "--out", str(tmp_path / "r"), "--stats", "power,morphology",
                       "--condition", "mass")
    assert code == 2 and "no parameter 'mass'" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_evaluate_end_to_end(tmp_path, cli):
    pytest.importorskip("astrogen.stats.compare")
    real = write(tmp_path / "real.h5", gaussian_maps(24, 2, 32, -2, 0), ["kappa", "tsz"])
    same = write(tmp_path / "same.h5", gaussian_maps(24, 2, 32, -2, 1), ["kappa", "tsz"])
    steep = write(tmp_path / "steep.h5", 3 * gaussian_maps(24, 2, 32, -3, 2), ["kappa", "tsz"])
    code, out, err = cli("evaluate", real, same, "--out", str(tmp_path / "same"), "--n-max", "20")
    assert code == 0, err
    assert "report" in out and (tmp_path / "same" / "report.html").is_file()
    text = (tmp_path / "same" / "report.html").read_text()
    for title in ("Scorecard", "Samples", "Pixel distribution", "Power spectrum", "Cross-correlation", "Peaks",
                  "Minkowski functionals", "Clusters", "Marginal sums", "Provenance"):
        assert f"<h2>{title}" in text
    assert "Morphology" not in text  # not galaxy bands
    covariance = text[text.index("<h2>Power spectrum covariance"):]
    assert "<img" in covariance[:covariance.index("</section>")]  # the map-to-map correlation of P(k)
    header = text[text.index("<header>"):text.index("</header>")]
    assert "real.h5" in header and "same.h5" in header and "20 of 24" in header and "32 × 32 pixels" in header
    assert "astrogen " in header and " UTC" in header
    card = json.loads((tmp_path / "same" / "scorecard.json").read_text())
    assert card  # the scorecard's own format (astrogen.stats.compare.Scorecard.to_json)
    # A set with the wrong spectral slope and amplitude must fail the power-spectrum row.
    code, out, _ = cli("evaluate", real, steep, "--out", str(tmp_path / "steep"), "--stats", "power,mean")
    assert code == 0 and "FAIL" in out
    text = (tmp_path / "steep" / "report.html").read_text()
    assert "Power spectrum" in text and "Peaks" not in text


@pytest.mark.slow
def test_streamed_evaluate_equals_compare_on_the_same_maps(tmp_path):
    """The streamed scorecard is the in-memory one: same subset, same distances and bootstrap errors."""
    from astrogen.data import FieldSet
    from astrogen.report import evaluate
    from astrogen.stats.compare import DEFAULT_STATS, compare

    real = write(tmp_path / "real.h5", gaussian_maps(40, 2, 32, -2, 0), ["kappa", "tsz"])
    gen = write(tmp_path / "gen.h5", 1.1 * gaussian_maps(36, 2, 32, -2.5, 1), ["kappa", "tsz"])
    # batches of 8 maps of a random subset of 30: several batches per set, the last one partial
    result = evaluate(real, gen, tmp_path / "eval", n_max=30, seed=3, batch_size=8)
    rng = np.random.default_rng(3)  # the subset evaluate draws: sorted random indices, real then generated
    with FieldSet(real) as r, FieldSet(gen) as g:
        maps = [fs[np.sort(rng.choice(len(fs), 30, replace=False))].images for fs in (r, g)]
    expected = compare(*maps, stats=DEFAULT_STATS, pixel_size=2.0, seed=3, periodic=True)
    assert [row.statistic for row in result.scorecard.rows] == list(DEFAULT_STATS)
    for got, want in zip(result.scorecard.rows, expected.rows, strict=True):
        assert got.distance == pytest.approx(want.distance, rel=1e-9, abs=1e-12), got.statistic
        assert got.error == pytest.approx(want.error, rel=1e-9, abs=1e-12), got.statistic
    assert result.scorecard.provenance["real_shape"] == [30, 2, 32, 32]


@pytest.mark.slow
def test_evaluate_holds_one_batch_not_the_sets(tmp_path):
    """Traced peak memory stays below one set's maps (float32, as stored): the sets stream in batches."""
    import tracemalloc

    from astrogen.report import evaluate

    maps = gaussian_maps(1024, 1, 96, -2, 0)
    real, gen = write(tmp_path / "real.h5", maps[:512], ["kappa"]), write(tmp_path / "gen.h5", maps[512:], ["kappa"])
    evaluate(real, gen, tmp_path / "warm", stats=["mean"], n_max=2)  # first imports allocate too
    tracemalloc.start()
    try:
        evaluate(real, gen, tmp_path / "eval", stats=["power", "mean"], batch_size=16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Holding the maps would take 6x this (both sets, as read and as float64); figures take ~5 MiB.
    assert peak < maps[:512].nbytes, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.slow
def test_morphology_is_measured_on_a_bounded_number_of_stamps_across_batches(tmp_path, monkeypatch):
    import importlib

    # the modules, not the functions of the same names that their packages export
    evaluate_module = importlib.import_module("astrogen.report.evaluate")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:24, :24] - 11.5
    widths = rng.uniform(1.5, 3.0, size=(20, 1, 1, 1))
    stamps = (100 * np.exp(-(x**2 + (y / 0.7) ** 2) / (2 * widths**2)) * np.array([0.5, 1.0])[:, None, None]
              + rng.normal(size=(20, 2, 24, 24))).astype(np.float32)
    z = widths.ravel()
    real = write(tmp_path / "real.h5", stamps[:10], ["g", "r"], units="nJy", z=z[:10])
    gen = write(tmp_path / "gen.h5", stamps[10:], ["g", "r"], units="nJy", z=z[10:])
    morphology_module = importlib.import_module("astrogen.stats.morphology")
    measured, measure = [], morphology_module.morphology
    monkeypatch.setattr(morphology_module, "morphology", lambda maps, **kw: measured.append(len(maps)) or measure(
        maps, **kw))
    monkeypatch.setattr(evaluate_module, "MORPHOLOGY_MAX", 6)
    result = evaluate_module.evaluate(real, gen, tmp_path / "eval", stats=["morphology"], condition="z", batch_size=4)
    assert measured == [4, 2, 4, 2]  # per set: a whole batch of 4, then 2 of the next, then none
    text = result.report.read_text()
    # samples, histograms, shape intervals, photometry intervals
    assert "<h2>Morphology" in text and text.count("data:image/png") == 4


def test_header_names_the_model_and_its_card(tmp_path):
    """A generated set whose provenance names a shipped model: the header names it and links its card."""
    from astrogen.data import FieldSet
    from astrogen.report import evaluate
    from astrogen.tasks import PRETRAINED_DIR

    real = write(tmp_path / "real.h5", gaussian_maps(6, 1, 16, -2, 0), ["delta"])
    with FieldSet(real) as fs:
        meta = replace(fs.meta, provenance={"generated_from": "pretrained:matter-demo"})
    images = gaussian_maps(6, 1, 16, -2, 1)
    with FieldSetWriter(tmp_path / "gen.h5", images.shape[1:], meta) as writer:
        writer.append(images, {})
    result = evaluate(real, tmp_path / "gen.h5", tmp_path / "eval", stats=["mean"])
    header = result.report.read_text().split("</header>")[0]
    card = (PRETRAINED_DIR / "matter-demo" / "MODEL.md").resolve()
    assert "pretrained:matter-demo" in header and f'href="{card.as_uri()}"' in header and "training steps" in header
    assert result.scorecard.provenance["generated"]["model"]["card"] == str(card)
