"""The scorecard: does a generated set reproduce the statistics of a real one, with bootstrap error bars?

Each statistic maps a set of maps to a per-map summary ``[N, C, B]`` (a histogram, P(k), peak counts, ...).
A distance compares the two sets' summaries through their means:

* ``ratio``  mean over bins and channels of |mean_gen / mean_real - 1| (power spectra);
* ``chi2``   chi^2 per bin of the mean difference, with the real set's covariance scaled to the error of a
  difference of means, Cov_real (1/N_real + 1/N_gen), Hartlap-corrected (peaks, Minkowski, clusters, bispectrum);
  "per bin" is per independent direction: the rank of that covariance (`_pseudo_inverse`);
* ``ks``     Kolmogorov-Smirnov distance between the set-mean binned pixel distributions, worst channel;
* ``offset`` |mean of generated map means - mean of real map means| / scatter of the real map means, worst channel;
* ``fraction`` the mean of the generated maps' summaries (out-of-range pixels), plus the fraction of pixels the
  sampler clamped (recorded in the generated set's provenance): clamped pixels count as out of range.

The error bar is the standard deviation of the distance over ``n_bootstrap`` resamples (with replacement) of both
sets; resampling only reweights the summary arrays (a [n_boot, N] weight matrix times [N, B]), no FFT is redone.
For chi2 the covariance stays that of the full real set. ``passed`` is ``distance <= tolerance``.
Every statistic sees the maps in float32 (float64 input is rounded once): its FFTs and sums then carry ~1e-6
relative round-off, far below the sampling scatter of any set the scorecard can judge.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrogen._io import atomic_write_text, jsonable
from astrogen.errors import ConfigError, DataError, UnknownNameError
from astrogen.stats._common import as_maps, batch_ndim

DEFAULT_STATS = ("pixel_pdf", "power", "peaks", "minkowski", "clusters", "bispectrum", "mean", "out_of_range")

# Pixels beyond the real set's range widened by this fraction of its width on each side are "out of range"
# (also the margin of `DiffusionModule.sample(clamp=True)`).
RANGE_MARGIN = 0.25

PDF_BINS = 50

# The peak_profile statistic stacks peaks at least this many sigma_real high.
PROFILE_NU = 2.0

# Peak heights nu = value / sigma_real are counted in bins of 0.5 from -2 to 6, plus one bin from 6 up to the
# highest pixel of either set, so that no peak above -2 goes uncounted (a 1-blob map's blob stands at nu ~ 7.6).
PEAK_NU_EDGES = np.linspace(-2.0, 6.0, 17)


@dataclass
class SetInfo:
    """Per-channel pixel range and scatter of a whole set, gathered in one streaming pass: [C] each."""

    min: np.ndarray
    max: np.ndarray
    std: np.ndarray
    n: int

    @classmethod
    def from_batches(cls, batches: Iterable[np.ndarray]) -> SetInfo:
        low = high = total = total_sq = None
        count, n = 0, 0
        for x in batches:
            axes = (0, *range(2, x.ndim))
            low = x.min(axes) if low is None else np.minimum(low, x.min(axes))
            high = x.max(axes) if high is None else np.maximum(high, x.max(axes))
            sums = x.sum(axes, dtype=np.float64), np.square(x, dtype=np.float64).sum(axes)
            total = sums[0] if total is None else total + sums[0]
            total_sq = sums[1] if total_sq is None else total_sq + sums[1]
            count += x.size // x.shape[1]
            n += len(x)
        mean = total / count
        return cls(low, high, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)), n)


@dataclass
class Statistic:
    """A scorecard entry: ``measure(maps, context)`` is the `astrogen.stats` result of one batch of maps and
    ``summarise(result)`` its ``(per-map summary [n, C, B], x [B] axis)``.

    ``context`` holds ``pixel_size``, ``periodic``, and ``real``/``generated`` `SetInfo`s so that both sets are
    summarised with the same bins and thresholds (taken from the real set). The report draws its figures from
    the same results, so each statistic is computed once.
    """

    measure: Callable[[np.ndarray, dict], Any]
    summarise: Callable[[Any], tuple[np.ndarray, np.ndarray]]
    distance: str
    tolerance: float
    description: str

    def summary(self, maps: np.ndarray, ctx: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per-map summary ``[n, C, B]`` of a batch of maps and its x axis ``[B]``."""
        return self.summarise(self.measure(maps, ctx))


