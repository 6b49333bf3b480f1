"""Power spectra: known input spectra recovered within cosmic variance, Parseval, units, CIC and shot noise."""

import math

import numpy as np
import pytest
import torch

from astrogen.errors import DataError
from astrogen.stats.power import (
    _bin_weights,
    _edges,
    _grid,
    correlation_coefficient,
    cross_spectrum,
    power_image,
    power_spectrum,
    welch_power,
)


def spectrum(k):
    return 3.0 * (k + 0.3) ** -1.5


def gaussian_field(n_maps, shape, pixel_size, seed):
    """Gaussian random fields with <|delta_k|^2> = N_pix^2 spectrum(k) / V (the estimator's normalisation)."""
    grid = _grid(shape, pixel_size, torch.device("cpu"))
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.normal(size=(n_maps, 1, *shape)))
    dims = tuple(range(2, 2 + len(shape)))
    amplitude = torch.sqrt(spectrum(grid.kmag) * grid.npix / grid.volume).reshape(*shape[:-1], -1)
    return torch.fft.irfftn(torch.fft.rfftn(noise, dim=dims) * amplitude, s=shape, dim=dims).numpy(), grid


@pytest.mark.parametrize("shape, pixel_size, n_maps", [((64, 64), 0.5, 64), ((24, 24, 24), 2.0, 6)])
def test_gaussian_field_spectrum_within_cosmic_variance(shape, pixel_size, n_maps):
    maps, grid = gaussian_field(n_maps, shape, pixel_size, seed=1)
    measured = power_spectrum(maps, pixel_size=pixel_size)
    edges, _ = _edges(None, False, shape, pixel_size)
    idx, weights, modes, _ = _bin_weights(grid, edges)
    expected = torch.zeros(len(modes) + 1, dtype=torch.float64).index_add_(0, idx, spectrum(grid.kmag) * weights)
    expected, modes = expected[:-1].numpy(), modes.numpy()
    np.testing.assert_array_equal(modes, measured.modes)
    # Cosmic variance of a bin: half of the counted modes are independent, each with var P^2.
    sigma = expected * np.sqrt(2 / measured.modes) / np.sqrt(n_maps)
    chi2 = np.sum(((measured.power.mean((0, 1)) - expected) / sigma) ** 2)
    dof = len(expected)
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)
    # And it must be able to fail: a 10% wrong amplitude is far outside.
    assert np.sum(((1.1 * measured.power.mean((0, 1)) - expected) / sigma) ** 2) > dof + 5 * np.sqrt(2 * dof)


def test_parseval_sum_of_power_over_volume_is_variance():
    maps = np.random.default_rng(2).normal(size=(3, 2, 16, 20)) * 3
    edges = np.array([1e-9, 1.0, 10.0])  # every mode but k = 0
    ps = power_spectrum(maps, pixel_size=0.7, bins=edges)
    volume = 16 * 20 * 0.7**2
    np.testing.assert_allclose((ps.power * ps.modes).sum(-1) / volume, maps.var(axis=(-2, -1)), rtol=1e-10)
    assert ps.modes.sum() == 16 * 20 - 1


def test_physical_k_and_power_scale_with_pixel_size():
    maps = np.random.default_rng(3).normal(size=(2, 1, 32, 32))
    a, b = power_spectrum(maps, pixel_size=1.0), power_spectrum(maps, pixel_size=2.0)
    np.testing.assert_allclose(b.k, a.k / 2)
    np.testing.assert_allclose(b.power, a.power * 4)  # P carries <pixel unit>^2 in 2D
    # The first bin holds the 4 modes at k_f = 2 pi / L and the 4 at sqrt(2) k_f (angular k).
    np.testing.assert_allclose(a.k[0], 2 * np.pi / 32 * (1 + np.sqrt(2)) / 2, rtol=1e-12)
    assert a.modes[0] == 8


