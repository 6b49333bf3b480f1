import json

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
    card = json.loads((tmp_path / "same" / "scorecard.json").read_text())
    assert card  # the scorecard's own format (astrogen.stats.compare.Scorecard.to_json)
    # A set with the wrong spectral slope and amplitude must fail the power-spectrum row.
    code, out, _ = cli("evaluate", real, steep, "--out", str(tmp_path / "steep"), "--stats", "power,mean")
    assert code == 0 and "FAIL" in out
    text = (tmp_path / "steep" / "report.html").read_text()
    assert "Power spectrum" in text and "Peaks" not in text
