"""One-point statistics against SciPy and analytic values."""

import numpy as np
import pytest
import scipy.stats

from astrogen.errors import DataError
from astrogen.stats.onepoint import histograms, ks_statistic, mean_offset, moments, shared_edges, wasserstein1


def test_moments_of_gaussian_and_exponential_pixels():
    rng = np.random.default_rng(0)
    maps = np.concatenate([rng.normal(2.0, 3.0, (1, 1, 256, 256)), rng.exponential(1.0, (1, 1, 256, 256))], 1)
    m = moments(maps)
    np.testing.assert_allclose([m["mean"][0, 0], m["variance"][0, 0]], [2.0, 9.0], rtol=0.02)
    np.testing.assert_allclose([m["skewness"][0, 1], m["kurtosis"][0, 1]], [2.0, 6.0], rtol=0.15)
    np.testing.assert_allclose(m["skewness"][0, 0], scipy.stats.skew(maps[0, 0].ravel()))


def test_ks_and_wasserstein_match_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 2, 8, 8)), rng.normal(0.5, 1.2, size=(4, 2, 8, 8))
    for ch in range(2):
        x, y = a[:, ch].ravel(), b[:, ch].ravel()
        assert ks_statistic(a, b)[ch] == pytest.approx(scipy.stats.ks_2samp(x, y).statistic)
        assert wasserstein1(a, b)[ch] == pytest.approx(scipy.stats.wasserstein_distance(x, y))
    # A pure shift moves every pixel by the shift: W1 = shift.
    np.testing.assert_allclose(wasserstein1(a, a + 0.3), 0.3)


def test_histograms_share_edges_and_normalise():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 1, 16, 16)), rng.normal(1, 1, size=(3, 1, 16, 16))
    edges = shared_edges(a, b, bins=20)
    assert edges[0] == min(a.min(), b.min()) and edges[-1] >= max(a.max(), b.max())
    h = histograms(b, edges)
    np.testing.assert_allclose((h.density * np.diff(edges)).sum(-1), 1.0)
    assert not h.log
    positive = np.exp(a)
    log_edges = shared_edges(positive, positive, bins=10, log=True)
    assert histograms(positive, log_edges).log
    with pytest.raises(DataError, match="positive"):
        shared_edges(a, b, log=True)


def test_mean_offset_by_hand():
    real = np.zeros((3, 1, 2, 2))
    real[:, 0] += np.array([1.0, 2.0, 3.0])[:, None, None]  # map means 1, 2, 3: mean 2, std 1
    gen = np.full((2, 1, 2, 2), 3.5)
    np.testing.assert_allclose(mean_offset(real, gen), [1.5])
