"""Report figures: one function per statistic, each comparing a real and a generated set.

Every function takes the `astrogen.stats` result dataclasses (or arrays) of both sets and returns a
`matplotlib.figure.Figure` drawn in the shared style (`astrogen.report.style`); real is always blue and
generated vermillion. Curves are means over maps; shaded bands are the ±1σ map-to-map scatter.
`traversal_figure` draws one model's images: a VAE's latent traversal.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from astrogen.report.style import DIVERGING_CMAP, GENERATED, OKABE_ITO, REAL, new_figure, style

if TYPE_CHECKING:
    from astrogen.stats.clusters import Clusters
    from astrogen.stats.minkowski import Minkowski
    from astrogen.stats.morphology import Morphology
    from astrogen.stats.onepoint import Histogram
    from astrogen.stats.peaks import PeakCounts
    from astrogen.stats.power import PowerSpectrum
    from astrogen.stats.redshift import BinnedPhotoz, Photometry

SETS = (("real", REAL), ("generated", GENERATED))
MORPHOLOGY_QUANTITIES = (  # (Morphology field, axis label, power of the length unit it carries)
    ("ellipticity", "ellipticity", 0),
    ("semi_major_axis", "semi-major axis", 1),
    ("half_light_radius", "half-light radius", 1),
    ("sersic_n", "Sérsic index n", 0),
    ("area", "isophotal area", 2),
)
PHOTOZ_LABELS = {"bias": "bias ⟨Δz⟩", "sigma_nmad": "σ_NMAD", "outlier_fraction": "outlier fraction (|Δz| > 0.15)",
                 "loss": "mean HSC loss"}


def _band(ax, x, values: np.ndarray, color: str, label: str) -> None:
    """Plot the mean over axis 0 of ``values`` [N, len(x)] with a ±1σ scatter band."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)


def _bracket(unit: str) -> str:
    return f" [{unit}]" if unit else ""


def _length(unit: str, power: int) -> str:
    """``unit`` to ``power`` (0: dimensionless), e.g. arcsec² for an area."""
    if power == 0:
        return ""
    if power == 1:
        return unit
    return (f"({unit})" if "/" in unit else unit) + ("²" if power == 2 else f"^{power}")


