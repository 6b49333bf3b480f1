"""Photo-z metrics on hand-computed values."""

import numpy as np
import pytest

from astrogen.errors import DataError
from astrogen.stats.redshift import photoz_loss, photoz_metrics


def test_photoz_loss_and_metrics_by_hand():
    z_true = np.array([1.0, 1.0, 0.0, 0.0])
    z_pred = np.array([1.2, 1.0, 0.15, -0.3])  # dz = 0.1, 0, 0.15, -0.3
    np.testing.assert_allclose(photoz_loss(z_pred, z_true), [4 / 13, 0.0, 0.5, 0.8])
    m = photoz_metrics(z_pred, z_true)
    assert m["loss"] == pytest.approx((4 / 13 + 1.3) / 4)
    assert m["bias"] == pytest.approx(-0.0125)
    # median dz = 0.05; |dz - 0.05| = 0.05, 0.05, 0.1, 0.35 -> median 0.075
    assert m["sigma_nmad"] == pytest.approx(1.4826 * 0.075)
    assert m["outlier_fraction"] == pytest.approx(0.25)  # |dz| > 0.15 strictly: only -0.3


def test_photoz_rejects_bad_input():
    with pytest.raises(DataError):
        photoz_metrics([1.0, 2.0], [1.0])
    with pytest.raises(DataError):
        photoz_loss([np.nan], [1.0])


def test_binned_metrics_by_hand():
    from astrogen.stats.redshift import binned_photoz_metrics, photoz_metrics

    # bin [0, 1): the four objects of the hand-worked example above; bin [1, 1.5): empty; bin [1.5, 2]: two
    # objects at z = 2 (the closed last edge) with dz = 0.1 and 0.1; z = 5 and z = -0.5 are outside.
    z_true = np.array([0.5, 0.5, 0.0, 0.0, 2.0, 2.0, 5.0, -0.5])
    z_pred = np.array([0.65, 0.5, 0.15, -0.3, 2.3, 2.3, 5.0, -0.5])  # dz = 0.1, 0, 0.15, -0.3, 0.1, 0.1, 0, 0
    out = binned_photoz_metrics(z_pred, z_true, edges=[0, 1, 1.5, 2], n_bootstrap=50, seed=1)
    np.testing.assert_array_equal(out.n, [4, 0, 2])
    assert out.n_outside == 2 and out.n_bootstrap == 50
    expected = photoz_metrics(z_pred[:4], z_true[:4])
    for name in ("bias", "sigma_nmad", "outlier_fraction", "loss"):
        assert out.value[name][0] == pytest.approx(expected[name])
        assert np.isnan(out.value[name][1]) and np.isnan(out.error[name][1])  # empty: n = 0, no crash
    assert out.value["bias"][2] == pytest.approx(0.1) and out.value["sigma_nmad"][2] == pytest.approx(0, abs=1e-15)
    assert out.value["loss"][2] == pytest.approx(1 - 1 / (1 + (0.1 / 0.15) ** 2))
    # identical objects: every resample is the same, so every bootstrap error is 0
    assert all(out.error[name][2] == pytest.approx(0, abs=1e-15) for name in out.error)
    assert out.error["bias"][0] > 0
    again = binned_photoz_metrics(z_pred, z_true, edges=[0, 1, 1.5, 2], n_bootstrap=50, seed=1)
    np.testing.assert_array_equal(again.error["sigma_nmad"], out.error["sigma_nmad"])  # seed-reproducible


def test_binned_metrics_recover_gaussian_scatter_and_bootstrap_errors():
    from scipy.special import erfc, erfcx

    from astrogen.stats.redshift import binned_photoz_metrics

    rng = np.random.default_rng(0)
    n, bias, sigma = 4000, 0.02, 0.05  # per bin
    z_true = np.repeat([0.5, 1.5], n)
    dz = bias + sigma * rng.normal(size=2 * n)
    out = binned_photoz_metrics(z_true + dz * (1 + z_true), z_true, edges=[0, 1, 2], n_bootstrap=1000, seed=0)
    error_of_mean = sigma / np.sqrt(n)
    np.testing.assert_allclose(out.value["bias"], bias, atol=4 * error_of_mean)
    np.testing.assert_allclose(out.value["sigma_nmad"], sigma, rtol=0.05)  # NMAD of a Gaussian is its sigma
    # bootstrap error of a mean -> sigma / sqrt(n); 1000 resamples estimate it to ~2%
    np.testing.assert_allclose(out.error["bias"], error_of_mean, rtol=0.1)
    # outliers: P(|dz| > 0.15) for N(0.02, 0.05), error sqrt(f (1 - f) / n)
    f = 0.5 * (erfc((0.15 - bias) / (sigma * np.sqrt(2))) + erfc((0.15 + bias) / (sigma * np.sqrt(2))))
    np.testing.assert_allclose(out.value["outlier_fraction"], f, atol=4 * np.sqrt(f * (1 - f) / n) + 1e-4)
    # sigma_NMAD: the MAD is 37% efficient for a Gaussian: error sigma / sqrt(0.37 * 2 n) = 1.16 sigma / sqrt(n)
    np.testing.assert_allclose(out.error["sigma_nmad"], 1.16 * sigma / np.sqrt(n), rtol=0.25)
    # mean HSC loss of unbiased Gaussian dz: 1 - sqrt(pi) y erfcx(y), y = 0.15 / (sqrt(2) sigma)
    zero = binned_photoz_metrics(z_true + (dz - bias) * (1 + z_true), z_true, edges=[0, 1, 2], n_bootstrap=10)
    y = 0.15 / (np.sqrt(2) * sigma)
    np.testing.assert_allclose(zero.value["loss"], 1 - np.sqrt(np.pi) * y * erfcx(y), rtol=0.05)


