import numpy as np
import pytest
from conftest import Result
from test_style import png_size

from astrogen.report import figures
from astrogen.report.style import figure_to_data_uri

N, C, B = 12, 2, 10
CHANNELS = ["kappa", "tsz"]


def labels(fig) -> str:
    """All axis labels and titles of a figure, joined."""
    texts = [(ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_title("left")) for ax in fig.axes]
    return " | ".join(t for group in texts for t in group)


def check_png(fig, min_pixels=(200, 150)):
    width, height = png_size(figure_to_data_uri(fig))
    assert width >= min_pixels[0] and height >= min_pixels[1]
    assert width < 5000 and height < 5000


def test_sample_grid(rng):
    real, gen = rng.normal(size=(8, C, 16, 16)), rng.normal(size=(3, C, 16, 16))
    fig = figures.sample_grid(real, gen, CHANNELS, n_show=4)
    assert len(fig.axes) == C * 2 * 3  # limited by the smaller set
    assert "kappa" in labels(fig) and "generated" in labels(fig)
    check_png(fig)


@pytest.mark.parametrize("log,per_channel", [(False, False), (True, False), (False, True)])
def test_histogram_figure(rng, log, per_channel):
    edges = np.geomspace(0.1, 10, B + 1) if log else np.linspace(-3, 3, B + 1)
    if per_channel:  # the scorecard's pixel_pdf bins: one row of edges per channel
        edges = edges * np.arange(1, C + 1)[:, None]
    real = Result(edges=edges, density=rng.uniform(size=(N, C, B)), log=log)
    gen = Result(edges=edges, density=rng.uniform(size=(N, C, B)), log=log)
    fig = figures.histogram_figure(real, gen, CHANNELS, "uK")
    assert "tsz pixel value [uK]" in labels(fig)
    assert ("dP/d ln x" if log else "PDF [1/uK]") in labels(fig)
    assert [ax.get_yscale() for ax in fig.axes[:1]] == ["linear"] and fig.axes[-1].get_yscale() == "log"
    assert fig.axes[0].get_xscale() == ("log" if log else "linear")
    last = np.atleast_2d(edges)[-1]  # the last panel is the last channel's
    centres = np.sqrt(last[:-1] * last[1:]) if log else 0.5 * (last[:-1] + last[1:])
    np.testing.assert_allclose(fig.axes[-1].lines[0].get_xdata(), centres)
    check_png(fig)


def test_power_figure_ratio_panel_shows_the_generated_over_real_ratio(rng):
    k = np.linspace(0.1, 2, B)
    real = Result(k=k, power=np.broadcast_to(k**-2, (N, C, B)) * rng.uniform(0.9, 1.1, (N, C, 1)),
                  modes=np.full(B, 8.0), dimensionless=False)
    gen = Result(k=k, power=2 * real.power, modes=real.modes, dimensionless=False)
    fig = figures.power_figure(real, gen, "h/Mpc", "(Mpc/h)²", CHANNELS)
    text = labels(fig)
    assert "k [h/Mpc]" in text and "P(k) [(Mpc/h)²]" in text and "generated / real" in text
    ratio_line = fig.axes[C].lines[0]  # bottom row, first channel: the ratio curve
    np.testing.assert_allclose(ratio_line.get_ydata(), 2.0)


def tolerance_bands(ax) -> list[tuple[float, float]]:
    """(low, high) in data units of the tolerance bands (gid "tolerance") of an axes."""
    bands = []
    for patch in ax.patches:
        if patch.get_gid() == "tolerance":
            y = (patch.get_patch_transform() + patch.get_data_transform()
                 + ax.transData.inverted()).transform(patch.get_path().vertices)[:, 1]
            bands.append((float(y.min()), float(y.max())))
    return bands


@pytest.mark.parametrize("tolerance", [None, 0.3])
def test_power_figure_draws_the_scorecard_tolerance_band_in_every_ratio_panel(rng, tolerance):
    from astrogen.stats.compare import REGISTRY

    k = np.linspace(0.1, 2, B)
    real = Result(k=k, power=np.broadcast_to(k**-2, (N, C, B)) * rng.uniform(0.9, 1.1, (N, C, 1)),
                  modes=np.full(B, 8.0), dimensionless=False)
    fig = figures.power_figure(real, real, "1/arcmin", "uK² arcmin²", CHANNELS, tolerance=tolerance)
    expected = REGISTRY["power"].tolerance if tolerance is None else tolerance
    for c in range(C):
        assert tolerance_bands(fig.axes[c]) == []  # not in the P(k) panels
        (low, high), = tolerance_bands(fig.axes[C + c])
        assert low == pytest.approx(1 - expected) and high == pytest.approx(1 + expected)
    legend = [t.get_text() for t in fig.axes[C].get_legend().get_texts()]
    assert f"scorecard tolerance ±{expected:g}" in legend and "real ±1σ" in legend
    check_png(fig)