def pdf_edges(ctx: dict) -> np.ndarray:
    """Per-channel edges ``[C, PDF_BINS + 1]`` of the pixel_pdf statistic, spanning both sets' pixel values."""
    real, gen = ctx["real"], ctx["generated"]
    low, high = np.minimum(real.min, gen.min), np.maximum(real.max, gen.max)
    high = np.where(high > low, high, low + 1.0)
    return np.stack([np.linspace(lo, hi, PDF_BINS + 1) for lo, hi in zip(low, high)])


def _pixel_pdf(maps, ctx):
    """(fraction of pixels per bin [n, C, PDF_BINS], the per-channel edges [C, PDF_BINS + 1])."""
    from astrogen.stats._binning import clipped_histograms

    edges = pdf_edges(ctx)  # per channel: channels may live on different scales
    pixels = np.ascontiguousarray(maps).reshape(*maps.shape[:2], -1)
    return clipped_histograms(pixels, edges) / pixels.shape[-1], edges


def _power(maps, ctx):
    from astrogen.stats.power import power_spectrum

    return power_spectrum(maps, pixel_size=ctx["pixel_size"])


def _bispectrum(maps, ctx):
    from astrogen.stats.bispectrum import bispectrum

    return bispectrum(maps, pixel_size=ctx["pixel_size"])


def peak_edges(ctx: dict) -> np.ndarray:
    """nu edges of the peaks statistic: `PEAK_NU_EDGES`, and a last bin up to both sets' highest pixel above 6."""
    real, gen = ctx["real"], ctx["generated"]
    top = float(np.max(np.maximum(real.max, gen.max) / real.std))
    return PEAK_NU_EDGES if top <= PEAK_NU_EDGES[-1] else np.append(PEAK_NU_EDGES, top)


def _peaks(maps, ctx):
    from astrogen.stats.peaks import peak_counts

    return peak_counts(maps, peak_edges(ctx), sigma=ctx["real"].std, pixel_size=ctx["pixel_size"],
                       periodic=ctx["periodic"])


def _minkowski(maps, ctx):
    from astrogen.stats.minkowski import minkowski_functionals

    return minkowski_functionals(maps, sigma=ctx["real"].std, pixel_size=ctx["pixel_size"], periodic=ctx["periodic"])


def _clusters(maps, ctx):
    from astrogen.stats.clusters import clusters

    return clusters(maps, sigma0=ctx["real"].std, periodic=ctx["periodic"])


