import healpy as hp
import numpy as np
import pytest
from scipy import optimize
from scipy.spatial.transform import Rotation

from astrogen.errors import ConfigError
from astrogen.sims import get_simulator, simulate
from astrogen.sims.microwave_sky import (
    C_LIGHT,
    H_PLANCK,
    K_BOLTZMANN,
    T_CMB,
    dbdt_jy_sr_per_uk,
    tsz_spectral_function,
)
from astrogen.sims.projection import PatchGrid, patches_to_healpix, rotations_from_params

SMALL = {"nside": 128, "clusters": 20000, "cib_sources": 50000, "radio_sources": 20000}


def test_tsz_spectral_function():
    null = optimize.brentq(tsz_spectral_function, 150.0, 300.0)
    x0 = optimize.brentq(lambda x: x / np.tanh(x / 2) - 4, 3.0, 4.5)  # the null in x, 3.830
    assert null == pytest.approx(x0 * K_BOLTZMANN * T_CMB / H_PLANCK / 1e9) and 217.0 < null < 218.0
    assert tsz_spectral_function(148.0) == pytest.approx(-0.978, abs=2e-3)
    assert tsz_spectral_function(0.01) == pytest.approx(-2.0, abs=1e-6)  # Rayleigh-Jeans: dT / T = -2 y


def test_dbdt_rayleigh_jeans_limit():
    nu = 1e9
    assert dbdt_jy_sr_per_uk(1.0) == pytest.approx(2 * K_BOLTZMANN * nu**2 / C_LIGHT**2 / 1e-26 * 1e-6, rel=1e-3)


@pytest.fixture(scope="module")
def sky():
    sim = get_simulator("microwave_sky", SMALL)
    return sim, sim.full_sky(np.random.default_rng(0))


def test_kappa_power_spectrum_matches_input(sky):
    sim, s = sky
    lmax = 2 * sim.config.nside  # map2alm is accurate to about 2 nside
    measured = hp.anafast(s.maps[0], lmax=lmax, iter=3)[2:]
    ell = np.arange(2, lmax + 1)
    expected = sim.kappa_cl()[2:lmax + 1]
    chi2 = np.sum((measured / expected - 1) ** 2 * (2 * ell + 1) / 2)  # var(C_l) = 2 C_l^2 / (2 l + 1)
    assert abs(chi2 - len(ell)) < 5 * np.sqrt(2 * len(ell))
    assert np.sum(measured * (2 * ell + 1)) / np.sum(expected * (2 * ell + 1)) == pytest.approx(1, abs=0.02)


def test_cross_correlations_with_kappa_have_the_designed_sign_and_strength(sky):
    sim, s = sky
    to_uk = 1 / dbdt_jy_sr_per_uk(sim.config.frequency_ghz)
    maps = np.stack([s.maps[0], s.maps[1], s.maps[2], s.maps[3] + s.source_map(3) * to_uk, s.source_map(4) * to_uk])
    cl = hp.anafast(maps, pol=False, lmax=100)[:, 2:]  # autos 0..4, then diagonals: 0x1 is row 5, ...
    auto, cross = cl[:5].sum(1), cl[[5, 9, 12, 14]].sum(1)
    r = cross / np.sqrt(auto[0] * auto[1:])
    # CIB: lognormal of a tracer with r = 0.8: corr(g, exp(s g)) = s / sqrt(exp(s^2) - 1) = 0.94 -> ~0.75.
    s_ln = sim.config.cib_log_sigma
    assert r[2] == pytest.approx(0.8 * s_ln / np.sqrt(np.expm1(s_ln**2)), abs=0.08)
    assert -0.3 < r[0] < -0.05  # tSZ: a decrement at 148 GHz where clusters trace high kappa (shot-noise diluted)
    assert abs(r[1]) < 0.06 and abs(r[3]) < 0.06  # kSZ (random velocity signs) and radio (unbiased): none


