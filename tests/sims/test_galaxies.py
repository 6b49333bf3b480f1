import galsim
import numpy as np
import pytest
from scipy import special, stats

from astrogen.data import FieldSet
from astrogen.errors import ConfigError, DataError
from astrogen.sims import get_simulator, simulate, simulate_to_file
from astrogen.sims.galaxies import (
    BANDS,
    PARAM_UNITS,
    GalaxyRenderer,
    mag_to_flux,
    redshift_cdf,
    redshift_pdf,
    sky_sigma,
)

SCALE = 0.168
SEEING = [0.77, 0.76, 0.58, 0.68, 0.68]


@pytest.fixture(scope="module")
def simulator():
    return get_simulator("galaxies", {"noise": False})


@pytest.fixture(scope="module")
def many_params(simulator):
    return simulator.draw_params(np.random.default_rng(3), 20000)


def half_light_radius(images, axis_ratio, position_angle_deg, total_flux, sub=5):
    """Radius (arcsec) of the elliptical aperture (circularised radius sqrt(q x'^2 + y'^2 / q)) holding half
    of ``total_flux``, from the pixels of each image [N, H, W] split into ``sub`` x ``sub`` equal parts (so the
    growth curve is smooth); the centre is GalSim's true_center."""
    size = images.shape[-1]
    y, x = ((np.mgrid[0:size * sub, 0:size * sub] + 0.5) / sub - size / 2) * SCALE
    out = []
    for image, q, pa, flux in zip(images, axis_ratio, np.radians(position_angle_deg), total_flux):
        xr, yr = x * np.cos(pa) + y * np.sin(pa), -x * np.sin(pa) + y * np.cos(pa)
        radius = np.sqrt(q * xr**2 + yr**2 / q).ravel()
        order = np.argsort(radius)
        growth = np.cumsum(np.repeat(np.repeat(image, sub, 0), sub, 1).ravel()[order]) / sub**2
        out.append(np.interp(0.5 * flux, growth, radius[order]))
    return np.array(out)


def test_renderer_matches_galsim_draw_image():
    renderer = GalaxyRenderer(SEEING)
    cases = [(1.0, 0.5, 0.5, 30.0), (4.0, 1.2, 0.8, 100.0), (0.7, 0.2, 1.0, 0.0), (2.37, 0.9, 0.3, 170.0)]
    n, r, q, pa = map(np.array, zip(*cases))
    images = renderer.render(np.full((len(cases), 5), 100.0), n, r, q, pa)
    for k, (ni, ri, qi, pai) in enumerate(cases):
        galaxy = galsim.Sersic(ni, half_light_radius=ri, flux=100.0).shear(q=qi, beta=pai * galsim.degrees)
        for b, fwhm in enumerate(SEEING):
            ref = galsim.Convolve(galaxy, galsim.Kolmogorov(fwhm=fwhm)).drawImage(nx=64, ny=64, scale=SCALE).array
            np.testing.assert_allclose(images[k, b], ref, atol=3e-4 * ref.max())


