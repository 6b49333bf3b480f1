import numpy as np
import pytest
from scipy import integrate, special

from astrogen.data import FieldSet
from astrogen.errors import ConfigError
from astrogen.sims import get_simulator, simulate, simulate_to_file
from astrogen.sims.galactic_center import (
    CHANNELS,
    FRACTIONS,
    FWHM_TO_SIGMA,
    PARAMS,
    TEMPLATES,
    broken_power_law_quantile,
    flux_fractions,
    gaussian_psf_matrix,
    gnfw_los_integral,
    power_law_quantile,
    radial_cell_means,
    sample_pixels,
)

SMALL = {"size": 16, "supersample": 2}
NO_DIFFUSE = {"a_dm": (0, 0), "a_pi0": (0, 0), "a_ic": (0, 0), "a_bubbles": (0, 0)}
NO_PS = {"n_ps_disk": (0, 0), "n_ps_gc": (0, 0)}


def expected_map(batch):
    """The Poisson mean of each image: the sum of its five component channels."""
    return batch.images[:, 1:].astype(np.float64).sum(axis=1)


def test_gnfw_los_integral_matches_quadrature_and_the_inner_cusp():
    gamma, rs, r_sun = 1.2, 20.0, 8.5

    def direct(psi_deg):
        psi = np.radians(psi_deg)
        rho2 = lambda s: (lambda r: r ** (-2 * gamma) * (1 + r) ** (2 * gamma - 6))(  # noqa: E731
            np.sqrt(s**2 + r_sun**2 - 2 * s * r_sun * np.cos(psi)) / rs)
        return integrate.quad(rho2, 0, 100, points=[r_sun * np.cos(psi)], limit=500, epsabs=0)[0]

    for psi in (0.5, 5.0, 30.0, 80.0):
        assert gnfw_los_integral(psi, gamma, rs, r_sun) == pytest.approx(direct(psi), rel=1e-6)
    # Well inside r_s, rho^2 ~ (r / r_s)^(-2 gamma), so J = d^(1 - 2 gamma) r_s^(2 gamma) B(1/2, gamma - 1/2).
    psi = 0.01
    d = r_sun * np.sin(np.radians(psi))
    cusp = d ** (1 - 2 * gamma) * rs ** (2 * gamma) * np.sqrt(np.pi) * special.gamma(gamma - 0.5) / special.gamma(gamma)
    assert gnfw_los_integral(psi, gamma, rs, r_sun) == pytest.approx(cusp, rel=1e-3)


def test_radial_cell_means_match_direct_integrals():
    edges = np.array([-1.5, -0.5, 0.5, 1.5, 2.5])  # cells around, beside and away from the origin
    psi = np.geomspace(1e-4, 10, 600)
    means = radial_cell_means(edges, psi, np.exp(-(psi**2) / 2), 0.0)
    for i in range(4):
        for k in range(4):
            direct = integrate.dblquad(lambda y, x: np.exp(-(x * x + y * y) / 2), edges[k], edges[k + 1],
                                       edges[i], edges[i + 1])[0]
            assert means[i, k] == pytest.approx(direct, rel=1e-3)
    # A cusp psi^-1.4 over the square [-1.5, 1.5]^2 around it: 8 x int_0^(pi/4) (1.5 / cos t)^0.6 / 0.6 dt.
    cusp = radial_cell_means(edges[:4], psi, psi**-1.4, -1.4)
    exact = 8 * integrate.quad(lambda t: (1.5 / np.cos(t)) ** 0.6 / 0.6, 0, np.pi / 4)[0] / 9
    assert cusp.mean() == pytest.approx(exact, rel=1e-4)
    np.testing.assert_allclose(cusp, cusp.T)
    np.testing.assert_allclose(cusp, cusp[::-1, ::-1])


@pytest.mark.parametrize("index", [1.0, 2.0, 2.7])
def test_power_law_quantile_inverts_the_cdf(index):
    low, high = 2.0, 300.0
    u = np.linspace(0, 1, 11)
    s = power_law_quantile(u, low, high, index)
    norm = integrate.quad(lambda x: x**-index, low, high)[0]
    cdf = [integrate.quad(lambda x: x**-index, low, v)[0] / norm for v in s]
    np.testing.assert_allclose(cdf, u, atol=1e-9)


