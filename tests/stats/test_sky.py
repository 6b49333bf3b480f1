"""sky_noise against Gaussian noise of known level, with and without galaxies."""

import numpy as np
import pytest
from scipy.stats import norm

from astrogen.errors import DataError
from astrogen.stats.sky import sky_noise


def stamps(n=2000, sigma=(1.0, 2.0), size=32, seed=0, peak=200.0):
    """Gaussian sky of ``sigma`` per band, plus a centred Gaussian galaxy of height ``peak`` in every stamp."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(sigma), size, size)) * np.asarray(sigma)[:, None, None]
    r2 = ((np.arange(size) - size / 2 + 0.5) ** 2)[:, None] + ((np.arange(size) - size / 2 + 0.5) ** 2)[None]
    return x + peak * np.exp(-r2 / (2 * 2.0**2))


def test_level_and_tail_of_gaussian_sky():
    noise = sky_noise(stamps())
    np.testing.assert_allclose(noise.sigma, [1.0, 2.0], rtol=0.01)
    np.testing.assert_allclose(noise.std, [1.0, 2.0], rtol=0.005)  # clipping at 4.5 sigma: -1e-4 in variance
    sky = sky_noise(stamps(n=4000, peak=0.0))  # 4 million pixels per band: 130 below -4 sigma
    np.testing.assert_allclose(sky.negative, norm.cdf(-4 * sky.sigma / np.array([1.0, 2.0])), rtol=0.2)


def test_a_wider_noise_and_a_negative_tail_show_on_the_reference_scale():
    real = sky_noise(stamps(seed=1))
    wide = stamps(sigma=(1.03, 2.06), seed=2)
    wide[::5, 0, 5, 5] = -6.0  # one outlier in every 5th stamp's first band (1e-4 of its pixels), in a corner
    gen = sky_noise(wide, real.sigma)
    np.testing.assert_allclose(gen.std / real.std, [1.03, 1.03], rtol=0.005)
    assert gen.negative[0] > 3 * real.negative[0] and gen.negative[1] < 3 * real.negative[1]


def test_bad_arguments_are_refused():
    with pytest.raises(DataError, match="corner"):
        sky_noise(stamps(n=4), corner=20)
    with pytest.raises(DataError, match="sigma"):
        sky_noise(stamps(n=4), sigma=[1.0])
    with pytest.raises(DataError, match="no corner"):
        sky_noise(np.full((4, 1, 32, 32), 100.0) + stamps(n=4, sigma=(1.0,)), sigma=[1.0])