def test_frequency_scaling():
    base = get_simulator("microwave_sky", SMALL).full_sky(np.random.default_rng(1))
    other = get_simulator("microwave_sky", {**SMALL, "frequency_ghz": 90.0}).full_sky(np.random.default_rng(1))
    ratio = tsz_spectral_function(90.0) / tsz_spectral_function(148.0)
    np.testing.assert_allclose(other.maps[1], base.maps[1] * ratio, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(other.maps[0], base.maps[0])
    for channel, (mean, sigma) in {3: (3.3, 0.3), 4: (-0.7, 0.3)}.items():
        index = np.log(other.sources[channel][1] / base.sources[channel][1]) / np.log(90.0 / 148.0)
        assert index.mean() == pytest.approx(mean, abs=0.01) and index.std() == pytest.approx(sigma, rel=0.03)


def test_simulator_patches_params_and_back_to_sphere():
    config = {**SMALL, "patch_npix": 32, "n_rotations": 3, "patches_per_rotation": 4}
    batch = simulate("microwave_sky", 12, seed=3, config=config)
    assert batch.images.shape == (12, 5, 32, 32) and batch.images.dtype == np.float32
    assert np.all(np.abs(batch.params["lat0"]) <= 9.5)
    rot = rotations_from_params(batch.params)
    np.testing.assert_allclose(rot[:4].magnitude(), 0.0)  # the first frame is the unrotated sky
    assert np.all(rot[4:].magnitude() > 0)
    assert np.all(batch.images[:, 4] >= 0) and np.all(batch.images[:, 3] > 0)  # sources and CIB are positive
    again = simulate("microwave_sky", 5, seed=3, config=config)
    np.testing.assert_array_equal(again.images, batch.images[:5])
    # Patches placed back at their recorded frames land where they came from: the covered HEALPix pixels
    # agree with the simulated sky (block 0 of seed 3 draws the sky first from its generator).
    sim = get_simulator("microwave_sky", config)
    kappa = sim.full_sky(np.random.default_rng(np.random.SeedSequence(3, spawn_key=(0,)))).maps[0]
    grid = PatchGrid(1.0, 32)
    sphere = patches_to_healpix(batch.images[:, :1], 128, grid, batch.params["lon0"], batch.params["lat0"], rot)[0]
    covered = sphere != hp.UNSEEN
    assert 12 * 4 < covered.sum() < 12 * 16  # each 1-degree patch covers ~ (60 / 27.5)^2 pixels of nside 128
    # Pixels on the patch edges hold partial averages: agreement is high but not perfect. A control that
    # forgets the rotations puts patches elsewhere and finds no agreement.
    assert np.corrcoef(sphere[covered], kappa[covered])[0, 1] > 0.8
    wrong = patches_to_healpix(batch.images[4:, :1], 128, grid, batch.params["lon0"][4:], batch.params["lat0"][4:],
                               rot[:1] * Rotation.identity(8))[0]
    assert abs(np.corrcoef(wrong[wrong != hp.UNSEEN], kappa[wrong != hp.UNSEEN])[0, 1]) < 0.4
    assert sim.spec().meta.pixel_size == pytest.approx(60 / 32)


def test_config_errors():
    with pytest.raises(ConfigError, match="cluster_y_min"):
        get_simulator("microwave_sky", {"cluster_y_min": 1e-3, "cluster_y_max": 1e-4})
    with pytest.raises(ConfigError, match="unknown key"):
        get_simulator("microwave_sky", {"nsides": 64})


def test_single_rotation_and_no_clusters():
    config = {"nside": 32, "clusters": 0, "n_rotations": 1, "patches_per_rotation": 2, "patch_npix": 8}
    batch = simulate("microwave_sky", 2, seed=0, config=config)
    assert np.all(batch.images[:, 1] == 0) and np.all(batch.params["rotvec_x"] == 0)