def test_broken_power_law_quantile_inverts_the_cdf():
    low, brk, high, below, above = 1.0, 10.0, 1000.0, 1.5, 2.5
    density = lambda x: (x / brk) ** -(below if x < brk else above)  # noqa: E731
    norm = integrate.quad(density, low, high, points=[brk])[0]
    u = np.linspace(0, 1, 21)
    s = broken_power_law_quantile(u, low, brk, high, below, above)
    cdf = [integrate.quad(density, low, v, points=[brk] if v > brk else None)[0] / norm for v in s]
    np.testing.assert_allclose(cdf, u, atol=1e-9)
    assert s[0] == pytest.approx(low) and s[-1] == pytest.approx(high)


def test_psf_matrix_conserves_flux_and_has_the_gaussian_width():
    pixel, fwhm = 0.5, 2.0
    k = gaussian_psf_matrix(101, pixel, fwhm)
    column = k[:, 50]
    assert column.sum() == pytest.approx(1.0, abs=1e-12)
    offsets = (np.arange(101) - 50) * pixel
    sigma = fwhm * FWHM_TO_SIGMA
    # Pixel integration adds the variance of a uniform pixel, p^2 / 12.
    assert np.sum(column * offsets**2) == pytest.approx(sigma**2 + pixel**2 / 12, rel=1e-3)
    assert k[0].sum() < 0.75  # zero padding: an edge pixel loses what falls outside
    np.testing.assert_array_equal(gaussian_psf_matrix(5, pixel, 0.0), np.eye(5))


def test_sample_pixels_follows_shared_and_per_image_weights():
    rng = np.random.default_rng(0)
    weights = np.array([[0.0, 1.0, 2.0, 7.0], [5.0, 0.0, 5.0, 0.0]])
    counts = np.array([40000, 30000])
    image, pixel = sample_pixels(rng, weights, counts)
    np.testing.assert_array_equal(np.bincount(image), counts)
    for i in range(2):
        freq = np.bincount(pixel[image == i], minlength=4) / counts[i]
        expected = weights[i] / weights[i].sum()
        np.testing.assert_allclose(freq, expected, atol=5 * np.sqrt(0.25 / counts[i]))
        assert np.all(freq[expected == 0] == 0)
    image, pixel = sample_pixels(rng, weights[:1], np.array([3, 0, 2]))
    np.testing.assert_array_equal(image, [0, 0, 0, 2, 2])
    assert np.all(pixel > 0)


