import numpy as np
import pytest
import torch
from scipy import integrate

from astrogen.errors import ConfigError
from astrogen.sims import get_simulator, simulate
from astrogen.sims.cosmology import Cosmology, tophat_window
from astrogen.sims.matter import ParticleMesh, _g_p, fastpm_drift, fastpm_kick, power_spectrum

FID = Cosmology()


def test_transfer_functions_limits_and_wiggles():
    k = np.logspace(-4, 1, 2000)
    wig, smooth = FID.transfer(k), FID.transfer(k, wiggles=False)
    assert abs(wig[0] - 1) < 1e-3 and abs(smooth[0] - 1) < 1e-3
    ratio = wig / smooth
    # The no-wiggle fit follows the full form to a few per cent; the BAO oscillate around it.
    assert np.all(np.abs(ratio[(k > 1e-3) & (k < 2)] - 1) < 0.06)
    band = (k > 0.05) & (k < 0.3)
    assert ratio[band].max() - ratio[band].min() > 0.03
    # BAO: consecutive maxima of the ratio are spaced by about 2 pi / s (s the sound horizon, Mpc/h).
    s = FID.sound_horizon() * FID.h
    peaks = k[1:-1][(ratio[1:-1] > ratio[:-2]) & (ratio[1:-1] > ratio[2:]) & (k[1:-1] > 0.05) & (k[1:-1] < 0.3)]
    assert np.allclose(np.diff(peaks), 2 * np.pi / s, rtol=0.15)
    assert 140 < FID.sound_horizon() < 160  # Mpc, for Omega_m h^2 ~ 0.143


@pytest.mark.parametrize("wiggles", [True, False])
def test_sigma_8_recomputed_from_the_spectrum(wiggles):
    integrand = lambda lnk: (np.exp(lnk) ** 3 * FID.power(np.exp(lnk), wiggles=wiggles)  # noqa: E731
                             * tophat_window(8.0 * np.exp(lnk)) ** 2 / (2 * np.pi**2))
    sigma8 = np.sqrt(integrate.quad(integrand, np.log(1e-5), np.log(1e2), limit=500)[0])
    assert sigma8 == pytest.approx(FID.sigma_8, rel=1e-4)


def test_growth_factors():
    a = np.array([0.01, 0.1, 0.5, 1.0])
    eds = Cosmology(omega_m=1.0, omega_b=0.05)
    np.testing.assert_allclose(eds.growth(a), a, rtol=1e-5)
    np.testing.assert_allclose(eds.growth(a, 2), -3 / 7 * a**2, rtol=1e-5)
    # LCDM: Heath (1977) integral D ~ E(a) int_0^a da / (a E)^3, an independent route.
    heath = lambda x: FID.efunc(x) * integrate.quad(lambda y: (y * FID.efunc(y)) ** -3, 0, x)[0]  # noqa: E731
    np.testing.assert_allclose(FID.growth(a), [heath(x) / heath(1.0) for x in a], rtol=1e-5)
    om = FID.omega_m_a(a)
    np.testing.assert_allclose(FID.growth_rate(a), om**0.55, rtol=0.01)
    np.testing.assert_allclose(FID.growth(a, 2) / FID.growth(a) ** 2, -3 / 7 * om ** (-1 / 143), rtol=0.01)


def test_fastpm_factors_are_exact_for_linear_growth():
    # Linear theory: x = D1 Psi, p = g_p Psi, F = 1.5 Omega_m D1 Psi. One KDK step of any length must land
    # on D1(a_f) Psi and g_p(a_f) Psi (Feng et al. 2016); check per unit Psi.
    a_i, a_f = 0.1, 0.9
    a_c = 0.5 * (a_i + a_f)
    force = lambda a: 1.5 * FID.omega_m * FID.growth(a)  # noqa: E731
    x, p = FID.growth(a_i), _g_p(FID, a_i)
    p += force(a_i) * fastpm_kick(FID, a_i, a_c, a_i)
    x += p * fastpm_drift(FID, a_i, a_f, a_c)
    p += force(a_f) * fastpm_kick(FID, a_c, a_f, a_f)
    assert x == pytest.approx(FID.growth(a_f), rel=1e-8) and p == pytest.approx(_g_p(FID, a_f), rel=1e-6)


