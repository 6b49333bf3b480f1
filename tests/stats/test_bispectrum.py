"""Bispectrum: zero for Gaussian fields, positive for a lognormal field."""

import numpy as np

from astrogen.stats.bispectrum import angle_triangles, bispectrum, equilateral_triangles


def test_triangle_families():
    t = equilateral_triangles([0.5, 1.0])
    np.testing.assert_allclose(t[:, 2], 2 * np.pi / 3)
    a = angle_triangles(0.4, 0.8, [0.0, np.pi / 2])
    b = bispectrum(np.random.default_rng(0).normal(size=(1, 1, 32, 32)), triangles=a)
    np.testing.assert_allclose(b.k3, [1.2, np.sqrt(0.8)])


def gaussian_maps(n, seed):
    # Smoothed white noise: a correlated Gaussian field.
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(rng.normal(size=(n, 1, 32, 32)))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.rfftfreq(32), indexing="ij"))
    return np.fft.irfft2(f * np.exp(-((k / 0.15) ** 2)), s=(32, 32))


def test_gaussian_field_has_zero_bispectrum_and_lognormal_positive():
    g = gaussian_maps(150, seed=1)
    q = bispectrum(g).reduced
    z = q.mean(0) / (q.std(0) / np.sqrt(len(q)))
    assert np.all(np.abs(z) < 4.5), z
    assert np.mean(z**2) < 2.5  # chi^2 per configuration consistent with 0
    lognormal = np.exp(g / g.std())
    lognormal = lognormal / lognormal.mean(axis=(-2, -1), keepdims=True) - 1
    result = bispectrum(lognormal)
    b = result.bispectrum
    zb = b.mean(0) / (b.std(0) / np.sqrt(len(b)))
    assert np.all(zb > 3), zb
    assert np.all(result.reduced.mean(0) > 0)