def test_templates_hold_the_configured_counts_and_scale_with_exposure():
    sim = get_simulator("galactic_center", SMALL)
    for name in TEMPLATES:
        assert sim.templates[name].sum() == pytest.approx(getattr(sim.config, f"{name}_counts"), rel=1e-9)
        assert np.all(sim.templates[name] >= 0)
    dm = sim.templates["dm"]
    assert dm[7:9, 7:9].min() == pytest.approx(dm.max())  # the dm peak: the four central pixels, around the GC
    np.testing.assert_allclose(dm, dm[::-1], rtol=1e-9)  # symmetric in b
    np.testing.assert_allclose(dm, dm[:, ::-1], rtol=1e-9)  # and in l
    # Within 0.2 deg of the GC, J ~ psi^(1 - 2 gamma): the pixel means of the cusp are fixed numbers. The
    # pixel touching the GC (corner at psi = 0) over its neighbour in l, integrals over unit squares:
    power = 1 - 2 * 1.2
    corner = integrate.quad(lambda t: (1 / max(np.cos(t), np.sin(t))) ** (power + 2) / (power + 2), 0, np.pi / 2)[0]
    beside = integrate.dblquad(lambda y, x: (x * x + y * y) ** (power / 2), 1, 2, 0, 1)[0]
    cusp = get_simulator("galactic_center", {"size": 16, "region_deg": 0.4, "psf_fwhm_deg": 0.0}).templates["dm"]
    assert cusp[7, 8] / cusp[7, 9] == pytest.approx(corner / beside, rel=2e-3)
    pi0 = sim.templates["pi0"]
    assert pi0[7:9].sum() > 3 * pi0[:2].sum()  # gas: concentrated in the plane
    doubled = get_simulator("galactic_center", {**SMALL, "exposure": 2.0})
    np.testing.assert_allclose(doubled.templates["ic"], 2 * sim.templates["ic"])
    a = simulate("galactic_center", 4, seed=0, config={**SMALL, "return_components": True})
    b = simulate("galactic_center", 4, seed=0, config={**SMALL, "return_components": True, "exposure": 2.0})
    np.testing.assert_allclose(b.images[:, 1:], 2 * a.images[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(b.masks, 2 * a.masks, rtol=1e-6)


def test_counts_have_poisson_mean_and_variance():
    batch = simulate("galactic_center", 300, seed=1, config={**SMALL, "return_components": True})
    mu = expected_map(batch)
    counts = batch.images[:, 0].astype(np.float64)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    z = (counts - mu) / np.sqrt(mu)
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert z.var() == pytest.approx(1.0, abs=0.03)
    # Same expected map in every image (fixed amplitudes, no sources): per-pixel mean and variance.
    fixed = {**SMALL, **NO_PS, "a_dm": (0.5, 0.5), "a_pi0": (1, 1), "a_ic": (1, 1), "a_bubbles": (1, 1),
             "dm_counts": 500.0, "pi0_counts": 800.0, "ic_counts": 300.0, "bubbles_counts": 200.0}
    sim = get_simulator("galactic_center", fixed)
    mean = sum(sim.templates[k] * a for k, a in zip(TEMPLATES, (0.5, 1, 1, 1)))
    counts = simulate("galactic_center", 2000, seed=2, config=fixed).images[:, 0].astype(np.float64)
    pull = (counts.mean(axis=0) - mean) / np.sqrt(mean / len(counts))
    assert abs(pull.mean()) < 5 / np.sqrt(pull.size) and pull.std() == pytest.approx(1.0, abs=0.2)
    np.testing.assert_allclose(counts.var(axis=0, ddof=1) / mean, 1.0, atol=6 * np.sqrt(2 / len(counts)))


def test_amplitudes_are_recovered_by_linear_least_squares():
    sim = get_simulator("galactic_center", {**SMALL, "return_components": True})
    design = np.stack([sim.templates[k].ravel() for k in TEMPLATES], axis=1)
    assert np.linalg.cond(design / np.linalg.norm(design, axis=0)) < 100  # the templates are distinguishable
    batch = simulate("galactic_center", 20, seed=3, config=sim.config)
    mu = expected_map(batch)
    for i in range(len(batch)):
        columns = np.concatenate([design, batch.masks[i].reshape(-1, 1)], axis=1)
        coef = np.linalg.lstsq(columns, mu[i].ravel(), rcond=None)[0]
        truth = [batch.params[f"A_{k}"][i] for k in TEMPLATES]
        np.testing.assert_allclose(coef, [*truth, 1.0], atol=1e-4)


def test_point_source_counts_land_in_the_mask():
    cfg = {**SMALL, **NO_DIFFUSE, "psf_fwhm_deg": 0.0, "n_ps_gc": (0, 0)}
    batch = simulate("galactic_center", 64, seed=4, config=cfg)
    counts, mask = batch.images[:, 0], batch.masks[:, 0].astype(np.float64)
    assert np.all(mask[counts > 0] > 0)  # no PSF, no diffuse emission: photons only where sources sit
    assert mask[mask > 0].min() >= cfg.get("disk_flux_min", 1.0) * (1 - 1e-6)
    assert abs(counts.sum() - mask.sum()) < 5 * np.sqrt(mask.sum())
    # Every source lands in the image: the mask total is the summed flux, mean from the broken power law.
    c = get_simulator("galactic_center", cfg).config
    density = lambda x: (x / c.disk_flux_break) ** -(c.disk_index_below if x < c.disk_flux_break  # noqa: E731
                                                     else c.disk_index_above)
    moment = [integrate.quad(lambda x, p=p: x**p * density(x), c.disk_flux_min, c.disk_flux_max,
                             points=[c.disk_flux_break], limit=200)[0] for p in (0, 1, 2)]
    mean, var = moment[1] / moment[0], moment[2] / moment[0] - (moment[1] / moment[0]) ** 2
    n = batch.params["n_ps_disk"].sum()
    assert abs(mask.sum() / n - mean) < 5 * np.sqrt(var / n)
    # With a PSF the mask is the blurred deposit: the same total minus what spills over the edges.
    blurred = simulate("galactic_center", 64, seed=4, config={**cfg, "psf_fwhm_deg": 3.0}).masks
    ratio = blurred.sum(axis=(1, 2, 3)) / mask.sum(axis=(1, 2))
    assert np.all(ratio <= 1 + 1e-6) and ratio.mean() > 0.9


def test_seeds_reproduce_and_sets_are_prefixes():
    a = simulate("galactic_center", 130, seed=5, config=SMALL)
    b = simulate("galactic_center", 3, seed=5, config=SMALL)
    np.testing.assert_array_equal(a.images[:3], b.images)
    np.testing.assert_array_equal(a.masks[:3], b.masks)
    for name in PARAMS:
        np.testing.assert_array_equal(a.params[name][:3], b.params[name])
    assert not np.array_equal(simulate("galactic_center", 3, seed=6, config=SMALL).images, b.images)
    assert not np.array_equal(a.images[:3], a.images[128:131])  # blocks draw different skies


def test_zero_amplitudes_leave_only_the_remaining_components():
    cfg = {**SMALL, **NO_PS, "a_dm": (0, 0), "a_bubbles": (0, 0), "return_components": True}
    batch = simulate("galactic_center", 50, seed=7, config=cfg)
    channel = {name: batch.images[:, i] for i, name in enumerate(CHANNELS)}
    for name in ("dm", "bubbles", "ps"):
        assert np.all(channel[name] == 0)
    assert np.all(batch.masks == 0) and np.all(batch.params["A_dm"] == 0)
    assert np.all(channel["pi0"] > 0) and np.all(channel["ic"] > 0)
    sim = get_simulator("galactic_center", cfg)
    remaining = (batch.params["A_pi0"][:, None, None] * sim.templates["pi0"]
                 + batch.params["A_ic"][:, None, None] * sim.templates["ic"])
    np.testing.assert_allclose(expected_map(batch), remaining, rtol=1e-5)
    nothing = simulate("galactic_center", 5, seed=7, config={**SMALL, **NO_PS, **NO_DIFFUSE})
    assert np.all(nothing.images == 0) and np.all(nothing.masks == 0)


def orientation_deg(maps, pixel_deg):
    """Orientation (deg, mod 180, counter-clockwise from the image x axis) of the second moments of maps."""
    size = maps.shape[-1]
    x = (np.arange(size) + 0.5 - size / 2) * pixel_deg
    xx, yy = np.meshgrid(x, -x)
    total = maps.sum(axis=(1, 2))
    ixx, iyy, ixy = ((maps * w).sum(axis=(1, 2)) / total for w in (xx * xx, yy * yy, xx * yy))
    return np.degrees(0.5 * np.arctan2(2 * ixy, ixx - iyy))


@pytest.mark.slow
def test_rotation_turns_the_sky_and_the_mask_together():
    # Nearly equal source fluxes, so that the mask's second moments trace the source positions.
    cfg = {"size": 32, "supersample": 2, "rotate": True, "return_components": True, "n_ps_gc": (0, 0),
           "disk_flux_min": 1.0, "disk_flux_break": 1.5, "disk_flux_max": 2.0}
    batch = simulate("galactic_center", 24, seed=8, config=cfg)
    angle = batch.params["angle"]
    assert np.all((angle >= 0) & (angle < 360)) and np.ptp(angle) > 90
    pixel = 40.0 / 32

    def misfit(maps):
        return np.abs((orientation_deg(maps, pixel) - angle + 90) % 180 - 90)

    assert misfit(batch.masks[:, 0]).max() < 6  # disk sources lie along the rotated plane
    assert misfit(batch.images[:, CHANNELS.index("pi0")]).max() < 3  # and so does the gas
    # The dm template is almost round about the GC: rotation leaves its central part unchanged.
    dm = batch.images[:, CHANNELS.index("dm")] / batch.params["A_dm"][:, None, None]
    sim = get_simulator("galactic_center", cfg)
    np.testing.assert_allclose(dm[:, 8:24, 8:24], np.broadcast_to(sim.templates["dm"][8:24, 8:24], (24, 16, 16)),
                               rtol=0.05)
    unrotated = simulate("galactic_center", 24, seed=8, config={**cfg, "rotate": False})
    assert np.all(unrotated.params["angle"] == 0)
    np.testing.assert_array_equal(unrotated.params["A_pi0"], batch.params["A_pi0"])


@pytest.mark.parametrize("rotate", [False, True])
def test_returning_components_does_not_change_the_draws(rotate):
    cfg = {**SMALL, "rotate": rotate}
    plain = simulate("galactic_center", 8, seed=9, config=cfg)
    full = simulate("galactic_center", 8, seed=9, config={**cfg, "return_components": True})
    np.testing.assert_array_equal(plain.masks, full.masks)
    np.testing.assert_array_equal(plain.params["angle"], full.params["angle"])
    np.testing.assert_array_equal(full.images[:, CHANNELS.index("ps")], full.masks[:, 0])
    np.testing.assert_array_equal(plain.images[:, 0], full.images[:, 0])
    for name in FRACTIONS:
        np.testing.assert_array_equal(plain.params[name], full.params[name])


def test_spec_file_and_config_errors(tmp_path):
    path = simulate_to_file("galactic_center", 3, tmp_path / "gc.h5", seed=0, config={**SMALL,
                                                                                      "return_components": True})
    with FieldSet(path) as fs:
        assert fs.meta.channels == list(CHANNELS) and fs.meta.units == "counts"
        assert fs.meta.pixel_size == pytest.approx(40 / 16) and fs.meta.box_size == [40.0, 40.0]
        assert fs.meta.pixel_unit == "deg" and not fs.meta.periodic
        assert fs.sample_shape == (6, 16, 16)
        batch = fs[0:3]
        assert set(batch.params) == set(PARAMS) and batch.masks.shape == (3, 1, 16, 16)
    assert get_simulator("galactic_center").spec().sample_shape == (1, 64, 64)
    assert get_simulator("galactic_center", {"size": 256, "supersample": 1}).block_size == 8  # bounded memory
    for bad in ({"a_dm": (1, 0)}, {"n_ps_gc": (-1, 5)}, {"disk_flux_break": 5000.0}, {"gc_flux_min": 500.0},
                {"size": 4}, {"psf_fwhm": 1.0}):
        with pytest.raises(ConfigError):
            get_simulator("galactic_center", bad)


@pytest.mark.parametrize("rotate", [False, True])
def test_flux_fractions_sum_to_one_and_match_the_expected_counts(rotate):
    # A wide PSF (3 deg) loses point-source flux over the edges: the fractions count only what stays inside.
    cfg = {**SMALL, "rotate": rotate, "return_components": True, "psf_fwhm_deg": 3.0}
    batch = simulate("galactic_center", 40, seed=10, config=cfg)
    fractions = np.stack([batch.params[name] for name in FRACTIONS], 1)
    np.testing.assert_allclose(fractions.sum(1), 1.0, rtol=1e-12)
    assert np.all(fractions > 0)
    # Independently: the channel sums are the expected counts of dm, pi0, ic, bubbles and all point sources.
    counts = batch.images[:, 1:].astype(np.float64).sum(axis=(2, 3))
    total = counts.sum(1)
    for k, name in enumerate(TEMPLATES):
        np.testing.assert_allclose(batch.params[f"frac_{name}"], counts[:, k] / total, rtol=1e-5)
    np.testing.assert_allclose(batch.params["frac_ps_disk"] + batch.params["frac_ps_gc"], counts[:, 4] / total,
                               rtol=1e-5)
    if not rotate:  # unrotated, each template holds A_k <k>_counts expected counts
        c = get_simulator("galactic_center", cfg).config
        np.testing.assert_allclose(batch.params["frac_dm"], batch.params["A_dm"] * c.dm_counts / total, rtol=1e-5)
    # The split between the populations: with one population switched off, the other has all the point-source flux.
    for on, off in (("disk", "gc"), ("gc", "disk")):
        single = simulate("galactic_center", 40, seed=10, config={**cfg, f"n_ps_{off}": (0, 0)})
        counts = single.images[:, 1:].astype(np.float64).sum(axis=(2, 3))
        assert np.all(single.params[f"frac_ps_{off}"] == 0)
        np.testing.assert_allclose(single.params[f"frac_ps_{on}"], counts[:, 4] / counts.sum(1), rtol=1e-5)


def test_flux_fractions_of_an_empty_sky_are_zero():
    fractions = flux_fractions(np.array([[0.0] * 6, [1.0, 1, 2, 0, 0, 4]]))
    assert set(fractions) == set(FRACTIONS)
    np.testing.assert_array_equal([fractions[name][0] for name in FRACTIONS], 0)
    np.testing.assert_allclose([fractions[name][1] for name in FRACTIONS], [0.125, 0.125, 0.25, 0, 0, 0.5])


def test_ic_profile_switch_changes_only_the_ic_counts_as_documented():
    cfg = {**SMALL, "psf_fwhm_deg": 0.0}
    lorentzian = get_simulator("galactic_center", cfg)
    exponential = get_simulator("galactic_center", {**cfg, "ic_profile": "exponential"})
    for name in ("dm", "pi0", "bubbles"):
        np.testing.assert_array_equal(exponential.templates[name], lorentzian.templates[name])
    lor, exp = lorentzian.templates["ic"], exponential.templates["ic"]
    assert exp.sum() == pytest.approx(lorentzian.config.ic_counts, rel=1e-9) == lor.sum()  # same total counts
    # exp(-|l| / 30 deg) is separable in l: one pixel (2.5 deg) nearer the GC at l > 0 (columns 0..7) has exactly
    # exp(2.5 / 30) times the counts (midpoint sub-samples shift by one pixel; the cos b weight depends on b only).
    np.testing.assert_allclose(exp[:, 1:8] / exp[:, :7], np.exp(2.5 / 30), rtol=1e-9)
    assert not np.allclose(lor[:, 1:8] / lor[:, :7], np.exp(2.5 / 30), rtol=1e-3)
    # Peaked at the GC where the Lorentzian is flat: at the defaults (64 x 64, PSF 1 deg) the central 10 x 10 deg
    # hold 16.1% of the IC counts instead of 13.3%, and the brightest pixel 1.47 times as many.
    profiles = ("lorentzian", "exponential")
    defaults = {p: get_simulator("galactic_center", {"ic_profile": p}).templates["ic"] for p in profiles}
    share = [defaults[p][24:40, 24:40].sum() / defaults[p].sum() for p in profiles]
    np.testing.assert_allclose(share, [0.133, 0.161], atol=5e-4)
    assert defaults["exponential"].max() / defaults["lorentzian"].max() == pytest.approx(1.47, abs=0.005)
    # The expected counts of a sky: only the ic component differs, by A_ic (T_exp - T_lorentzian).
    fixed = {**cfg, **NO_PS, "return_components": True}
    a = simulate("galactic_center", 4, seed=11, config=fixed)
    b = simulate("galactic_center", 4, seed=11, config={**fixed, "ic_profile": "exponential"})
    np.testing.assert_array_equal(a.params["A_ic"], b.params["A_ic"])
    diff = expected_map(b) - expected_map(a)
    np.testing.assert_allclose(diff, b.params["A_ic"][:, None, None] * (exp - lor), atol=1e-6 * expected_map(a).max())
    np.testing.assert_allclose(b.params["frac_ic"], a.params["frac_ic"], rtol=1e-5)  # fractions unchanged