def test_cic_deconvolution_undoes_the_cic_window():
    maps = np.random.default_rng(4).normal(size=(2, 1, 16, 16, 16))
    grid = _grid((16, 16, 16), 1.5, torch.device("cpu"))
    window = math.prod(torch.sinc(a * 1.5 / (2 * np.pi)) ** 2 for a in grid.axes).reshape(16, 16, 9)
    dims = (2, 3, 4)
    painted = torch.fft.irfftn(torch.fft.rfftn(torch.from_numpy(maps), dim=dims) * window, s=(16,) * 3, dim=dims)
    raw = power_spectrum(maps, pixel_size=1.5)
    np.testing.assert_allclose(power_spectrum(painted.numpy(), 1.5, deconvolve_cic=True).power, raw.power, rtol=1e-9)
    assert not np.allclose(power_spectrum(painted.numpy(), 1.5).power, raw.power, rtol=1e-2)


def test_poisson_shot_noise_subtraction_leaves_no_power():
    counts = np.random.default_rng(5).poisson(4.0, size=(200, 1, 32, 32)).astype(np.float64)
    ps = power_spectrum(counts, pixel_size=0.5, shot_noise="poisson")
    shot = 4.0 * 0.5**2
    raw = power_spectrum(counts, pixel_size=0.5).power.mean((0, 1))
    np.testing.assert_allclose(raw, shot, rtol=0.05)
    assert np.all(np.abs(ps.power.mean((0, 1))) < 0.05 * shot)
    with pytest.raises(DataError, match="negative"):
        power_spectrum(counts - 10, shot_noise="poisson")


def test_dimensionless_form_2d():
    maps = np.random.default_rng(6).normal(size=(2, 1, 32, 32))
    edges = np.array([0.5, 0.6])
    p, d = power_spectrum(maps, bins=edges), power_spectrum(maps, bins=edges, dimensionless=True)
    np.testing.assert_allclose(d.power, p.power * p.k**2 / (2 * np.pi), rtol=0.05)
    assert d.dimensionless


def test_cross_spectrum_and_correlation_coefficient():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(40, 1, 32, 32))
    same = np.concatenate([a, a], 1)
    _, r = correlation_coefficient(same)
    np.testing.assert_allclose(r, 1.0, rtol=1e-12)
    independent = np.concatenate([a, rng.normal(size=a.shape)], 1)
    k, r = correlation_coefficient(independent)
    modes = power_spectrum(a).modes
    # r of independent fields ~ N(0, 1 / (modes / 2)) per map and bin.
    assert np.all(np.abs(r[:, 0, 1].mean(0)) < 5 / np.sqrt(modes / 2 * len(a)))
    cross = cross_spectrum(independent)
    np.testing.assert_allclose(cross.power[:, 0, 0], power_spectrum(a).power[:, 0])
    assert cross.power.shape == (40, 2, 2, len(k))


def test_power_image_is_centred_and_normalised():
    image = power_image(np.ones((8, 8)) * 2.0, pixel_size=0.5)
    assert image.shape == (1, 1, 8, 8)
    expected = np.zeros((8, 8))
    expected[4, 4] = 4.0 * 16  # mean^2 * area
    np.testing.assert_allclose(image[0, 0], expected, atol=1e-12)


def test_welch_of_white_noise_is_flat():
    maps = np.random.default_rng(8).normal(size=(4, 1, 64, 256))
    k, p = welch_power(maps, pixel_size=0.5, nperseg=64)
    assert p.shape == (4, 1, len(k))
    # One-sided density of unit white noise sampled at fs = 1 / pixel: 2 var / fs.
    np.testing.assert_allclose(p[..., 1:-1].mean(), 2 * 0.5, rtol=0.05)
    np.testing.assert_allclose(k[-1], np.pi / 0.5)


def test_torch_input_matches_numpy_and_bad_input_raises():
    maps = np.random.default_rng(9).normal(size=(2, 1, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(power_spectrum(torch.from_numpy(maps)).power, power_spectrum(maps).power)
    assert power_spectrum(maps).power.dtype == np.float64
    bad = maps.copy()
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        power_spectrum(bad)
    with pytest.raises(DataError, match="expected"):
        power_spectrum(maps[0])
    with pytest.raises(DataError, match="increasing"):
        power_spectrum(maps, bins=[0.5, 0.2])
