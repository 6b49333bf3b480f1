"""float32 maps give the float64 results to float32 round-off, statistic by statistic and in the scorecard."""

import numpy as np
import pytest
import torch

from astrogen.stats.bispectrum import bispectrum
from astrogen.stats.compare import compare
from astrogen.stats.minkowski import minkowski_functionals
from astrogen.stats.peaks import peak_counts
from astrogen.stats.power import cross_spectrum, power_image, power_spectrum


def smooth(n, c=1, size=32, seed=0):
    """Band-limited maps rounded to float32, so both precisions see exactly the same pixel values."""
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    f = np.fft.rfft2(rng.normal(size=(n, c, size, size))) * np.exp(-((k / 0.2) ** 2))
    maps32 = (np.fft.irfft2(f, s=(size, size)) * 3 + 1).astype(np.float32)
    return maps32, maps32.astype(np.float64)


def test_power_spectra():
    maps32, maps64 = smooth(20, c=2)
    for estimator in (power_spectrum, cross_spectrum):
        p32, p64 = estimator(maps32, dimensionless=True).power, estimator(maps64, dimensionless=True).power
        assert p32.dtype == p64.dtype == np.float64
        np.testing.assert_allclose(p32, p64, rtol=2e-5, atol=2e-6 * np.abs(p64).max())
    image = power_image(maps64)
    np.testing.assert_allclose(power_image(maps32), image, rtol=2e-5, atol=1e-6 * image.max())
    np.testing.assert_allclose(power_spectrum(torch.from_numpy(maps32)).power, power_spectrum(maps32).power)


def test_structure_statistics_and_bispectrum():
    maps32, maps64 = smooth(30, c=2, seed=1)
    sigma = maps64.std(axis=(0, 2, 3))
    for periodic in (True, False):
        a, b = peak_counts(maps32, sigma=sigma, periodic=periodic), peak_counts(maps64, sigma=sigma, periodic=periodic)
        np.testing.assert_array_equal(a.counts, b.counts)  # the pixel values are the same: exact comparisons
        a = minkowski_functionals(maps32, sigma=sigma, periodic=periodic)
        b = minkowski_functionals(maps64, sigma=sigma, periodic=periodic)
        for name in ("v0", "v1", "v2"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-12)
    a, b = bispectrum(maps32), bispectrum(maps64)
    np.testing.assert_allclose(a.bispectrum, b.bispectrum, rtol=1e-4, atol=1e-5 * np.nanmax(np.abs(b.bispectrum)))
    np.testing.assert_allclose(a.reduced, b.reduced, rtol=1e-4, atol=1e-5 * np.nanmax(np.abs(b.reduced)))


def test_scorecard():
    maps32, maps64 = smooth(80, seed=2)
    a, b = compare(maps32[:40], maps32[40:], n_bootstrap=20), compare(maps64[:40], maps64[40:], n_bootstrap=20)
    for x, y in zip(a.rows, b.rows):
        assert x.statistic == y.statistic and x.distance == pytest.approx(y.distance, rel=1e-9, abs=1e-12)