def sample_grid(real_images: np.ndarray, gen_images: np.ndarray, channel_names: Sequence[str],
                n_show: int = 6) -> Figure:
    """Up to ``n_show`` real (left) and generated (right) maps ([N, C, H, W]) side by side, a row per channel.

    Each channel shares one colour scale (the 1st-99th percentile of the real maps shown), so brightness
    differences between real and generated maps are real differences.
    """
    n = min(n_show, len(real_images), len(gen_images))
    with style():
        fig, axes = new_figure(len(channel_names), 2 * n, panel_size=(1.2, 1.2))
        for c, name in enumerate(channel_names):
            lo, hi = np.percentile(real_images[:n, c], [1, 99])
            for i in range(2 * n):
                images = real_images if i < n else gen_images
                ax = axes[c, i]
                ax.imshow(images[i % n, c], vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color(REAL if i < n else GENERATED)
                    spine.set_linewidth(2)
            axes[c, 0].set_ylabel(name)
        axes[0, 0].set_title("real", loc="left", color=REAL)
        axes[0, n].set_title("generated", loc="left", color=GENERATED)
    return fig


def traversal_figure(grid, channel: int = 0, title: str = "latent traversal") -> Figure:
    """Figure of a `VAEModule.latent_traversal` grid ``[n, n, C, H, W]`` (array or tensor): one channel, one
    colour scale (the 1st-99th percentile of the grid)."""
    grid = np.asarray(grid.cpu() if hasattr(grid, "cpu") else grid)
    n_rows, n_cols = grid.shape[:2]
    low, high = np.percentile(grid[:, :, channel], [1, 99])
    with style():
        fig, axes = new_figure(n_rows, n_cols, panel_size=(1.1, 1.1))
        for i in range(n_rows):
            for j in range(n_cols):
                axes[i, j].imshow(grid[i, j, channel], vmin=low, vmax=high, origin="lower", interpolation="nearest")
                axes[i, j].set_axis_off()
        fig.suptitle(title)
    return fig


def _centres(edges: np.ndarray, log: bool) -> np.ndarray:
    return np.sqrt(edges[:-1] * edges[1:]) if log else 0.5 * (edges[:-1] + edges[1:])


def histogram_figure(real: Histogram, gen: Histogram, channel_names: Sequence[str], units: str) -> Figure:
    """Per-map pixel PDFs (mean ±1σ), one column per channel, linear (top) and logarithmic (bottom) density.

    Both histograms must share ``edges`` (`astrogen.stats.onepoint.shared_edges`): ``[B + 1]`` for all
    channels, or ``[C, B + 1]``, one row per channel (the scorecard's pixel_pdf bins). Log-spaced edges
    (``Histogram.log``) are drawn on a logarithmic value axis as the density per logarithmic interval,
    x·PDF(x) = dP/d ln x, which stays readable over many decades.
    """
    edges = np.broadcast_to(real.edges, (len(channel_names), np.shape(real.edges)[-1]))
    if real.log:
        ylabel = "x · PDF(x) = dP/d ln x"
    else:
        ylabel = f"PDF{_bracket(f'1/{units}' if units not in ('', 'dimensionless') else '')}"
    with style():
        fig, axes = new_figure(2, len(channel_names))
        for c, name in enumerate(channel_names):
            x = _centres(edges[c], real.log)
            weight = x if real.log else 1.0
            for row, scale in enumerate(("linear", "log")):
                ax = axes[row, c]
                for (label, color), hist in zip(SETS, (real, gen)):
                    _band(ax, x, weight * hist.density[:, c], color, label)
                ax.set_yscale(scale)
                ax.set_xscale("log" if real.log else "linear")
                ax.set_xlabel(f"{name} pixel value{_bracket(units)}")
                ax.set_ylabel(ylabel)
        axes[0, 0].legend()
    return fig


def power_figure(real: PowerSpectrum, gen: PowerSpectrum, k_unit: str, power_unit: str,
                 channel_names: Sequence[str], tolerance: float | None = None) -> Figure:
    """Auto power spectra (mean ±1σ over maps, top) and their ratio generated/real (bottom), per channel.

    In the ratio panel the grey band is the real set's ±1σ relative scatter, the vermillion band the
    generated set's scatter relative to the real mean, and the green band (``gid="tolerance"``) the scorecard's
    tolerance, 1 ± ``tolerance`` (default: the power row's, ``REGISTRY["power"].tolerance`` of
    `astrogen.stats.compare`, on the mean |P_gen / P_real - 1|): a ratio inside it at every k passes.
    """
    if tolerance is None:
        from astrogen.stats.compare import REGISTRY

        tolerance = REGISTRY["power"].tolerance
    k = real.k
    keep = k > 0
    label = "Δ²(k)" if real.dimensionless else f"P(k){_bracket(power_unit)}"
    with style():
        fig, axes = new_figure(2, len(channel_names), sharex="col", gridspec_kw={"height_ratios": (2, 1)})
        for c, name in enumerate(channel_names):
            top, bottom = axes[0, c], axes[1, c]
            for (set_label, color), spec in zip(SETS, (real, gen)):
                _band(top, k[keep], spec.power[:, c][:, keep], color, set_label)
            top.set_xscale("log")
            top.set_yscale("log")
            top.set_title(name)
            top.set_ylabel(label)
            real_mean = real.power[:, c].mean(axis=0)[keep]
            real_std = real.power[:, c].std(axis=0)[keep]
            gen_mean = gen.power[:, c].mean(axis=0)[keep]
            gen_std = gen.power[:, c].std(axis=0)[keep]
            with np.errstate(divide="ignore", invalid="ignore"):
                bottom.fill_between(k[keep], 1 - real_std / real_mean, 1 + real_std / real_mean, color="0.6",
                                    alpha=0.4, linewidth=0, label="real ±1σ")
                bottom.fill_between(k[keep], (gen_mean - gen_std) / real_mean, (gen_mean + gen_std) / real_mean,
                                    color=GENERATED, alpha=0.25, linewidth=0)
                bottom.plot(k[keep], gen_mean / real_mean, color=GENERATED)
            bottom.axhspan(1 - tolerance, 1 + tolerance, color=OKABE_ITO["bluish_green"], alpha=0.2, linewidth=0,
                           zorder=0, gid="tolerance", label=f"scorecard tolerance ±{tolerance:g}")
            bottom.axhline(1.0, color=REAL, linewidth=1)
            bottom.set_xlabel(f"k{_bracket(k_unit)}")
            bottom.set_ylabel("generated / real")
        axes[0, 0].legend()
        axes[1, 0].legend()
    return fig


def power_correlation(power: np.ndarray) -> np.ndarray:
    """Map-to-map correlation matrix of P(k) between k bins, per channel: ``power`` [N, C, B] -> [C, B, B].

    corr_ij = Cov(P(k_i), P(k_j)) / (σ_i σ_j) over the N maps; NaN where a bin does not vary.
    """
    power = np.asarray(power, dtype=np.float64)
    if len(power) < 2:
        raise ValueError(f"a correlation over maps needs at least 2 maps, got {len(power)}")
    dev = power - power.mean(axis=0)
    cov = np.einsum("ncb,ncd->cbd", dev, dev) / (len(power) - 1)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / (sd[:, :, None] * sd[:, None, :])


def _log_edges(centres: np.ndarray) -> np.ndarray:
    """Bin edges around increasing positive ``centres``: geometric midpoints, the ends mirrored."""
    if len(centres) == 1:
        return centres * np.array([0.8, 1.25])
    mid = np.sqrt(centres[:-1] * centres[1:])
    return np.concatenate([[centres[0] ** 2 / mid[0]], mid, [centres[-1] ** 2 / mid[-1]]])


def power_correlation_figure(real: PowerSpectrum, gen: PowerSpectrum, k_unit: str,
                             channel_names: Sequence[str]) -> Figure:
    """The map-to-map correlation matrix of P(k) (`power_correlation`), real (left) beside generated (right).

    A row per channel, one colour scale [-1, 1] shared by every panel. Off-diagonal structure is the
    mode coupling of non-Gaussian fields (and of a finite map): a generator that reproduces the mean P(k) but not
    its covariance shows it here.
    """
    keep = real.k > 0
    edges = _log_edges(real.k[keep])
    corr = [power_correlation(spec.power[..., keep]) for spec in (real, gen)]
    with style():
        fig, axes = new_figure(len(channel_names), 2, panel_size=(2.8, 2.6), sharex=True, sharey=True)
        for c, name in enumerate(channel_names):
            for ax, (set_label, color), matrix in zip(axes[c], SETS, corr):
                mesh = ax.pcolormesh(edges, edges, matrix[c], cmap=DIVERGING_CMAP, vmin=-1, vmax=1)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_box_aspect(1)
                ax.grid(False)
                ax.set_title(f"{name}: {set_label}", loc="left", color=color)
                ax.set_xlabel(f"k{_bracket(k_unit)}")
            axes[c, 0].set_ylabel(f"k{_bracket(k_unit)}")
        fig.colorbar(mesh, ax=axes, label="corr(P(k_i), P(k_j)) over maps", shrink=0.9)
    return fig


def marginal_figure(real: tuple[np.ndarray, np.ndarray, np.ndarray], gen: tuple[np.ndarray, np.ndarray, np.ndarray],
                    channel_names: Sequence[str], units: str) -> Figure:
    """Marginal sums and mean 2D power images of real and generated maps (microwave-sky report, blob tests).

    ``real`` and ``gen`` are each (row sums [N, C, H], column sums [N, C, W]) of
    `astrogen.stats.peaks.marginal_sums` and the mean 2D power image [C, H, W] of
    `astrogen.stats.power.power_image`. A row per channel: the sum over rows as a function of x and over
    columns as a function of y (mean ±1σ over maps; flat for statistically homogeneous maps), then log10
    of the mean power image of the real and of the generated maps (k = 0 centred, one colour scale per channel).
    """
    with style():
        fig, axes = new_figure(len(channel_names), 4)
        for c, name in enumerate(channel_names):
            # column sums (over rows) are a function of x, row sums (over columns) of y
            for ax, label, which in zip(axes[c, :2], ("x [pixel]", "y [pixel]"), (1, 0)):
                for (set_label, color), sums in zip(SETS, (real[which], gen[which])):
                    _band(ax, np.arange(sums.shape[-1]), sums[:, c], color, set_label)
                ax.set_xlabel(label)
                ax.set_ylabel(f"{name} marginal sum{_bracket(units)}")
            with np.errstate(divide="ignore"):
                logs = np.log10(real[2][c]), np.log10(gen[2][c])
            finite = logs[0][np.isfinite(logs[0])]
            lo, hi = (np.percentile(finite, [1, 100]) if finite.size else (None, None))
            for ax, image, title in zip(axes[c, 2:], logs, ("real", "generated")):
                ax.imshow(image, vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
                ax.set_title(f"{name}: log10 <P(kx, ky)>, {title}")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
        axes[0, 0].legend()
    return fig


def correlation_figure(k: np.ndarray, r_real: np.ndarray, r_gen: np.ndarray, channel_names: Sequence[str],
                       k_unit: str) -> Figure:
    """Cross-correlation coefficient r(k) of every channel pair (mean ±1σ over maps); r is [N, C, C, B]."""
    pairs = [(i, j) for i in range(len(channel_names)) for j in range(i + 1, len(channel_names))]
    keep = k > 0
    with style():
        fig, axes = new_figure(1, len(pairs))
        for ax, (i, j) in zip(axes[0], pairs):
            for (label, color), r in zip(SETS, (r_real, r_gen)):
                _band(ax, k[keep], r[:, i, j][:, keep], color, label)
            ax.set_xscale("log")
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"{channel_names[i]} × {channel_names[j]}")
            ax.set_xlabel(f"k{_bracket(k_unit)}")
            ax.set_ylabel("r(k)")
        axes[0, 0].legend()
    return fig


def peaks_figure(real: PeakCounts, gen: PeakCounts, channel_names: Sequence[str], units: str,
                 profile_real: tuple[np.ndarray, np.ndarray] | None = None,
                 profile_gen: tuple[np.ndarray, np.ndarray] | None = None) -> Figure:
    """Peak counts per map against height ν (top) and, if given, stacked radial peak profiles (bottom).

    ``profile_real``/``profile_gen`` are ``(r [R] in pixels, profile [C, R])`` from
    `astrogen.stats.peaks.stacked_profile`.
    """
    rows = 1 if profile_real is None else 2
    # A top bin wider than the others (the scorecard's bin from 6 up to the highest pixel) is drawn one regular
    # bin past the last one, so that it does not stretch the axis.
    nu, widths, xlabel = real.nu.copy(), np.diff(real.edges), "peak height ν [σ of real pixels]"
    if len(widths) > 1 and widths[-1] > 1.5 * widths[-2]:
        nu[-1] = real.edges[-2] + widths[-2] / 2
        xlabel += f"; last point: all above {real.edges[-2]:g}"
    with style():
        fig, axes = new_figure(rows, len(channel_names))
        for c, name in enumerate(channel_names):
            ax = axes[0, c]
            for (label, color), peaks in zip(SETS, (real, gen)):
                _band(ax, nu, peaks.counts[:, c], color, label)
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_title(name)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("peaks per map per bin")
            if profile_real is not None:
                ax = axes[1, c]
                for (label, color), (r, profile) in zip(SETS, (profile_real, profile_gen)):
                    ax.plot(r, profile[c], color=color, label=label)
                ax.set_xlabel("distance from peak [pixel]")
                ax.set_ylabel(f"stacked profile{_bracket(units)}")
        axes[0, 0].legend()
    return fig


def minkowski_figure(real: Minkowski, gen: Minkowski, channel_names: Sequence[str], pixel_unit: str) -> Figure:
    """Minkowski functionals V0 (area), V1 (boundary length), V2 (Euler characteristic) per unit area."""
    labels = ("V0 (area fraction)", f"V1 [1/{pixel_unit}]", f"V2 [1/{pixel_unit}²]")
    with style():
        fig, axes = new_figure(len(channel_names), 3)
        for c, name in enumerate(channel_names):
            for col, (field, label) in enumerate(zip(("v0", "v1", "v2"), labels)):
                ax = axes[c, col]
                for (set_label, color), mink in zip(SETS, (real, gen)):
                    _band(ax, mink.thresholds, getattr(mink, field)[:, c], color, set_label)
                ax.set_xlabel("threshold ν [σ of real pixels]")
                ax.set_ylabel(label)
                ax.set_title(name)
        axes[0, 0].legend()
    return fig


def clusters_figure(real: Clusters, gen: Clusters, channel_names: Sequence[str]) -> Figure:
    """Clusters (connected regions above threshold) per map against threshold, one panel per channel,
    and the pooled cluster-size distribution at the middle threshold (last panel)."""
    with style():
        fig, axes = new_figure(1, len(channel_names) + 1)
        for c, name in enumerate(channel_names):
            ax = axes[0, c]
            for (label, color), clus in zip(SETS, (real, gen)):
                _band(ax, clus.threshold, clus.count[:, c], color, label)
            ax.set_title(name)
            ax.set_xlabel("threshold ν [σ of real pixels]")
            ax.set_ylabel("clusters per map")
        axes[0, 0].legend()
        ax = axes[0, -1]
        t = len(real.threshold) // 2
        sizes = [np.asarray(clus.sizes[t], dtype=float) for clus in (real, gen)]
        largest = max((s.max() for s in sizes if s.size), default=1.0)
        edges = np.unique(np.round(np.geomspace(1, max(largest, 2.0) + 1, 25)))
        for (label, color), s in zip(SETS, sizes):
            if s.size:
                ax.hist(s, bins=edges, density=True, histtype="step", color=color, label=label, linewidth=1.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"sizes at ν = {real.threshold[t]:.3g}")
        ax.set_xlabel("cluster size [pixel]")
        ax.set_ylabel("PDF [1/pixel]")
    return fig


def _failure(m: Morphology, channel: int) -> str:
    return f"{100 * np.mean(m.failed[:, channel]):.1f}%"


def morphology_figure(real: Morphology, gen: Morphology, channel: int, channel_name: str,
                      length_unit: str) -> Figure:
    """Histograms of galaxy shape measurements (ellipticity, sizes, Sérsic index) in one channel."""
    with style():
        fig, axes = new_figure(1, len(MORPHOLOGY_QUANTITIES))
        for ax, (field, label, power) in zip(axes[0], MORPHOLOGY_QUANTITIES):
            values = [getattr(m, field)[:, channel] for m in (real, gen)]
            values = [v[np.isfinite(v)] for v in values]
            pooled = np.concatenate(values)
            if pooled.size:
                edges = np.histogram_bin_edges(pooled, bins=30)
                for (set_label, color), v in zip(SETS, values):
                    ax.hist(v, bins=edges, density=True, histtype="step", color=color, label=set_label,
                            linewidth=1.5)
            ax.set_xlabel(f"{label}{_bracket(_length(length_unit, power))}")
            ax.set_ylabel("PDF")
        axes[0, 0].legend()
        fig.suptitle(f"{channel_name}: measurement failed for {_failure(real, channel)} of real, "
                     f"{_failure(gen, channel)} of generated")
    return fig


def binned_intervals(values: np.ndarray, condition: np.ndarray, edges: np.ndarray,
                     level: float = 0.95) -> np.ndarray:
    """Central ``level`` interval and median of ``values`` [N] in bins of ``condition`` [N].

    Bins are ``[e_b, e_b+1)``, the last one closed; condition values outside the edges are left out.
    Returns ``[B, 3]`` (low, median, high) for the ``B = len(edges) - 1`` bins; NaN rows where a bin holds
    fewer than two finite values. NaN values (failed measurements) are ignored.
    """
    from astrogen.stats.redshift import bin_index

    which = bin_index(condition, edges)
    quantiles = [(1 - level) / 2, 0.5, (1 + level) / 2]
    out = np.full((len(edges) - 1, 3), np.nan)
    for b in range(len(edges) - 1):  # a handful of bins
        v = values[(which == b) & np.isfinite(values)]
        if v.size >= 2:
            out[b] = np.quantile(v, quantiles)
    return out


def quantile_edges(condition: np.ndarray, n_bins: int = 5) -> np.ndarray:
    """Edges of ``n_bins`` bins holding about equal numbers of ``condition`` values (fewer if values repeat)."""
    edges = np.unique(np.quantile(condition, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.array([condition.min() - 0.5, condition.max() + 0.5])
    return edges


def interval_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray, bool]], real_condition: np.ndarray,
                    gen_condition: np.ndarray, condition_label: str, edges: np.ndarray, title: str,
                    ncols: int | None = None) -> Figure:
    """Median and 95% interval of per-object quantities in bins of a condition, real beside generated.

    ``panels``: (axis label, real values [N_real], generated values [N_gen], log y axis) per panel; the
    condition arrays give each object's bin. Points sit at the bin centres (real left, generated right).
    """
    centres = 0.5 * (edges[:-1] + edges[1:])
    offset = 0.08 * np.diff(edges)
    ncols = ncols or len(panels)
    with style():
        fig, axes = new_figure(-(-len(panels) // ncols), ncols)
        for ax, (label, real_values, gen_values, log) in zip(axes.flat, panels):
            for sign, (set_label, color), v, cond in zip((-1, 1), SETS, (real_values, gen_values),
                                                         (real_condition, gen_condition)):
                low, mid, high = binned_intervals(v, cond, edges).T
                ax.errorbar(centres + sign * offset, mid, yerr=[mid - low, high - mid], fmt="o", color=color,
                            label=set_label, capsize=3, markersize=4)
            for edge in edges:
                ax.axvline(edge, color="0.85", linewidth=0.8, zorder=0)
            pooled = np.concatenate([real_values, gen_values])
            pooled = pooled[np.isfinite(pooled) & (pooled != 0)]
            if log and pooled.size:
                if np.all(pooled > 0):
                    ax.set_yscale("log")
                else:  # faint, noisy stamps have negative fluxes: linear within the noise, whose scale they show
                    ax.set_yscale("symlog", linthresh=float(np.quantile(-pooled[pooled < 0], 0.9)))
            ax.set_xlabel(condition_label)
            ax.set_ylabel(label)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        axes.flat[0].legend()
        fig.suptitle(title)
    return fig


def morphology_interval_figure(real: Morphology, gen: Morphology, real_condition: np.ndarray,
                               gen_condition: np.ndarray, condition_label: str, channel: int, channel_name: str,
                               length_unit: str, n_bins: int = 5, edges: np.ndarray | None = None) -> Figure:
    """Median and 95% interval of each shape measurement in bins of a condition parameter.

    Bins are ``edges`` where given, else ``n_bins`` quantiles of the real set's condition values (so each real
    bin holds about as many objects).
    """
    edges = quantile_edges(real_condition, n_bins) if edges is None else np.asarray(edges, dtype=float)
    panels = [(f"{label}{_bracket(_length(length_unit, power))}", getattr(real, field)[:, channel],
               getattr(gen, field)[:, channel], field == "area") for field, label, power in MORPHOLOGY_QUANTITIES]
    return interval_figure(panels, real_condition, gen_condition, condition_label, edges,
                           f"{channel_name}: median and 95% interval per {condition_label} bin")


def photometry_interval_figure(real: Photometry, gen: Photometry, real_condition: np.ndarray,
                               gen_condition: np.ndarray, condition_label: str, channel_names: Sequence[str],
                               flux_unit: str, edges: np.ndarray) -> Figure:
    """Median and 95% interval of the flux in every band and of adjacent-band colours, per condition bin."""
    panels = [(f"flux {name}", real.flux[:, c], gen.flux[:, c], True) for c, name in enumerate(channel_names)]
    panels += [(f"{a} - {b} [mag]", real.colour[:, c], gen.colour[:, c], False)
               for c, (a, b) in enumerate(pairwise(channel_names))]
    return interval_figure(panels, real_condition, gen_condition, condition_label, edges,
                           f"stamp photometry: median and 95% interval per {condition_label} bin; flux summed over "
                           f"the stamp{_bracket(flux_unit)}, colours in mag",
                           ncols=max(len(channel_names), 1))


def photoz_trend_figure(real: BinnedPhotoz, gen: BinnedPhotoz, condition_label: str) -> Figure:
    """Photo-z metrics of a redshift judge against the bin of ``condition_label``, real and generated.

    One panel per metric (`astrogen.stats.redshift.METRICS`); points at the bin centres with their bootstrap
    errors, horizontal bars spanning the bin; empty bins are left out.
    """
    from astrogen.stats.redshift import METRICS

    edges = real.edges
    centres, half = 0.5 * (edges[:-1] + edges[1:]), 0.5 * np.diff(edges)
    with style():
        fig, axes = new_figure(1, len(METRICS))
        for ax, name in zip(axes[0], METRICS):
            for sign, (set_label, color), s in zip((-1, 1), SETS, (real, gen)):
                ax.errorbar(centres + sign * 0.08 * half, s.value[name], xerr=half, yerr=s.error[name], fmt="o",
                            color=color, label=set_label, capsize=3, markersize=4, elinewidth=1)
            if name == "bias":
                ax.axhline(0, color="0.4", linewidth=0.8)
            ax.set_xlabel(condition_label)
            ax.set_ylabel(PHOTOZ_LABELS[name])
        axes[0, 0].legend()
        fig.suptitle(f"redshift judge per {condition_label} bin: value ± bootstrap error "
                     f"({real.n_bootstrap} resamples)")
    return fig


def photoz_scatter_figure(real: tuple[np.ndarray, np.ndarray], gen: tuple[np.ndarray, np.ndarray],
                          edges: np.ndarray) -> Figure:
    """Predicted against true redshift, real and generated side by side, with the outlier limits.

    ``real``, ``gen``: (z_true, z_pred) arrays; dashed lines: the 1:1 line and ``|dz| = 0.15``; grey lines: bin edges.
    """
    from astrogen.stats.redshift import OUTLIER_DZ

    z_all = np.concatenate([*real, *gen, edges])
    lo, hi = z_all.min(), z_all.max()
    line = np.linspace(lo, hi, 50)
    with style():
        fig, axes = new_figure(1, 2, panel_size=(3.2, 3.2), sharex=True, sharey=True)
        for ax, (set_label, color), (z_true, z_pred) in zip(axes[0], SETS, (real, gen)):
            ax.scatter(z_true, z_pred, s=5, alpha=0.5, color=color, linewidths=0)
            ax.plot(line, line, color="k", linewidth=1)
            for sign in (-1, 1):
                ax.plot(line, line + sign * OUTLIER_DZ * (1 + line), color="k", linewidth=0.8, linestyle="--")
            for edge in edges:
                ax.axvline(edge, color="0.85", linewidth=0.8, zorder=0)
            ax.set(xlabel="true (conditioned) redshift", ylabel="judge's redshift", title=set_label)
    return fig
