import galsim
import numpy as np
import pytest
from scipy import special
from scipy.signal import fftconvolve

from astrogen.data import FieldSet
from astrogen.data.fieldset import FieldMeta
from astrogen.errors import DataError
from astrogen.sims import simulate_to_file
from astrogen.stats.morphology import PixelSersic2D, PSFSersic2D, morphology, psf_from_meta, psf_image

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
    assert np.median(np.abs(m.sersic_ellipticity - (1 - q))) < 0.03


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


def test_psf_convolved_model_matches_galsim():
    # Sersic * Gaussian PSF (FWHM 4 pixels) * pixel, on and off a pixel corner: the cusp is integrated on a fine grid.
    tight = galsim.GSParams(folding_threshold=1e-4, maxk_threshold=1e-5, kvalue_accuracy=1e-6)
    psf = psf_image(4.0, "gaussian")
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    worst_plain = 0.0
    for n, r, q, beta, offset in [(4.0, 1.0, 0.7, 0.3, (0.3, -0.2)), (4.0, 2.0, 0.8, 1.0, (0.0, 0.0)),
                                  (4.0, 5.0, 0.8, 1.0, (0.3, -0.2)), (1.0, 1.0, 0.5, 0.4, (-0.4, 0.1))]:
        profile = galsim.Sersic(n=n, half_light_radius=r, flux=1.0).shear(q=q, beta=beta * galsim.radians)
        ref = galsim.Convolve(profile, galsim.Gaussian(fwhm=4.0), gsparams=tight).drawImage(
            nx=SIZE, ny=SIZE, scale=1.0, offset=offset).array
        b_n = special.gammaincinv(2 * n, 0.5)  # surface brightness at r_e of a unit-flux profile
        amplitude = b_n ** (2 * n) / (2 * np.pi * n * np.exp(b_n) * special.gamma(2 * n) * r**2)
        params = dict(amplitude=amplitude, r_eff=r / np.sqrt(q), n=n, x_0=31.5 + offset[0], y_0=31.5 + offset[1],
                      ellip=1 - q, theta=beta)
        np.testing.assert_allclose(PSFSersic2D(**params, psf=psf)(xx, yy), ref, atol=4e-3 * ref.max(), rtol=0)
        padded = np.mgrid[0:SIZE + 32, 0:SIZE + 32] - 16.0  # the plain discrete convolution, for comparison
        plain = fftconvolve(PixelSersic2D(**params)(padded[1], padded[0]), psf, mode="valid")
        worst_plain = max(worst_plain, np.abs(plain - ref).max() / ref.max())
    assert worst_plain > 0.1


@pytest.mark.slow
def test_psf_aware_fit_recovers_the_galaxy_before_seeing():
    # GalSim Sersic galaxies seen through a Gaussian PSF of FWHM 4 pixels (pixel-integrated), bright, with noise.
    rng = np.random.default_rng(3)
    truth = [(1.0, 3.0, 0.5, 0.4), (2.5, 4.0, 0.7, 2.0), (4.0, 5.0, 0.8, 1.0)]
    seeing = galsim.Gaussian(fwhm=4.0)
    images = np.stack([galsim.Convolve(galsim.Sersic(n=n, half_light_radius=r, flux=5000.0)
                                       .shear(q=q, beta=b * galsim.radians), seeing)
                       .drawImage(nx=SIZE, ny=SIZE, scale=1.0).array for n, r, q, b in truth])
    maps = images[:, None] + rng.normal(0, 0.5, (3, 1, SIZE, SIZE))
    plain = morphology(maps)
    aware = morphology(maps, psf=psf_image(4.0, "gaussian"))
    n, r, q = (np.array(t)[:, None] for t in list(zip(*truth))[:3])
    assert not aware.failed.any()
    np.testing.assert_allclose(aware.sersic_n, n, rtol=0.1)
    np.testing.assert_allclose(aware.sersic_ellipticity, 1 - q, atol=0.02)
    np.testing.assert_allclose(aware.half_light_radius, r / np.sqrt(q), rtol=0.05)
    assert np.all(plain.sersic_n < n - 0.3) and np.all(plain.sersic_ellipticity < 1 - q - 0.02)
    # the moment quantities are those of the observed light whatever the fit
    np.testing.assert_array_equal(aware.ellipticity, plain.ellipticity)


