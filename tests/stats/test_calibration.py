"""Coverage, SBC ranks and TARP against hand-worked cases and Gaussian posteriors with known coverage."""

import numpy as np
import pytest

from astrogen.errors import DataError
from astrogen.stats.calibration import (
    calibrate,
    central_intervals,
    coverage_tolerance,
    expected_coverage,
    gaussian_coverage,
    posterior_ranks,
    tarp_coverage,
)


def test_ranks_intervals_and_coverage_by_hand():
    samples = np.tile(np.arange(10.0), (3, 1))[..., None]  # three items, samples 0..9, one parameter
    truth = np.array([[4.5], [0.0], [10.0]])
    # below + ties / 2, over S = 10: 5 / 10; (0 + 1/2) / 10; 10 / 10
    np.testing.assert_allclose(posterior_ranks(samples, truth)[:, 0], [0.5, 0.05, 1.0])
    # |2u - 1| = 0, 0.9, 1: item 0 is inside every interval, item 1 from level 0.9 on, item 2 only at level 1.
    np.testing.assert_allclose(expected_coverage(samples, truth, [0.0, 0.5, 0.9, 0.99, 1.0])[:, 0],
                               [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0])
    low, high = central_intervals(samples, [0.8])
    np.testing.assert_allclose(low[0, :, 0], 0.9)  # the 10% quantile of 0..9, linear interpolation
    np.testing.assert_allclose(high[0, :, 0], 8.1)
    with pytest.raises(DataError, match=r"\[N, S, T\]"):
        posterior_ranks(samples[..., 0], truth)


def _gaussian_problem(n=4000, s=500, sigma=0.5, width=1.0, bias=0.0, seed=0):
    """theta ~ N(0, I_2), x = theta + N(0, sigma^2): posterior N(x / (1 + sigma^2), sigma^2 / (1 + sigma^2)) per
    component; samples from a Gaussian ``width`` times as wide, its mean ``bias`` posterior sds off."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n, 2))
    x = theta + sigma * rng.normal(size=(n, 2))
    mean, sd = x / (1 + sigma**2), sigma / np.sqrt(1 + sigma**2)
    samples = mean[:, None] + bias * sd + width * sd * rng.normal(size=(n, s, 2))
    return samples, theta


def test_exact_posterior_samples_cover_at_the_nominal_rate():
    samples, theta = _gaussian_problem()
    n = len(theta)
    result = calibrate(samples, theta, names=["a", "b"])
    binomial = np.sqrt(result.levels * (1 - result.levels) / n)
    # Binomial scatter (4 sd over 101 correlated levels), plus the 1/S resolution of the ranks (at level 0 a
    # truth with exactly S/2 samples below it counts as covered: probability ~1/S).
    assert np.all(np.abs(result.coverage - result.levels[:, None]) <= 4 * binomial[:, None] + 3 / 500)
    assert np.all(np.abs(result.tarp - result.levels) <= 4 * binomial + 3 / 500)
    assert result.verdict(0.68) == ["holds", "holds"] and result.verdict(0.95) == ["holds", "holds"]
    hist = np.histogram(result.ranks, bins=10, range=(0, 1))[0] / result.ranks.size
    np.testing.assert_allclose(hist, 0.1, atol=4 * np.sqrt(0.09 / result.ranks.size))  # SBC: uniform ranks


@pytest.mark.parametrize(("width", "bias", "verdict"), [(0.5, 0.0, "under"), (2.0, 0.0, "over"), (1.0, 1.0, "under")])
def test_miscalibrated_posteriors_cover_as_predicted(width, bias, verdict):
    samples, theta = _gaussian_problem(width=width, bias=bias)
    result = calibrate(samples, theta)
    predicted = gaussian_coverage(result.levels, width, bias)
    # e.g. half as wide: the 68% intervals hold the truth in 2 Phi(0.5 x 0.994) - 1 = 38.1% of the items.
    if width == 0.5:
        assert gaussian_coverage(0.68, 0.5) == pytest.approx(0.3810, abs=1e-4)
    binomial = np.sqrt(predicted * (1 - predicted) / len(theta))
    assert np.all(np.abs(result.coverage - predicted[:, None]) <= 4 * binomial[:, None] + 3 / 500)
    assert result.verdict(0.68) == [verdict] * 2
    # TARP sees it too, beyond its tolerance (3 points here); a 1-sd bias least (max |ECP - alpha| = 0.094).
    assert result.tarp_max_deviation > 2 * coverage_tolerance(0.5, len(theta))


def test_tolerance_and_tarp_checks():
    assert coverage_tolerance(0.68, 3072) == pytest.approx(0.03)  # 3 sd = 2.5 points: the 3-point floor
    assert coverage_tolerance(0.68, 100) == pytest.approx(3 * np.sqrt(0.68 * 0.32 / 100))
    assert gaussian_coverage(0.95, 1.0) == pytest.approx(0.95)
    samples, theta = _gaussian_problem(n=50, s=20)
    a, b = tarp_coverage(samples, theta, seed=1), tarp_coverage(samples, theta, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a[0] == 0 and a[-1] <= 1 and np.all(np.diff(a) >= 0)  # ECP(alpha) = share of items with f < alpha
    with pytest.raises(DataError, match="NaN"):
        calibrate(np.full((2, 3, 1), np.nan), np.zeros((2, 1)))