def brute_force_pixel_integral(n, r_e, q, pa_deg, size=64, sub=16, centre_sub=512):
    """Unit-flux Sersic image without PSF, each pixel the mean of its sub x sub sub-pixel centres (centre_sub x
    centre_sub in the 4 pixels around the cusp), from the closed-form profile
    I(r) = b^2n / (2 pi n Gamma(2n) r_e^2) exp(-b (r / r_e)^(1/n)), P(2n, b) = 1/2, at elliptical radius
    r^2 = q x'^2 + y'^2 / q (x' along the major axis); the centre is the corner shared by the 4 central pixels."""
    b = special.gammaincinv(2 * n, 0.5)
    cos, sin = np.cos(np.radians(pa_deg)), np.sin(np.radians(pa_deg))

    def mean_brightness(x, y):  # x, y in pixels from the centre
        xr, yr = (x * cos + y * sin) * SCALE, (y * cos - x * sin) * SCALE
        r = np.sqrt(q * xr**2 + yr**2 / q)
        return (b ** (2 * n) / (2 * np.pi * n * special.gamma(2 * n) * r_e**2) * np.exp(-b * (r / r_e) ** (1 / n))
                * SCALE**2).mean(axis=(-2, -1))

    out = np.empty((size, size))
    offsets = (np.arange(sub) + 0.5) / sub
    columns = np.arange(size)[:, None, None] + offsets[None, None, :] - size / 2
    for i in range(size):  # one row of pixels at a time: [size, sub, sub]
        out[i] = mean_brightness(columns, (i + offsets - size / 2)[None, :, None])
    fine = (np.arange(centre_sub) + 0.5) / centre_sub
    for i in (size // 2 - 1, size // 2):
        for j in (size // 2 - 1, size // 2):
            out[i, j] = mean_brightness(j + fine[None, :] - size / 2, i + fine[:, None] - size / 2)
    return out


def test_psf_off_is_the_exact_pixel_integral():
    # Without a PSF a cuspy profile is far from band-limited (the plain FFT rendering was off by 0.8% of the peak
    # for n = 1 and up to 20% for compact n = 4): bands with FWHM 0 are integrated over each pixel in real space.
    cases = [(1.0, 0.1, 0.8, 20.0), (1.0, 1.5, 0.5, 100.0), (4.0, 0.1, 1.0, 0.0), (4.0, 0.25, 0.7, 30.0),
             (4.0, 1.5, 0.8, 100.0)]
    n, r, q, pa = map(np.array, zip(*cases))
    renderer = GalaxyRenderer([0.0, 0.0])
    images = renderer.render(np.column_stack([np.full(5, 100.0), np.full(5, 3.0)]), n, r, q, pa)
    np.testing.assert_allclose(images[:, 1], images[:, 0] * 0.03, rtol=1e-6)
    for k, case in enumerate(cases):
        ref = 100.0 * brute_force_pixel_integral(*case)
        # reference accurate to ~5e-5 of the peak (halving sub and centre_sub changes it by that)
        np.testing.assert_allclose(images[k, 0], ref, atol=1e-4 * ref.max(), rtol=0)
    # The conventions (centre, position angle, area-preserving shear) are GalSim's: a smooth profile drawn by
    # GalSim with tight FFT settings (its defaults are good to ~4e-3 of the peak without a PSF).
    tight = galsim.GSParams(folding_threshold=1e-4, maxk_threshold=1e-5)
    ref = (galsim.Sersic(1.0, half_light_radius=1.5, flux=100.0).shear(q=0.5, beta=100.0 * galsim.degrees)
           .withGSParams(tight).drawImage(nx=64, ny=64, scale=SCALE).array)
    np.testing.assert_allclose(images[1, 0], ref, atol=2e-4 * ref.max(), rtol=0)


def test_small_seeing_folds_nyquist_zones():
    # A PSF narrower than ~3 pixels leaves the PSF x pixel transform non-zero beyond the Nyquist frequency; the
    # renderer sums enough aliased zones (the unfolded FFT was off by 11% of the peak at 0.1 arcsec, 2.5% at 0.2).
    renderer = GalaxyRenderer([0.1, 0.3, 0.0])
    assert renderer.fold_zones == 2 and GalaxyRenderer(SEEING).fold_zones == 0
    cases = [(4.0, 0.08, 1.0, 0.0), (1.0, 0.1, 0.6, 40.0), (2.37, 0.5, 0.4, 120.0)]
    n, r, q, pa = map(np.array, zip(*cases))
    images = renderer.render(np.full((3, 3), 100.0), n, r, q, pa)
    for k, (ni, ri, qi, pai) in enumerate(cases):
        galaxy = galsim.Sersic(ni, half_light_radius=ri, flux=100.0).shear(q=qi, beta=pai * galsim.degrees)
        for b, fwhm in enumerate([0.1, 0.3]):
            ref = galsim.Convolve(galaxy, galsim.Kolmogorov(fwhm=fwhm)).drawImage(nx=64, ny=64, scale=SCALE).array
            np.testing.assert_allclose(images[k, b], ref, atol=3e-4 * ref.max(), rtol=0)
    np.testing.assert_allclose(images[:, 2], 100.0 * renderer.pixel_integrated(n, r, q, pa), rtol=1e-6)
    with pytest.raises(ConfigError, match="too small"):
        GalaxyRenderer([0.6, 0.02])
    with pytest.raises(ConfigError, match="psf_fwhm_arcsec"):
        GalaxyRenderer([0.6, -0.1])


def test_noiseless_half_light_radius_matches_input():
    sim = get_simulator("galaxies", {"noise": False, "seeing_fwhm_arcsec": [0.0] * 5})
    batch = simulate("galaxies", 128, seed=4, config=sim.config)
    p = batch.params
    # Galaxies resolved along the minor axis (the pixel-centre growth curve is biased below ~2 pixels) whose
    # half light lies well inside the 64-pixel cutout.
    minor = p["half_light_radius_arcsec"] * np.sqrt(p["axis_ratio"])
    keep = (minor > 2 * SCALE) & (p["half_light_radius_arcsec"] < 1.5)
    assert keep.sum() >= 20
    measured = half_light_radius(batch.images[keep, 2], p["axis_ratio"][keep], p["position_angle"][keep],
                                 mag_to_flux(p["mag_i"][keep]))
    np.testing.assert_allclose(measured, p["half_light_radius_arcsec"][keep], rtol=0.1)
    # And round hand-picked profiles, from exponential to de Vaucouleurs.
    n, r = np.meshgrid([0.5, 1.0, 2.5, 4.0], [0.4, 0.8, 1.5])
    images = GalaxyRenderer([0.0]).render(np.ones((n.size, 1)), n.ravel(), r.ravel(), np.ones(n.size),
                                          np.zeros(n.size))
    measured = half_light_radius(images[:, 0], np.ones(n.size), np.zeros(n.size), np.ones(n.size))
    np.testing.assert_allclose(measured, r.ravel(), rtol=0.1)


def test_rendered_flux_matches_magnitude_within_noise():
    # Faint compact galaxies: the flux outside the cutout (< 0.5%) is far below the noise of the image sum.
    config = {"abs_mag_i": -18.5, "re_max_arcsec": 0.5, "sersic_n_early": 2.0}
    batch = simulate("galaxies", 128, seed=5, config=config)
    sigma = get_simulator("galaxies", config).sky_sigma
    flux = mag_to_flux(np.stack([batch.params[f"mag_{b}"] for b in BANDS], axis=1))
    chi = (batch.images.sum(axis=(2, 3)) - flux) / (sigma * 64)  # sum of 64^2 pixels has sigma 64 sigma_pix
    assert abs(chi.mean()) < 4 / np.sqrt(chi.size)
    assert 0.85 < chi.std() < 1.15
    # The noise itself is the sky model: the border pixels are pure sky.
    np.testing.assert_allclose(batch.images[:, :, :4].std(axis=(0, 2, 3)), sigma, rtol=0.05)
    noiseless = simulate("galaxies", 128, seed=5, config={**config, "noise": False})
    ratio = noiseless.images.sum(axis=(2, 3)) / flux
    assert ratio.max() < 1.0005 and np.median(ratio) > 0.995


def test_source_shot_noise_with_gain():
    config = {"gain": 0.5, "abs_mag_i": -23.0}  # bright galaxies: shot noise dominates near their centres
    noisy = simulate("galaxies", 64, seed=6, config=config)
    clean = simulate("galaxies", 64, seed=6, config={**config, "noise": False})  # same galaxies, no noise
    sigma = get_simulator("galaxies", config).sky_sigma[None, :, None, None]
    residual = (noisy.images - clean.images) / np.sqrt(sigma**2 + np.maximum(clean.images, 0) / 0.5)
    bright = clean.images > 10 * sigma
    assert bright.sum() > 1000
    assert residual[bright].std() == pytest.approx(1.0, abs=0.05)
    assert residual[~bright].std() == pytest.approx(1.0, abs=0.02)


def test_renderer_rejects_bad_input():
    renderer = GalaxyRenderer([0.6, 0.7])
    good = dict(flux=np.ones((2, 2)), sersic_n=[1.0, 4.0], hlr_arcsec=[0.5, 0.5], axis_ratio=[0.5, 1.0],
                position_angle_deg=[0.0, 10.0])
    assert renderer.render(**good).shape == (2, 2, 64, 64)
    for change, message in [({"flux": np.ones((2, 3))}, "flux must be"), ({"sersic_n": [1.0, 7.0]}, "sersic_n"),
                            ({"axis_ratio": [0.0, 1.0]}, "axis_ratio"), ({"hlr_arcsec": [0.5]}, "hlr_arcsec"),
                            ({"flux": np.full((2, 2), np.nan)}, "NaN")]:
        with pytest.raises(DataError, match=message):
            renderer.render(**{**good, **change})


def test_sky_sigma_gives_the_point_source_depth():
    # For a Gaussian PSF the optimal (PSF-weighted) S/N of a point source is F sqrt(sum p^2) / sigma.
    fwhm, depth = 0.7, 26.0
    psf = galsim.Gaussian(fwhm=fwhm).drawImage(nx=64, ny=64, scale=SCALE).array
    snr = mag_to_flux(depth) * np.sqrt(np.sum(psf**2)) / sky_sigma(depth, fwhm, SCALE)
    assert snr == pytest.approx(5.0, rel=0.02)
    # Without a PSF a point source at a pixel centre puts all its flux in one pixel: NEA = 1 pixel, sigma finite.
    assert sky_sigma(depth, 0.0, SCALE) == pytest.approx(mag_to_flux(depth) / 5.0)
    sim = get_simulator("galaxies", {"seeing_fwhm_arcsec": [0.0] * 5})
    assert np.all(np.isfinite(simulate("galaxies", 2, seed=0, config=sim.config).images))


def test_redshift_distribution_matches_its_definition(simulator, many_params):
    c = simulator.config
    z = many_params["redshift"]
    grid, cdf = redshift_cdf(c.z0, c.z_alpha, c.z_beta, c.z_tail, c.z_max)
    assert stats.kstest(z, lambda x: np.interp(x, grid, cdf)).pvalue > 0.01
    # The CDF against the closed form (incomplete gamma function for the Smail part).
    a, b = (c.z_alpha + 1) / c.z_beta, c.z_beta

    def closed_form(x):
        smail = special.gammainc(a, (x / c.z0) ** b) / special.gammainc(a, (c.z_max / c.z0) ** b)
        return (1 - c.z_tail) * smail + c.z_tail * x / c.z_max

    np.testing.assert_allclose(np.interp([0.5, 1.0, 1.5, 3.0], grid, cdf), closed_form(np.array([0.5, 1, 1.5, 3])),
                               atol=1e-5)
    assert closed_form(1.5) == pytest.approx(0.93, abs=0.002)  # GalaxiesML: 93% below z = 1.5
    assert np.mean(z < 1.5) == pytest.approx(0.93, abs=0.006)
    assert z.min() >= 0 and z.max() <= 4
    assert np.all(redshift_pdf([-0.1, 4.1], c.z0, c.z_alpha, c.z_beta, c.z_tail, c.z_max) == 0)


def test_sizes_shrink_magnitudes_dim_and_colours_redden_with_redshift(many_params):
    p = many_params
    bins = np.digitize(p["redshift"], [0.3, 0.6, 1.0, 1.5, 2.5])
    median = lambda v: np.array([np.median(v[bins == k]) for k in range(6)])  # noqa: E731
    assert np.all(np.diff(median(p["half_light_radius_arcsec"])) < 0)
    assert np.all(np.diff(median(p["mag_i"])) > 0)
    assert np.all(np.diff(median(p["mag_g"] - p["mag_i"])) > 0)
    assert np.all(np.diff(median(p["mag_i"] - p["mag_y"])) > 0)
    assert np.percentile(p["mag_i"], 5) > 18 and np.percentile(p["mag_i"], 95) < 25  # HSC-like depth
    assert np.all((p["sersic_n"] >= 0.5) & (p["sersic_n"] <= 6))
    assert np.all((p["axis_ratio"] > 0.19) & (p["axis_ratio"] <= 1))


def test_same_seed_same_bits_whatever_the_workers(tmp_path):
    one = simulate("galaxies", 70, seed=9, config={"workers": 1})
    two = simulate("galaxies", 70, seed=9, config={"workers": 2})
    np.testing.assert_array_equal(one.images, two.images)
    prefix = simulate("galaxies", 3, seed=9)
    np.testing.assert_array_equal(prefix.images, one.images[:3])
    assert not np.array_equal(simulate("galaxies", 3, seed=10).images, prefix.images)


def test_file_layout_and_config_errors(tmp_path):
    path = simulate_to_file("galaxies", 5, tmp_path / "gal.h5", seed=1)
    with FieldSet(path) as fs:
        assert fs.shape == (5, 5, 64, 64) and fs.channels == list(BANDS)
        assert fs.meta.pixel_size == SCALE and fs.meta.pixel_unit == "arcsec"
        assert sorted(fs.param_names) == sorted(PARAM_UNITS)
        assert fs.meta.simulator == "galaxies"
    with pytest.raises(ConfigError, match="seeing_fwhm_arcsec"):
        get_simulator("galaxies", {"seeing_fwhm_arcsec": [0.7, 0.7]})
    with pytest.raises(ConfigError, match="fft_size"):
        get_simulator("galaxies", {"fft_size": 32})