@pytest.mark.slow
def test_psf_from_the_galaxy_simulator_removes_the_seeing_bias(tmp_path):
    # HSC-like galaxies (i band, Kolmogorov FWHM 0.58 arcsec = 3.45 pixels) with sky noise, bright enough for a
    # decent S/N (i ~ 17-23) and resolved (half-light radius >= 0.3 arcsec, about half the seeing FWHM).
    path = simulate_to_file("galaxies", 20, tmp_path / "gal.h5", seed=11, config={"abs_mag_i": -22.0})
    with FieldSet(path) as fs:
        batch, psf = fs[:], psf_from_meta(fs.meta)
    assert psf.shape[0] == 5 and psf.shape[1] % 2 == 1
    np.testing.assert_allclose(psf.sum(axis=(1, 2)), 1.0)
    p = batch.params
    keep = p["half_light_radius_arcsec"] >= 0.3
    assert keep.sum() >= 12
    stamps = batch.images[keep, 2:3]
    plain = morphology(stamps, pixel_size=0.168)
    aware = morphology(stamps, pixel_size=0.168, psf=psf[2])
    assert not aware.failed.any()
    n, e = p["sersic_n"][keep], 1 - p["axis_ratio"][keep]
    # measured here (14 galaxies): plain n -0.37, moment e -0.08; PSF-aware n +0.01, Sersic e 0.00, r_e +0.2%
    assert np.median(plain.sersic_n[:, 0] - n) < -0.2
    assert np.median(plain.ellipticity[:, 0] - e) < -0.04
    assert abs(np.median(aware.sersic_n[:, 0] - n)) < 0.1
    assert abs(np.median(aware.sersic_ellipticity[:, 0] - e)) < 0.02
    r_major = p["half_light_radius_arcsec"][keep] / np.sqrt(p["axis_ratio"][keep])
    assert abs(np.median(aware.half_light_radius[:, 0] / r_major - 1)) < 0.03


def test_psf_images_and_their_errors():
    kolmogorov = psf_image(3.45)
    assert kolmogorov.shape == (29, 29) and kolmogorov.sum() == pytest.approx(1.0)
    gauss = psf_image(4.0, "gaussian", size=41)  # sampled at pixel centres: half the peak 2 pixels away
    assert gauss[20, 22] / gauss[20, 20] == pytest.approx(0.5) and gauss[18, 20] == pytest.approx(gauss[20, 22])
    assert psf_image(3.0, "moffat").sum() == pytest.approx(1.0)
    delta = psf_image(0.0, size=5)
    assert delta[2, 2] == 1.0 and delta.sum() == 1.0
    for kwargs, message in [({"profile": "airy"}, "profile"), ({"size": 10}, "odd"), ({"fwhm_pixels": -1}, "fwhm")]:
        with pytest.raises(DataError, match=message):
            psf_image(**{"fwhm_pixels": 3.0, **kwargs})
    stamp = galaxy(1.0, 4.0, 0.7, 0.3)[None, None] + np.random.default_rng(4).normal(0, 0.5, (1, 2, SIZE, SIZE))
    for psf, message in [(np.ones((4, 4)), "odd"), (np.ones((3, 5, 5)), "C=2"), (np.zeros((5, 5)), "positive"),
                         (np.full((5, 5), np.nan), "finite")]:
        with pytest.raises(DataError, match=message):
            morphology(stamp, psf=psf)
    # a delta function (a band with seeing 0) is no PSF at all: the plain fit
    plain = morphology(stamp[:, :1]).sersic_n
    np.testing.assert_array_equal(morphology(stamp[:, :1], psf=psf_image(0.0)).sersic_n, plain)
    with pytest.raises(DataError, match="records no PSF"):
        psf_from_meta(FieldMeta(channels=["kappa"], pixel_size=1.0, pixel_unit="Mpc/h"))
