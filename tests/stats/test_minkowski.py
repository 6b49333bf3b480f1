import numpy as np
import pytest
import torch

from astrogen.errors import DataError
from astrogen.stats.minkowski import gaussian_minkowski, minkowski_functionals

SIZE = 64


def gaussian_field(n, ell, pixel_size=1.0, seed=0):
    """Periodic Gaussian random fields with P(k) ~ exp(-k^2 ell^2 / 2); returns maps, sigma0, sigma1.

    sigma0^2 = sum_k P and sigma1^2 = sum_k |k|^2 P are exact for the band-limited periodic field;
    ``fd_sigma1`` is what central differences measure (k -> sin(k dx) / dx).
    """
    rng = np.random.default_rng(seed)
    k = 2 * np.pi * np.fft.fftfreq(SIZE, d=pixel_size)
    ky, kx = k[:, None], k[None, :]
    power = np.exp(-0.5 * (kx**2 + ky**2) * ell**2)
    maps = np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, 1, SIZE, SIZE))) * np.sqrt(power)).real
    norm = SIZE**2
    sigma0 = np.sqrt(power.sum() / norm)
    sigma1 = np.sqrt(((kx**2 + ky**2) * power).sum() / norm)
    fd = ((np.sin(kx * pixel_size) ** 2 + np.sin(ky * pixel_size) ** 2) / pixel_size**2 * power).sum() / norm
    return maps, sigma0, sigma1, np.sqrt(fd)


def check_gaussian(m, analytic, tolerance):
    """Mean over maps agrees with the analytic curve within 4 standard errors + tolerance x max |curve|."""
    for est, ana in zip((m.v0, m.v1, m.v2), analytic):
        mean = est.mean(axis=(0, 1))
        err = est.std(axis=(0, 1)) / np.sqrt(est.shape[0])
        assert (np.abs(mean - ana) < 4 * err + tolerance * np.abs(ana).max()).all(), (mean, ana)


def test_gaussian_field_matches_tomita_formulas():
    # spectral derivatives are exact for a band-limited periodic field; the remaining bias is the box delta
    # function (relative ~ dnu^2 (nu^2 - 1) / 24 < 2 % for dnu = 0.25, |nu| < 3)
    pixel_size = 0.5
    maps, s0, s1, _ = gaussian_field(100, ell=3 * pixel_size, pixel_size=pixel_size)
    m = minkowski_functionals(maps, sigma=s0, pixel_size=pixel_size)
    assert m.v0.shape == (100, 1, 25)
    check_gaussian(m, gaussian_minkowski(m.thresholds, s0, s1), tolerance=0.02)
    # the test can fail: a 10 % error in sigma1 is detected
    with pytest.raises(AssertionError):
        check_gaussian(m, gaussian_minkowski(m.thresholds, s0, 1.1 * s1), tolerance=0.02)


def test_gaussian_field_with_finite_differences():
    # non-periodic derivatives are central differences: V1 follows the formula with the sigma1 that they
    # measure (pixelisation); V2 also uses second differences, checked to 5 % of its peak
    maps, s0, _, fd_s1 = gaussian_field(100, ell=4.0, seed=1)
    m = minkowski_functionals(maps, sigma=s0, periodic=False)
    v0, v1, v2 = gaussian_minkowski(m.thresholds, s0, fd_s1)
    check_gaussian(m, (v0, v1, v2), tolerance=0.05)


def test_single_blob_area_perimeter_and_euler_characteristic():
    # f = exp(-r^2 / 2 s^2): the excursion set above nu is a disc of radius s sqrt(2 ln(1/nu)), chi = 1.
    # One blob samples the thin box-delta annulus with few pixels (a few % scatter per map), so the
    # estimator is checked on 16 blobs with random sub-pixel centres
    s, size, pixel_size = 10.0, 128, 0.25
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[0:size, 0:size] - size / 2
    blobs = np.stack([np.exp(-((rows - a) ** 2 + (cols - b) ** 2) / (2 * s**2))
                      for a, b in rng.uniform(-0.5, 0.5, size=(16, 2))])[:, None]
    nu = np.array([0.2, 0.4, 0.6, 0.8])
    m = minkowski_functionals(torch.from_numpy(blobs), thresholds=nu, sigma=1.0, pixel_size=pixel_size, dnu=0.1)
    area = (size * pixel_size) ** 2
    radius = s * np.sqrt(2 * np.log(1 / nu)) * pixel_size
    np.testing.assert_allclose(m.v0.mean(axis=0)[0], np.pi * radius**2 / area, rtol=0.02)
    np.testing.assert_allclose(m.v1.mean(axis=0)[0], 2 * np.pi * radius / (4 * area), rtol=0.03)
    np.testing.assert_allclose(m.v2.mean(axis=0)[0], 1 / area, rtol=0.03)


def test_sign_flip_symmetry():
    # excursion sets of -f at -nu are complements of those of f at nu: V0 -> 1 - V0, V1 same, V2 -> -V2
    maps, s0, _, _ = gaussian_field(4, ell=3.0, seed=2)
    nu = np.linspace(-2, 2, 9)
    a = minkowski_functionals(maps, thresholds=nu, sigma=s0)
    b = minkowski_functionals(-maps, thresholds=-nu, sigma=s0)
    np.testing.assert_allclose(b.v0, 1 - a.v0, atol=1e-12)
    np.testing.assert_allclose(b.v1, a.v1, rtol=1e-5)
    np.testing.assert_allclose(b.v2, -a.v2, rtol=1e-5, atol=1e-12)


def test_default_sigma_is_the_set_pixel_std():
    maps, _, _, _ = gaussian_field(3, ell=3.0, seed=3)
    two = np.concatenate([maps, 3 * maps], axis=1)
    m = minkowski_functionals(two)
    np.testing.assert_allclose(m.sigma, two.std(axis=(0, 2, 3)))
    np.testing.assert_allclose(m.v0[:, 0], m.v0[:, 1])  # same maps in units of their own sigma


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8)), np.full((8, 8), np.inf), np.zeros((8, 8))])
def test_bad_input_raises(bad):
    with pytest.raises(DataError):
        minkowski_functionals(bad)


def test_threshold_grids_bin_consistently():
    # a fine uniform grid (arithmetic binning) and a few irregular thresholds (searchsorted) agree, and v0 is
    # the plain pixel fraction above each threshold
    maps, s0, _, _ = gaussian_field(5, ell=3.0, seed=4)
    fine = minkowski_functionals(maps, thresholds=np.linspace(-1, 2, 31), sigma=s0, dnu=0.1)
    few = minkowski_functionals(maps, thresholds=[-1.0, 0.3, 2.0], sigma=s0, dnu=0.1)
    pick = [0, 13, 30]
    for name in ("v0", "v1", "v2"):
        np.testing.assert_allclose(getattr(few, name), getattr(fine, name)[..., pick], rtol=1e-6, atol=1e-9)
    direct = (maps[..., None] > fine.thresholds * s0).mean(axis=(2, 3))
    np.testing.assert_allclose(fine.v0, direct, atol=1e-12)