def test_power_correlation_is_the_correlation_over_maps(rng):
    base = rng.normal(size=(50, C, 1))
    power = np.concatenate([base, 2 * base + 1, -base, rng.normal(size=(50, C, 1))], axis=-1)  # [N, C, 4 bins]
    corr = figures.power_correlation(power)
    assert corr.shape == (C, 4, 4)
    np.testing.assert_allclose(corr[:, 0, 1], 1.0)
    np.testing.assert_allclose(corr[:, 0, 2], -1.0)
    for c in range(C):
        np.testing.assert_allclose(corr[c], np.corrcoef(power[:, c].T))
    with pytest.raises(ValueError, match="2 maps"):
        figures.power_correlation(power[:1])


def test_power_correlation_figure_real_beside_generated_on_one_colour_scale(rng):
    k = np.concatenate([[0.0], np.geomspace(0.1, 2, B - 1)])  # k = 0 is left out, as in the P(k) figure
    real = Result(k=k, power=rng.lognormal(size=(N, C, B)), modes=np.full(B, 8.0), dimensionless=False)
    gen = Result(k=k, power=rng.lognormal(size=(N + 3, C, B)), modes=real.modes, dimensionless=False)
    fig = figures.power_correlation_figure(real, gen, "1/arcmin", CHANNELS)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 * C and len(fig.axes) == 2 * C + 1  # one shared colour bar
    assert [ax.get_title("left") for ax in panels[:2]] == ["kappa: real", "kappa: generated"]
    assert {ax.collections[0].get_clim() for ax in panels} == {(-1.0, 1.0)}
    np.testing.assert_allclose(panels[1].collections[0].get_array().reshape(B - 1, B - 1),
                               figures.power_correlation(gen.power[..., 1:])[0])
    assert "k [1/arcmin]" in labels(fig)
    check_png(fig)
    check_png(fig)


def test_correlation_figure_one_panel_per_pair(rng):
    k = np.linspace(0.1, 2, B)
    r = rng.uniform(-1, 1, size=(N, 3, 3, B))
    fig = figures.correlation_figure(k, r, r, ["a", "b", "c"], "1/arcmin")
    assert len(fig.axes) == 3 and "a × c" in labels(fig) and "k [1/arcmin]" in labels(fig)
    check_png(fig)


def test_peaks_figure_with_profiles(rng):
    nu = np.linspace(-1.75, 5.75, 16)
    real = Result(nu=nu, edges=np.linspace(-2, 6, 17), counts=rng.poisson(5, size=(N, C, 16)).astype(float))
    profile = (np.arange(11.0), rng.normal(size=(C, 11)))
    fig = figures.peaks_figure(real, real, CHANNELS, "uK", profile, profile)
    assert len(fig.axes) == 2 * C and "stacked profile [uK]" in labels(fig) and "[σ" in labels(fig)
    check_png(fig)


def test_peaks_figure_draws_a_wide_top_bin_next_to_the_others(rng):
    edges = np.append(np.linspace(-2, 6, 17), 900.0)  # the scorecard's open top bin
    real = Result(nu=0.5 * (edges[1:] + edges[:-1]), edges=edges, counts=rng.poisson(5, size=(N, C, 17)) * 1.0)
    fig = figures.peaks_figure(real, real, CHANNELS, "uK")
    assert fig.axes[0].get_xlim()[1] < 10 and "all above 6" in labels(fig)
    check_png(fig)


def test_minkowski_figure(rng):
    t = np.linspace(-3, 3, 25)
    real = Result(thresholds=t, v0=rng.uniform(size=(N, C, 25)), v1=rng.uniform(size=(N, C, 25)),
                  v2=rng.normal(size=(N, C, 25)))
    fig = figures.minkowski_figure(real, real, CHANNELS, "arcmin")
    assert len(fig.axes) == 3 * C and "V1 [1/arcmin]" in labels(fig) and "V2 [1/arcmin²]" in labels(fig)
    check_png(fig)


def test_clusters_figure(rng):
    t = np.linspace(0, 3, 7)
    sizes = [rng.integers(1, 100, size=50) for _ in t]
    real = Result(threshold=t, count=rng.poisson(10, size=(N, C, 7)).astype(float), sizes=sizes, masses=sizes,
                  skeleton_length=np.zeros((N, C, 7)))
    empty = Result(threshold=t, count=np.zeros((N, C, 7)), sizes=[np.array([])] * 7, masses=[], skeleton_length=None)
    fig = figures.clusters_figure(real, empty, CHANNELS)
    assert len(fig.axes) == C + 1 and "cluster size [pixel]" in labels(fig)
    check_png(fig)