def mode_average(mesh, values):
    """Average of per-mode ``values`` over the estimator's k bins (same weights as power_spectrum)."""
    kf = 2 * np.pi / mesh.box_size
    bins = torch.round(mesh.kmag.double() / kf).long()
    weight = torch.full_like(values, 2.0, dtype=torch.float64)
    weight[..., 0] = weight[..., -1] = 1.0
    keep = (bins >= 1) & (bins <= mesh.n // 2)
    b, w = bins[keep] - 1, weight[keep]
    return (torch.bincount(b, w * values[keep].double(), mesh.n // 2) / torch.bincount(b, w, mesh.n // 2)).numpy()


def test_initial_power_matches_linear_spectrum_within_cosmic_variance():
    n, box = 32, 500.0
    mesh = ParticleMesh(n, box)
    model = mode_average(mesh, mesh._tabulated(FID.power))
    chi2 = []
    for seed in range(3):
        noise = np.random.default_rng(seed).standard_normal((n,) * 3, dtype=np.float32)
        delta = torch.fft.irfftn(mesh.linear_field(noise, FID.power), s=(n,) * 3)
        k, power, modes = power_spectrum(delta, box)
        # |delta_k|^2 of a Gaussian field is exponential: var(P_bin) = P^2 / (independent modes = modes / 2).
        chi2.append(np.sum(((power.numpy() - model) / (model * np.sqrt(2 / modes.numpy()))) ** 2))
    dof = 3 * (n // 2)
    assert abs(sum(chi2) - dof) < 4 * np.sqrt(2 * dof)
    # The model itself: interpolated P at the modes equals the spectrum at the bin's mean k to < 2%.
    np.testing.assert_allclose(model[2:], FID.power(k.numpy()[2:]), rtol=0.02)


def test_linear_field_is_real_reproducible_and_zero_mean():
    mesh = ParticleMesh(16, 200.0)
    noise = np.random.default_rng(3).standard_normal((16,) * 3, dtype=np.float32)
    dk = mesh.linear_field(noise, FID.power)
    delta = torch.fft.irfftn(dk, s=(16,) * 3)
    assert abs(delta.mean().item()) < 1e-7 * delta.std().item()
    assert torch.allclose(torch.fft.rfftn(delta), dk, atol=1e-3 * dk.abs().max().item())  # Hermitian: lossless
    assert torch.equal(dk, mesh.linear_field(noise.copy(), FID.power))


def test_neglected_radiation_error_in_growth_is_as_documented():
    """The cosmology docstring's figure: a background with radiation (photons + 3.046 massless neutrinos,
    Omega_r = 4.18e-5 / h^2) changes D(z) / D(0) by 0.16% at z = 9 and 2.4% at z = 127. Growth with radiation
    from the Meszaros solution D = 1 + 1.5 a / a_eq, deep in the radiation era."""
    om, orad = FID.omega_m, 2.469e-5 / FID.h**2 * (1 + 0.2271 * 3.046)

    def rhs(lna, y):
        a = np.exp(lna)
        e2 = om / a**3 + orad / a**4 + 1 - om - orad
        dlne = -(1.5 * om / a**3 + 2 * orad / a**4) / e2
        return [y[1], -(2 + dlne) * y[1] + 1.5 * om / a**3 / e2 * y[0]]

    a0 = 1e-7
    sol = integrate.solve_ivp(rhs, (np.log(a0), 0.0), [1 + 1.5 * a0 * om / orad, 1.5 * a0 * om / orad],
                              dense_output=True, rtol=1e-11, atol=1e-14, method="DOP853")
    error = {z: 1 - FID.growth(1 / (1 + z)) * sol.sol(0.0)[0] / sol.sol(-np.log(1 + z))[0] for z in (9, 127)}
    assert 0.0012 < error[9] < 0.002 and 0.021 < error[127] < 0.027


def test_second_order_displacement_of_two_crossed_waves():
    # delta = A cos(k x) + B cos(k y): phi_xx = A cos(kx), phi_yy = B cos(ky), phi_xy = 0, so the 2LPT source
    # is A B cos(kx) cos(ky), phi2 = -A B cos(kx) cos(ky) / (2 k^2) and Psi2 = grad phi2 =
    # A B / (2 k) (sin kx cos ky, cos kx sin ky, 0). A single plane wave has Psi2 = 0 (Zel'dovich is exact in 1D).
    n, box, a, b = 16, 100.0, 0.3, -0.2
    mesh = ParticleMesh(n, box)
    k = 2 * np.pi / box * 2
    x, y, _ = mesh.lattice()
    for amp_b in (b, 0.0):
        delta = (a * torch.cos(k * x) + amp_b * torch.cos(k * y)).reshape(n, n, n)
        psi1, psi2 = mesh.lpt(torch.fft.rfftn(delta), order=2)
        expected = a * amp_b / (2 * k) * torch.stack([torch.sin(k * x) * torch.cos(k * y),
                                                      torch.cos(k * x) * torch.sin(k * y), torch.zeros_like(x)])
        torch.testing.assert_close(psi2, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(psi1[0], -a / k * torch.sin(k * x), atol=1e-5, rtol=0)  # delta = -div Psi1


def evolve_pair(seed, n=32, box=1000.0, z_init=9.0, z_out=3.0, steps=5):
    mesh = ParticleMesh(n, box)
    noise = np.random.default_rng(seed).standard_normal((n,) * 3, dtype=np.float32)
    dk = mesh.linear_field(noise, FID.power)
    start = mesh.evolve(FID, dk, 1 / (1 + z_init), 1 / (1 + z_init), 1)
    end = mesh.evolve(FID, dk, 1 / (1 + z_out), 1 / (1 + z_init), steps)
    return mesh, start, end


def test_evolved_power_follows_linear_growth_at_large_scales():
    n, box = 32, 1000.0
    growth2 = (FID.growth(0.25) / FID.growth(0.1)) ** 2
    ratios = []
    for seed in range(3):
        mesh, start, end = evolve_pair(seed, n, box)
        _, p0, _ = power_spectrum(mesh.paint(start, torch.float64) - 1, box)
        _, p1, _ = power_spectrum(mesh.paint(end, torch.float64) - 1, box)
        ratios.append((p1 / p0).numpy()[: n // 16] / growth2)  # k <= k_Nyquist / 8
    assert abs(np.mean(ratios) - 1) < 0.02


def test_mass_conservation_and_nonlinear_field_at_z0():
    n, box = 32, 128.0
    mesh, start, end = evolve_pair(0, n, box, z_out=0.0, steps=10)
    rho = mesh.paint(end, torch.float64)
    assert abs(rho.sum().item() - n**3) < 1e-6  # every particle's CIC weights sum to one
    delta = rho - 1
    assert delta.min().item() >= -1
    skew = ((delta - delta.mean()) ** 3).mean() / delta.std() ** 3
    assert skew > 1.0
    # Small scales: more power than linear growth of the same initial field.
    _, p0, _ = power_spectrum(mesh.paint(start, torch.float64) - 1, box)
    _, p1, _ = power_spectrum(delta, box)
    high = slice(n // 4, n // 2)
    assert np.all((p1 / p0).numpy()[high] > 1.3 * (FID.growth(1.0) / FID.growth(0.1)) ** 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_cic_matches_the_torch_path(dtype):
    # The CPU kernels against the torch path that other devices run (called here on CPU tensors): the same 8
    # neighbours and weights, so readout agrees to round-off (the sum order) and paint to that of its scatter
    # order; positions outside the box wrap (-1e-7 rounds up to the box side in float32: weight 1 on cell 0), in
    # the first and in the last, partial chunk of particles (12^3 = 3 x 512 + 192).
    n, box = 12, 30.0
    mesh = ParticleMesh(n, box)
    g = torch.Generator().manual_seed(1)
    pos = mesh.lattice() + 2 * mesh.cell * torch.randn(3, n**3, generator=g)
    pos[:, :5] = pos[:, -5:] = torch.tensor([0.0, -1e-7, box, box * (1 - 1e-8), -box - 0.3])[None]
    tol = {"rtol": 0, "atol": 32 * torch.finfo(dtype).eps}  # densities and values of order 1
    rho = mesh.paint(pos, dtype)
    assert rho.dtype == dtype and rho.shape == (n, n, n)
    torch.testing.assert_close(rho, mesh._paint_torch(pos, dtype), **tol)
    assert torch.equal(rho, mesh.paint(pos, dtype))  # a serial scatter: the same sums every run
    grid = torch.randn(3, n, n, n, generator=g, dtype=dtype)
    values = mesh.readout(grid, pos)
    assert values.dtype == dtype and values.shape == (3, n**3)
    torch.testing.assert_close(values, mesh._readout_torch(grid, pos), **tol)


def test_simulator_tiles_params_and_determinism():
    config = {"n_grid": 16, "box_size": 200.0, "slab_thickness": 4, "tile_size": 8, "n_steps": 2,
              "omega_m_range": [0.2, 0.4], "sigma_8_range": [0.7, 0.9]}
    sim = get_simulator("matter", config)
    assert sim.block_size == 4 * 2 * 2
    delta, _ = sim.density(np.random.default_rng(5))
    tiles = sim.tiles(delta)
    # Tile (slab s, row block i, column block j) is the slab average of that part of the box.
    expected = delta[8:16, 0:8, 8:12].mean(-1)
    torch.testing.assert_close(tiles[2 * 4 + 1 * 2 + 0, 0], expected)
    batch = simulate("matter", 20, seed=1, config=config)
    assert batch.images.shape == (20, 1, 8, 8)
    assert abs(batch.images[:16].mean()) < 1e-6  # one whole box: mass conservation survives tiling
    om, s8 = batch.params["omega_m"], batch.params["sigma_8"]
    assert np.all(om[:16] == om[0]) and om[16] != om[0] and np.all((om >= 0.2) & (om <= 0.4))
    assert np.all((s8 >= 0.7) & (s8 <= 0.9))
    np.testing.assert_array_equal(batch.params["x0"][:4], [0, 0, 100, 100])
    np.testing.assert_array_equal(batch.params["z0"][::4], [0, 50, 100, 150, 0])
    again = simulate("matter", 16, seed=1, config=config)
    np.testing.assert_array_equal(again.images, batch.images[:16])


def test_lpt_only_output_at_high_redshift():
    config = {"n_grid": 16, "box_size": 500.0, "slab_thickness": 16, "tile_size": 16, "redshift": 127.0}
    batch = simulate("matter", 1, seed=0, config=config)
    sim = get_simulator("matter", config)
    # At z = 127 the slab-averaged field is tiny and Gaussian-like: rms well below one per cent.
    assert 1e-4 < batch.images.std() < 1e-2
    assert sim.spec().meta.pixel_size == pytest.approx(500 / 16)


def test_config_errors():
    with pytest.raises(ConfigError, match="slab_thickness"):
        get_simulator("matter", {"n_grid": 32, "slab_thickness": 5})
    with pytest.raises(ConfigError, match="omega_m_range"):
        get_simulator("matter", {"omega_m_range": [0.4, 0.2]})
    with pytest.raises(ConfigError, match="device"):
        get_simulator("matter", {"n_grid": 16, "tile_size": 16, "device": "nonsense"})
    with pytest.raises(ConfigError, match="omega_b"):
        Cosmology(omega_m=0.04, omega_b=0.05)
    with pytest.raises(ConfigError, match="particle mesh"):
        ParticleMesh(3, 100.0)
