import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from astrogen.errors import ConfigError, DataError, UnknownNameError
from astrogen.sims import get_simulator, simulate, simulate_to_file
from astrogen.sims.blobs import FWHM_TO_SIGMA, blob_images

SIZE, FWHM = 48, 6.0
SIGMA = FWHM * FWHM_TO_SIGMA


def render(xs, ys, amplitudes, size=SIZE, sigma=SIGMA):
    """Independent float64 rendering of blobs, one pixel and one blob at a time (pixel centres at j, i)."""
    rows, cols = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size))
    for x, y, a in zip(xs, ys, amplitudes):
        image += a * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))
    return image


def mean_flux_fraction(size=SIZE, sigma=SIGMA):
    """E[fraction of a blob's flux inside the image] for a centre uniform over the image (1D)."""
    low, high = -0.5, size - 0.5
    inside = lambda x0: stats.norm.cdf((high - x0) / sigma) - stats.norm.cdf((low - x0) / sigma)  # noqa: E731
    return integrate.quad(inside, low, high)[0] / (high - low)


def test_fwhm_conversion():
    assert np.isclose(FWHM_TO_SIGMA * 2 * np.sqrt(2 * np.log(2)), 1.0)


def test_renderer_on_any_device_matches_the_direct_sum(device):
    rng = np.random.default_rng(5)
    x, y, a = rng.uniform(0, SIZE, (2, 7)), rng.uniform(0, SIZE, (2, 7)), rng.uniform(0, 2, (2, 7))
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float32, device=device)  # noqa: E731
    images = blob_images(as_tensor(x), as_tensor(y), as_tensor(a), SIZE, FWHM)
    assert images.device.type == device.type
    for i in range(2):
        np.testing.assert_allclose(images[i].cpu().numpy(), render(x[i], y[i], a[i]), atol=1e-5)


def test_one_blob_matches_analytic_gaussian():
    batch = simulate("blobs", 20, seed=1, config={"n_blobs": 1, "size": SIZE, "fwhm": FWHM})
    assert np.all(batch.params["n_blobs"] == 1)
    for image, x, y in zip(batch.images[:, 0], batch.params["x0"], batch.params["y0"]):
        np.testing.assert_allclose(image, render([x], [y], [1.0]), atol=2e-6)
        # The peak pixel is the one nearest the centre, and never exceeds the blob amplitude 1.
        nearest = image[int(np.clip(round(y), 0, SIZE - 1)), int(np.clip(round(x), 0, SIZE - 1))]
        assert nearest == image.max() <= 1.0
    assert np.all((batch.params["x0"] >= -0.5) & (batch.params["x0"] < SIZE - 0.5))


def test_ten_blobs_are_rescaled_to_peak_one():
    batch = simulate("blobs", 12, seed=2, config={"n_blobs": 10, "size": SIZE})
    np.testing.assert_array_equal(batch.images.max(axis=(1, 2, 3)), 1.0)
    assert np.all(batch.params["n_blobs"] == 10)
    xs = np.stack([batch.params[f"x{k}"] for k in range(10)], 1)
    ys = np.stack([batch.params[f"y{k}"] for k in range(10)], 1)
    for image, x, y in zip(batch.images[:, 0], xs, ys):
        expected = render(x, y, np.ones(10))
        np.testing.assert_allclose(image, expected / expected.max(), atol=2e-6)


def test_fifty_blobs_total_flux_matches_expectation():
    batch = simulate("blobs", 256, seed=3, config={"n_blobs": 50, "size": SIZE})
    assert np.all(batch.params["n_blobs"] == 50) and set(batch.params) == {"n_blobs"}
    # Each unit blob carries 2 pi sigma^2, of which a fraction f_x f_y falls inside the image.
    expected = 50 * 2 * np.pi * SIGMA**2 * mean_flux_fraction() ** 2
    measured = batch.images.sum(axis=(1, 2, 3))
    assert abs(measured.mean() / expected - 1) < 4 * measured.std() / np.sqrt(256) / expected + 1e-3
    assert batch.images.max() > 1.0  # not rescaled: overlapping blobs add up


def test_thousand_blobs_follow_the_truncated_folded_gaussian():
    sigma_i, threshold, n = 1.0, 0.5, 128
    config = {"n_blobs": 1000, "size": SIZE, "intensity_sigma": sigma_i, "intensity_threshold": threshold}
    batch = simulate("blobs", n, seed=4, config=config)
    kept = batch.params["n_blobs"]
    p = special.erfc(threshold / (sigma_i * np.sqrt(2)))  # P(|N(0, sigma)| >= threshold)
    assert abs(kept.mean() - 1000 * p) < 5 * np.sqrt(1000 * p * (1 - p) / n)
    # E[a 1{a >= t}] for a = |N(0, sigma^2)| is 2 sigma phi(t / sigma).
    mean_amplitude_sum = 1000 * 2 * sigma_i * stats.norm.pdf(threshold / sigma_i)
    expected = mean_amplitude_sum * 2 * np.pi * SIGMA**2 * mean_flux_fraction() ** 2
    measured = batch.images.sum(axis=(1, 2, 3))
    assert abs(measured.mean() / expected - 1) < 4 * measured.std() / np.sqrt(n) / expected + 1e-3


def test_same_seed_same_bits_and_prefix_property(tmp_path):
    config = {"n_blobs": 10, "size": 32}
    a = simulate_to_file("blobs", 150, tmp_path / "a.h5", seed=7, config=config)
    b = simulate_to_file("blobs", 150, tmp_path / "b.h5", seed=7, config=config)
    c = simulate_to_file("blobs", 150, tmp_path / "c.h5", seed=8, config=config)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    # Blocks never depend on n: a shorter set is a prefix of a longer one (across a block boundary).
    short = simulate("blobs", 130, seed=7, config=config)
    long = simulate("blobs", 300, seed=7, config=config)
    np.testing.assert_array_equal(short.images, long.images[:130])


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown key 'blobs'"):
        get_simulator("blobs", {"blobs": 3})
    with pytest.raises(ConfigError, match="n_blobs"):
        get_simulator("blobs", {"n_blobs": 7})
    with pytest.raises(ConfigError, match="fwhm"):
        get_simulator("blobs", {"fwhm": -1})
    with pytest.raises(UnknownNameError, match="available: blobs"):
        get_simulator("nbody")
    with pytest.raises(DataError, match=">= 1"):
        simulate("blobs", 0)


def test_a_block_too_large_for_the_memory_is_refused_before_rendering(monkeypatch, tmp_path):
    import astrogen.sims.base as base

    monkeypatch.setattr(base, "available_memory", lambda: 10_000_000)  # 10 MB
    with pytest.raises(DataError, match=r"a block of \d+ samples of 1 x 256 x 256 takes .* available memory"):
        simulate_to_file("blobs", 1, tmp_path / "x.h5", config={"size": 256})
    assert not list(tmp_path.iterdir())