def test_compare_binned_agrees_within_two_sigma_and_flags_a_shift():
    from astrogen.stats.redshift import binned_photoz_metrics, compare_binned

    rng = np.random.default_rng(3)
    z_true = rng.uniform(0, 2, 3000)

    def judged(shift, seed):
        dz = shift + 0.05 * np.random.default_rng(seed).normal(size=z_true.size)
        return binned_photoz_metrics(z_true + dz * (1 + z_true), z_true, edges=[0, 1, 2, 3], n_bootstrap=300,
                                     seed=seed)

    real = judged(0.0, 1)
    rows = compare_binned(real, judged(0.0, 2))
    assert [row["agree"] for row in rows] == [True, True, None]  # the empty bin has no verdict
    assert rows[2]["n_real"] == 0 and rows[2]["real"]["bias"] is None
    shifted = compare_binned(real, judged(0.03, 4))  # 0.03 is ~20 combined sigma of the bias
    assert [row["agree_by_metric"]["bias"] for row in shifted[:2]] == [False, False]
    assert shifted[0]["pull"]["bias"] > 10 and shifted[0]["agree"] is False
    import json

    json.dumps(rows, allow_nan=False)  # JSON-ready as is


def test_bin_edges_and_index():
    from astrogen.errors import ConfigError
    from astrogen.stats.redshift import bin_index, binned_photoz_metrics, check_edges

    np.testing.assert_array_equal(bin_index([-1, 0, 0.5, 1, 2, 2.5, np.nan], [0, 1, 2]), [-1, 0, 0, 1, 1, -1, -1])
    for bad in ([1.0], [0, 0.4, 0.4], [0, 2, 1], [0, np.inf], ["a", "b"]):
        with pytest.raises(ConfigError, match="edges"):
            check_edges(bad)
    with pytest.raises(ConfigError, match="n_bootstrap"):
        binned_photoz_metrics([1.0, 1.0], [1.0, 1.0], n_bootstrap=1)


def test_stamp_photometry_recovers_fluxes_and_colours():
    from astrogen.stats.redshift import stamp_photometry

    rng = np.random.default_rng(0)
    y, x = np.mgrid[:32, :32] - 15.5
    profile = np.exp(-(x**2 + y**2) / (2 * 2.0**2))
    profile /= profile.sum()
    fluxes = np.array([[100.0, 250.0, 400.0], [50.0, 50.0, -50.0]])
    maps = fluxes[:, :, None, None] * profile + 3.0 + 0.01 * rng.normal(size=(2, 3, 32, 32))  # background 3
    out = stamp_photometry(maps)
    # the clipped median keeps some of the faint wings: fluxes come out ~0.5% low; the noise sums to ~0.3
    np.testing.assert_allclose(out.flux, fluxes, rtol=0.01, atol=0.5)
    np.testing.assert_allclose(out.colour[0], [-2.5 * np.log10(100 / 250), -2.5 * np.log10(250 / 400)], atol=0.01)
    assert out.colour[1, 0] == pytest.approx(0, abs=0.03) and np.isnan(out.colour[1, 1])  # negative flux: no colour


@pytest.mark.slow
@pytest.mark.parametrize("n", [10, 50, 300])
def test_agreement_rule_false_alarm_rate(n):
    """Two sets from one heavy-tailed distribution: the 2.5-sigma joint rule fails in ~3% of bins (2.7, 3.7, 3.0%)."""
    from astrogen.stats.redshift import binned_photoz_metrics, compare_binned

    rng = np.random.default_rng(n)
    trials = 300
    failed = 0
    for _ in range(trials):  # pairs of independent draws
        sets = []
        for _ in range(2):
            z = rng.uniform(0, 1, n)
            dz = 0.05 * rng.standard_t(3, n)  # Student t: a few outliers beyond 0.15
            sets.append(binned_photoz_metrics(z + dz * (1 + z), z, edges=[0, 1], n_bootstrap=200, seed=rng))
        failed += compare_binned(*sets)[0]["agree"] is False
    assert 0.01 <= failed / trials <= 0.07, failed / trials