def morphology_result(rng, n=40):
    values = {name: rng.uniform(0.1, 1, size=(n, 1)) for name in
              ("ellipticity", "semi_major_axis", "area", "sersic_n", "half_light_radius")}
    values["ellipticity"][0] = np.nan
    failed = np.zeros((n, 1), bool)
    failed[0] = True
    return Result(**values, failed=failed, reason=["no source"] + [""] * (n - 1))


@pytest.mark.slow
def test_morphology_figures(rng):
    real, gen = morphology_result(rng), morphology_result(rng)
    fig = figures.morphology_figure(real, gen, 0, "r", "arcsec")
    assert "half-light radius [arcsec]" in labels(fig) and "ellipticity" in labels(fig)
    assert "2.5% of real" in fig.get_suptitle()  # 1 of 40 failed
    check_png(fig)
    fig = figures.morphology_interval_figure(real, gen, rng.uniform(0, 2, 40), rng.uniform(0, 2, 40), "redshift",
                                             0, "r", "arcsec", n_bins=4)
    assert "redshift" in labels(fig) and "isophotal area [arcsec²]" in labels(fig)
    check_png(fig)
    fig = figures.morphology_interval_figure(real, gen, rng.uniform(0, 2, 40), rng.uniform(0, 2, 40), "redshift",
                                             0, "r", "arcsec", edges=np.array([0, 0.5, 2, 4]))
    assert len(fig.axes) == len(figures.MORPHOLOGY_QUANTITIES)
    check_png(fig)


@pytest.mark.slow
def test_photometry_and_judge_figures(rng):
    from astrogen.stats.redshift import Photometry, binned_photoz_metrics

    flux = rng.lognormal(3, 1, size=(40, 3))
    flux[0, 0] = -2.0  # a faint noisy stamp: symmetric-log axis
    real = Photometry(flux, -2.5 * np.log10(np.abs(flux[:, :-1] / flux[:, 1:])))
    fig = figures.photometry_interval_figure(real, real, rng.uniform(0, 2, 40), rng.uniform(0, 2, 40), "redshift",
                                             ["g", "r", "i"], "counts", np.array([0.0, 1.0, 2.0]))
    assert "g - r [mag]" in labels(fig) and "flux i" in labels(fig) and "[counts]" in fig.get_suptitle()
    assert sum(ax.get_visible() for ax in fig.axes) == 5  # 3 fluxes, 2 colours
    assert fig.axes[0].get_yscale() == "symlog" and fig.axes[1].get_yscale() == "log"
    check_png(fig)
    z = rng.uniform(0, 2, 60)
    binned = binned_photoz_metrics(z + 0.05 * rng.normal(size=60), z, edges=[0, 1, 2, 3], n_bootstrap=20)
    fig = figures.photoz_trend_figure(binned, binned, "redshift")
    assert "σ_NMAD" in labels(fig) and "20 resamples" in fig.get_suptitle()  # the empty bin [2, 3] is skipped
    check_png(fig)
    check_png(figures.photoz_scatter_figure((z, z + 0.1), (z, z), np.array([0.0, 1.0, 2.0])))


def test_binned_intervals_recovers_uniform_quantiles():
    values = np.concatenate([np.linspace(0, 1, 1001), np.linspace(10, 20, 1001), [np.nan]])
    condition = np.concatenate([np.full(1001, 0.5), np.full(1001, 1.5), [0.5]])
    out = figures.binned_intervals(values, condition, np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(out[0], [0.025, 0.5, 0.975])
    np.testing.assert_allclose(out[1], [10.25, 15.0, 19.75])
    assert np.isnan(out[2]).all()  # empty bin


def test_marginal_figure_sums_and_power_images(rng):
    from astrogen.stats.peaks import marginal_sums
    from astrogen.stats.power import power_image

    def inputs(maps):
        return (*marginal_sums(maps), power_image(maps).mean(0))

    real = np.zeros((4, C, 8, 8))
    real[:, :, :, 2] = 1.0  # a vertical line at x = 2: the sum over rows peaks there, the sum over columns is flat
    fig = figures.marginal_figure(inputs(real), inputs(rng.normal(size=(5, C, 8, 8))), CHANNELS, "uK")
    x_sums = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(x_sums, [0, 0, 8, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), 1.0)
    assert "kappa marginal sum [uK]" in labels(fig) and "log10" in labels(fig)
    check_png(fig)