def _peak_profile(maps, ctx):
    """Per-map stacked profile around peaks above `PROFILE_NU` sigma_real; cutouts a third of the map side."""
    from astrogen.stats.peaks import peak_profiles

    size = min(2 * (min(maps.shape[-2:]) // 6) + 1, 21)
    return peak_profiles(maps, size, threshold_nu=PROFILE_NU, sigma=ctx["real"].std, pixel_size=ctx["pixel_size"],
                         periodic=ctx["periodic"])


def _marginal_sums(maps, ctx):
    from astrogen.stats.peaks import marginal_sums

    return np.concatenate(marginal_sums(maps), axis=-1)


def _mean(maps, ctx):
    return maps.reshape(*maps.shape[:2], -1).mean(-1, dtype=np.float64)[..., None]


def _out_of_range(maps, ctx):
    """Fraction of each map's pixels outside the real set's range widened by `RANGE_MARGIN`: [n, 1, 1]."""
    real = ctx["real"]
    margin = RANGE_MARGIN * (real.max - real.min)
    low, high = (real.min - margin)[:, None, None], (real.max + margin)[:, None, None]
    outside = (maps < low) | (maps > high) | ~np.isfinite(maps)
    return outside.reshape(len(maps), -1).mean(-1)[:, None, None]


REGISTRY: dict[str, Statistic] = {
    "pixel_pdf": Statistic(_pixel_pdf, lambda r: (r[0], 0.5 * (r[1][-1, 1:] + r[1][-1, :-1])), "ks", 0.05,
                           "KS distance of the binned pixel PDFs"),
    "power": Statistic(_power, lambda r: (r.power, r.k), "ratio", 0.10, "mean |P_gen / P_real - 1| over k bins"),
    "bispectrum": Statistic(_bispectrum, lambda r: (r.bispectrum, np.arange(len(r.k1), dtype=np.float64)), "chi2",
                            3.0, "chi^2 / bin of B(k1, k2, k3) on the default triangles"),
    "peaks": Statistic(_peaks, lambda r: (r.counts, r.nu), "chi2", 3.0,
                       "chi^2 / bin of peak counts per nu = value / sigma_real (bins of 0.5 from -2 to 6, one above)"),
    "minkowski": Statistic(_minkowski, lambda r: (np.concatenate([r.v0, r.v1, r.v2], -1), np.tile(r.thresholds, 3)),
                           "chi2", 3.0, "chi^2 / bin of Minkowski functionals V0, V1, V2"),
    "clusters": Statistic(_clusters, lambda r: (np.concatenate([r.count, r.skeleton_length], -1),
                                                np.tile(r.threshold, 2)),
                          "chi2", 3.0, "chi^2 / bin of cluster counts and skeleton lengths"),
    "peak_profile": Statistic(_peak_profile, lambda r: (r[1], r[0]), "chi2", 3.0,
                              f"chi^2 / bin of the stacked radial profile of peaks above {PROFILE_NU:g} sigma_real"),
    "marginal_sums": Statistic(_marginal_sums, lambda r: (r, np.arange(r.shape[-1], dtype=np.float64)), "chi2", 3.0,
                               "chi^2 / bin of the mean row sums and column sums"),
    "mean": Statistic(_mean, lambda r: (r, np.zeros(1)), "offset", 0.5,
                      "|mean offset| in units of the real map-mean scatter"),
    "out_of_range": Statistic(_out_of_range, lambda r: (r, np.zeros(1)), "fraction", 0.001,
                              f"fraction of generated pixels beyond the real range widened by {RANGE_MARGIN:.0%} of "
                              "its width, or clamped by the sampler"),
}


@dataclass
class Row:
    """One verdict: the distance of one statistic, its bootstrap error and 95% interval (``detail``)."""

    statistic: str
    distance: float
    error: float
    tolerance: float
    passed: bool
    detail: dict = field(default_factory=dict)


@dataclass
class Scorecard:
    """All verdicts of a comparison plus the provenance of the two inputs."""

    rows: list[Row]
    provenance: dict

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def to_dict(self) -> dict:
        return {"rows": [asdict(row) for row in self.rows], "provenance": self.provenance, "passed": self.passed}

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``scorecard.json`` atomically (temporary file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(jsonable(self.to_dict()), indent=1))
        return path

    def table(self):
        """A rich Table of the rows (statistic, distance +- error, tolerance, verdict)."""
        from rich.table import Table

        table = Table(title="astrogen scorecard")
        for column in ("statistic", "distance", "tolerance", "verdict"):
            table.add_column(column)
        for row in self.rows:
            verdict = "[green]pass[/green]" if row.passed else "[red]FAIL[/red]"
            table.add_row(row.statistic, f"{row.distance:.4g} ± {row.error:.2g}", f"{row.tolerance:g}", verdict)
        return table


def _pseudo_inverse(cov: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, int]:
    """``(pseudo-inverse, rank)`` of a covariance, scale-free and positive semi-definite.

    The eigen-decomposition is of the correlation matrix (unit diagonal), so bins on very different scales (a
    bispectrum spans decades) keep their directions; eigenvalues below ``rcond`` times the largest, including
    round-off ones of either sign, are dropped. Directions in which the real set does not vary (e.g. the total
    of row sums when every map has the same total) would otherwise get a huge or negative weight.
    """
    scale = np.sqrt(np.diag(cov))
    scale = np.where(scale > 0, scale, 1.0)  # a bin that varies in neither set: its zero row is dropped below
    values, vectors = np.linalg.eigh(cov / np.outer(scale, scale))
    keep = values > rcond * values.max()
    inverse = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return inverse / np.outer(scale, scale), max(int(keep.sum()), 1)


def _distances(kind: str, real: np.ndarray, gen: np.ndarray, w_real: np.ndarray, w_gen: np.ndarray) -> np.ndarray:
    """Distance for every row of the weight matrices ([K, N], rows sum to 1): [K]."""
    n_real, n_gen = len(real), len(gen)
    shape = real.shape[1:]
    real, gen = real.reshape(n_real, -1), gen.reshape(n_gen, -1)
    m_real, m_gen = w_real @ real, w_gen @ gen  # [K, P]
    if kind == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(m_gen / m_real - 1).mean(-1)
    if kind == "ks":
        cdf = np.cumsum((m_gen - m_real).reshape(len(m_real), *shape), axis=-1)
        return np.abs(cdf).max(axis=(-2, -1))
    if kind == "offset":
        scatter = np.sqrt(np.maximum(w_real @ real**2 - m_real**2, 0.0) * n_real / max(n_real - 1, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.abs(m_gen - m_real) / scatter).max(-1)
    if kind == "fraction":
        return (w_gen @ gen).mean(-1)
    if kind == "chi2":
        var_real, var_gen = real.var(0, ddof=1), gen.var(0, ddof=1)
        mean_real, mean_gen = real.mean(0), gen.mean(0)
        # Bins where neither set varies and the means agree carry no information (e.g. never-reached peak heights).
        use = (var_real > 0) | (var_gen > 0) | (mean_real != mean_gen)
        p = int(use.sum())
        if p == 0:
            return np.zeros(len(m_real))
        cov = np.atleast_2d(np.cov(real[:, use], rowvar=False)) * (1 / n_real + 1 / n_gen)
        # A bin constant in the real set but not in the generated one gets the generated variance instead.
        cov += np.diag(np.where(var_real[use] > 0, 0.0, var_gen[use] / n_gen))
        precision, p = _pseudo_inverse(cov)
        if n_real > p + 2:  # Hartlap et al. 2007: unbiased inverse of an estimated covariance
            precision *= (n_real - p - 2) / (n_real - 1)
        diff = (m_gen - m_real)[:, use]
        return np.einsum("kp,pq,kq->k", diff, precision, diff) / p
    raise ConfigError(f"unknown distance kind {kind!r}")


def _score(name: str, stat: Statistic, real: np.ndarray, gen: np.ndarray, tolerance: float, n_bootstrap: int,
           rng: np.random.Generator, x: np.ndarray, added: float = 0.0) -> Row:
    if len(real) < 2 or len(gen) < 2:  # one map has no scatter: its bootstrap error bar would be meaningless
        raise DataError(f"scorecard {name}: need at least 2 real and 2 generated maps, got {len(real)} and {len(gen)}")

    def weights(n: int) -> np.ndarray:
        draws = rng.integers(0, n, size=(n_bootstrap, n))
        offsets = np.arange(n_bootstrap)[:, None] * n
        counts = np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n).reshape(n_bootstrap, n)
        return np.concatenate([np.full((1, n), 1.0), counts]) / n

    dist = _distances(stat.distance, real, gen, weights(len(real)), weights(len(gen))) + added
    boot = dist[1:]
    finite = boot[np.isfinite(boot)]
    error = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
    interval = np.percentile(finite, [2.5, 97.5]) if len(finite) else np.array([np.nan, np.nan])
    detail = {"distance_kind": stat.distance, "description": stat.description, "interval95": interval,
              "n_real": len(real), "n_generated": len(gen), "x": x,
              "real_mean": real.mean(0), "generated_mean": gen.mean(0)}
    return Row(name, float(dist[0]), error, float(tolerance), bool(dist[0] <= tolerance), detail)


def _summaries(real_batches, gen_batches, names, pixel_size, periodic, observe=None):
    """Two passes over each set: set-wide ranges and scatter, then every statistic of each batch in turn."""
    ctx = {"pixel_size": float(pixel_size), "periodic": bool(periodic),
           "real": SetInfo.from_batches(real_batches), "generated": SetInfo.from_batches(gen_batches)}
    parts = {name: ([], []) for name in names}
    axes = {}
    for which, batches in (("real", real_batches), ("generated", gen_batches)):
        for batch in batches:
            # Single precision throughout: 2-3x faster, and 1e-6 relative round-off is far below sample variance.
            maps = batch.astype(np.float32, copy=False)
            results = {name: REGISTRY[name].measure(maps, ctx) for name in names}
            for name, result in results.items():
                summary, x = REGISTRY[name].summarise(result)
                parts[name][which == "generated"].append(summary)
                axes.setdefault(name, x)
            if observe is not None:
                observe(which, batch, results, ctx)
    return {name: (np.concatenate(real), np.concatenate(gen), axes[name]) for name, (real, gen) in parts.items()}, ctx


def _check_names(stats: Sequence[str], tolerances: dict | None) -> dict[str, float]:
    for name in stats:
        if name not in REGISTRY:
            raise UnknownNameError(f"unknown statistic {name!r}; known: {', '.join(REGISTRY)}")
    tol = {name: stat.tolerance for name, stat in REGISTRY.items()}
    for name, value in (tolerances or {}).items():
        if name not in REGISTRY:
            raise ConfigError(f"tolerance for unknown statistic {name!r}; known: {', '.join(REGISTRY)}")
        tol[name] = float(value)
    return tol


def compare_batches(real_batches: Iterable[np.ndarray], generated_batches: Iterable[np.ndarray],
                    stats: Sequence[str] = DEFAULT_STATS, tolerances: dict[str, float] | None = None,
                    pixel_size: float = 1.0, n_bootstrap: int = 200, seed: int = 0, periodic: bool = True,
                    condition=None, condition_bins=None, provenance: dict | None = None,
                    observe: Callable[[str, np.ndarray, dict, dict], None] | None = None,
                    clamped_fraction: float = 0.0) -> Scorecard:
    """`compare` on sets streamed in batches: only one batch of maps and the per-map summaries are in memory.

    Parameters
    ----------
    real_batches, generated_batches : re-iterables of ``[n, C, H, W]`` float batches (e.g. `FileBatches`),
        read twice: once for the set-wide pixel ranges and scatter (`SetInfo`), once for the statistics.
    observe : optional ``observe(which, batch, results, context)`` called on every batch of the second pass,
        ``which`` being "real" or "generated", with the `Statistic.measure` results ``{name: result}`` of all
        ``stats`` on it and the context of `Statistic` (the report draws its figures from these).
    clamped_fraction : fraction of the generated pixels that the sampler clamped (from the generated set's
        provenance), added to the out_of_range distance.
    Other parameters : as in `compare`.
    """
    if n_bootstrap < 2:
        raise ConfigError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
    tol = _check_names(stats, tolerances)
    summaries, ctx = _summaries(real_batches, generated_batches, stats, pixel_size, periodic, observe)
    rng = np.random.default_rng(seed)
    groups = [("", None, None)]
    if condition is not None:
        c_real, c_gen = (np.asarray(c, dtype=np.float64).reshape(-1) for c in condition)
        n_real, n_gen = ctx["real"].n, ctx["generated"].n
        if (len(c_real), len(c_gen)) != (n_real, n_gen):
            raise DataError(f"condition: {len(c_real)} and {len(c_gen)} values for {n_real} and {n_gen} maps")
        edges = np.asarray(condition_bins if condition_bins is not None
                           else np.quantile(c_real, np.linspace(0, 1, 5)), dtype=np.float64)
        last = len(edges) - 2
        for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
            # Half-open bins, the last one closed so the maximum of the real condition is included.
            def inside(c, lo=lo, hi=hi, closed=i == last):
                return (c >= lo) & ((c <= hi) if closed else (c < hi))
            groups.append((f"[{lo:g}, {hi:g}{']' if i == last else ')'}", inside(c_real), inside(c_gen)))
    rows = []
    for name, (real, gen, x) in summaries.items():
        for label, sel_real, sel_gen in groups:
            if sel_real is not None and (sel_real.sum() < 2 or sel_gen.sum() < 1):
                continue
            r = real if sel_real is None else real[sel_real]
            g = gen if sel_gen is None else gen[sel_gen]
            added = clamped_fraction if name == "out_of_range" else 0.0
            row = _score(name if not label else f"{name} {label}", REGISTRY[name], r, g, tol[name], n_bootstrap,
                         rng, x, added)
            if name == "out_of_range":
                row.detail["clamped_fraction"] = clamped_fraction
            if label:
                row.detail["condition_bin"] = label
            rows.append(row)
    provenance = {**(provenance or {}), "pixel_size": float(pixel_size), "periodic": bool(periodic),
                  "n_bootstrap": int(n_bootstrap), "seed": seed}
    return Scorecard(rows, provenance)


def compare(real, generated, stats: Sequence[str] = DEFAULT_STATS, tolerances: dict[str, float] | None = None,
            pixel_size: float = 1.0, n_bootstrap: int = 200, seed: int = 0, periodic: bool = True,
            condition=None, condition_bins=None, provenance: dict | None = None,
            clamped_fraction: float = 0.0) -> Scorecard:
    """Score a generated set of maps against a real one, statistic by statistic, with bootstrap error bars.

    Parameters
    ----------
    real, generated : [N, C, H, W] maps in the same physical units (NumPy or torch).
    stats : names from `REGISTRY` (pixel_pdf, power, peaks, minkowski, clusters, bispectrum, mean, out_of_range,
        and the non-default peak_profile and marginal_sums).
    tolerances : {name: tolerance} overriding the defaults (`REGISTRY[name].tolerance`).
    pixel_size : side of a pixel in physical units (k of the spectra in 1/<pixel unit>).
    n_bootstrap : number of bootstrap resamples of both sets for the error bars.
    seed : seed of the bootstrap.
    periodic : whether the maps wrap around (peaks, Minkowski and clusters use it; spectra assume it).
    condition : optional pair (real values [N_real], generated values [N_gen]) of a conditioning parameter,
        e.g. redshift; adds one row per statistic and bin of the condition, named ``"power [0.5, 1)"``.
    condition_bins : edges of the condition bins (default: quartiles of the real values).
    provenance : extra entries recorded in the scorecard (input files, command line, ...).
    clamped_fraction : fraction of the generated pixels the sampler clamped; counts as out of range.
    """
    real = as_maps(real, batch_ndim(real), what="real")
    generated = as_maps(generated, batch_ndim(generated), what="generated")
    if real.shape[1:] != generated.shape[1:]:
        raise DataError(f"real maps {real.shape[1:]} and generated maps {generated.shape[1:]} differ in shape")
    provenance = {"real_shape": list(real.shape), "generated_shape": list(generated.shape), **(provenance or {})}
    return compare_batches([real], [generated], stats, tolerances, pixel_size, n_bootstrap, seed, periodic,
                           condition, condition_bins, provenance, clamped_fraction=clamped_fraction)


class FileBatches:
    """Re-iterable image batches ``[n, C, H, W]`` of a FieldSet, in the file's dtype (no float64 copy: the
    statistics see float32); each iteration reads the file again.

    Parameters
    ----------
    fieldset : an open `astrogen.data.FieldSet`.
    batch_size : maps per batch.
    index : optional increasing sample indices to read (a subset), ``batch_size`` of them at a time;
        default all samples.
    """

    def __init__(self, fieldset, batch_size: int = 256, index: np.ndarray | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.fieldset, self.batch_size = fieldset, batch_size
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        if self.index is not None and np.any(np.diff(self.index) <= 0):
            raise DataError(f"{fieldset.path}: subset indices must be increasing")

    def __len__(self) -> int:
        """Number of batches."""
        n = len(self.fieldset) if self.index is None else len(self.index)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.index is None:
            for batch in self.fieldset.batches(self.batch_size):
                yield batch.images
            return
        for start in range(0, len(self.index), self.batch_size):
            rows = self.index[start : start + self.batch_size]
            # A run of consecutive indices is read as a slice: h5py's point selection is much slower.
            contiguous = rows[-1] - rows[0] + 1 == len(rows)
            yield self.fieldset[slice(rows[0], rows[-1] + 1) if contiguous else rows].images


def clamped_fraction(fieldset) -> float:
    """Fraction of a generated FieldSet's pixels that its sampler clamped (``provenance["clamp"]``), else 0."""
    clamp = (fieldset.meta.provenance or {}).get("clamp") or {}
    return float(clamp.get("clamped_fraction", 0.0))


def compare_files(real_path: str | os.PathLike, gen_path: str | os.PathLike, stats: Sequence[str] = DEFAULT_STATS,
                  tolerances: dict[str, float] | None = None, n_bootstrap: int = 200, seed: int = 0,
                  batch_size: int = 256, condition: str | None = None, condition_bins=None) -> Scorecard:
    """`compare` two FieldSet files read in batches; pixel_size and periodic come from the real file's attrs.

    ``condition`` names a parameter column present in both files (e.g. ``"redshift"``). Raises DataError when
    the files differ in channels, sample shape, units or pixel size.
    """
    from astrogen.data import FieldSet

    with FieldSet(real_path) as real, FieldSet(gen_path) as gen:
        for what, a, b in (("channels", real.channels, gen.channels), ("sample shape", real.sample_shape,
                           gen.sample_shape), ("units", real.meta.units, gen.meta.units),
                           ("pixel size", (real.meta.pixel_size, real.meta.pixel_unit),
                            (gen.meta.pixel_size, gen.meta.pixel_unit))):
            if a != b:
                raise DataError(f"{real.path} and {gen.path} are not comparable: {what} {a} vs {b}")
        cond = None
        if condition is not None:
            missing = [f.path for f in (real, gen) if condition not in f.params]
            if missing:
                raise DataError(f"condition {condition!r}: no such parameter in {', '.join(map(str, missing))}")
            cond = (real.params[condition], gen.params[condition])
        provenance = {"real": str(real.path), "generated": str(gen.path), "channels": real.channels,
                      "units": real.meta.units, "pixel_unit": real.meta.pixel_unit, "real_n": len(real),
                      "generated_n": len(gen), "sample_shape": list(real.sample_shape),
                      "real_simulator": real.meta.simulator, "condition": condition}
        return compare_batches(FileBatches(real, batch_size), FileBatches(gen, batch_size), stats, tolerances,
                               real.meta.pixel_size or 1.0, n_bootstrap, seed, real.meta.periodic, cond,
                               condition_bins, provenance, clamped_fraction=clamped_fraction(gen))
