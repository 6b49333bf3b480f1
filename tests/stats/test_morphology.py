import galsim
import numpy as np
import pytest

from astrogen.errors import DataError
from astrogen.stats.morphology import morphology

SIZE = 64


def galaxy(n, hlr, q, beta, flux=5000.0, offset=(0.0, 0.0)):
    """GalSim Sersic (pixel-integrated, 1 pixel = 1 unit): semi-major half-light radius is hlr / sqrt(q)."""
    profile = galsim.Sersic(n=n, half_light_radius=hlr, flux=flux).shear(q=q, beta=beta * galsim.radians)
    return profile.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=offset).array


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    truth = np.column_stack([rng.uniform(0.8, 3.0, 8), rng.uniform(4.0, 8.0, 8), rng.uniform(0.4, 0.9, 8),
                             rng.uniform(0, np.pi, 8)])
    images = np.stack([galaxy(*t) for t in truth])
    # two bands: the second is the same galaxy 3x fainter (still bright) with the same noise level
    maps = np.stack([images, images / 3.0], axis=1) + rng.normal(0, 0.5, (8, 2, SIZE, SIZE))
    return truth, maps, morphology(maps, pixel_size=0.2)


def test_recovers_sersic_truth_for_bright_galaxies(sample):
    truth, _, m = sample
    assert not m.failed.any() and m.reason[0] == ["", ""]
    n, hlr, q = truth[:, 0, None], truth[:, 1, None], truth[:, 2, None]
    size_error = np.abs(m.half_light_radius / (0.2 * hlr / np.sqrt(q)) - 1)
    ellipticity_error = np.abs(m.ellipticity / (1 - q) - 1)
    assert np.median(size_error) < 0.1
    assert np.median(ellipticity_error) < 0.1
    assert np.median(np.abs(m.sersic_n / n - 1)) < 0.1


def test_isophotal_quantities_scale_with_pixel_size(sample):
    _, maps, m = sample
    ref = morphology(maps[:2, :1], pixel_size=1.0, fit_sersic=False)
    np.testing.assert_allclose(m.semi_major_axis[:2, :1], 0.2 * ref.semi_major_axis)
    np.testing.assert_allclose(m.area[:2, :1], 0.04 * ref.area)
    np.testing.assert_allclose(m.ellipticity[:2, :1], ref.ellipticity)
    assert np.isnan(ref.sersic_n).all() and not ref.failed.any()
    # the fainter band has a smaller isophote above the same 3-sigma noise threshold
    assert (m.area[:, 1] < m.area[:, 0]).all()


def test_failures_are_flagged_not_dropped():
    rng = np.random.default_rng(1)
    stamps = np.stack([rng.normal(size=(SIZE, SIZE)), galaxy(1.0, 5.0, 0.7, 0.3) + rng.normal(0, 0.5, (SIZE, SIZE)),
                       np.zeros((SIZE, SIZE))])[:, None]
    m = morphology(stamps, threshold_sigma=6.0)
    np.testing.assert_array_equal(m.failed[:, 0], [True, False, True])
    assert "no source" in m.reason[0][0] and "background" in m.reason[2][0]
    assert np.isnan(m.ellipticity[[0, 2], 0]).all() and np.isfinite(m.ellipticity[1, 0])


def test_central_source_is_measured_else_the_brightest():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.5, (SIZE, SIZE))
    small_centre = galaxy(1.0, 2.5, 0.9, 0.0, flux=2000.0)
    big_offset = galaxy(1.0, 4.0, 0.4, 0.0, flux=8000.0, offset=(-20.0, -20.0))
    both = morphology(small_centre + big_offset + noise)
    alone = morphology(galaxy(1.0, 4.0, 0.4, 0.0, flux=8000.0, offset=(-20.0, -20.0)) + noise)
    assert both.ellipticity[0, 0] < 0.2  # the round central galaxy, not the brighter elongated one
    assert alone.ellipticity[0, 0] > 0.45


def test_bad_input_raises():
    with pytest.raises(DataError):
        morphology(np.zeros((2, 8, 8)))
    with pytest.raises(DataError):
        morphology(np.zeros((8, 8)), threshold_sigma=0)
