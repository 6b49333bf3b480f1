"""One-point statistics: pixel histograms on shared bins, moments, KS and Wasserstein-1 distances, mean offset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrogen.errors import DataError
from astrogen.stats._common import as_maps


@dataclass
class Histogram:
    """Per-map pixel histograms. ``edges`` [B + 1] in field units; ``density`` [N, C, B] normalised so that
    ``sum(density * diff(edges)) = 1`` for pixels inside the edges (pixels outside lower the sum); ``log``
    whether the edges are logarithmically spaced."""

    edges: np.ndarray
    density: np.ndarray
    log: bool


def shared_edges(a, b, bins: int = 50, log: bool = False) -> np.ndarray:
    """Common histogram edges [bins + 1] spanning the pixel values of both sets ``a`` and ``b`` ([N, C, H, W]).

    ``log`` spaces them geometrically (needs strictly positive pixels; raises DataError otherwise).
    """
    a, b = as_maps(a, what="a"), as_maps(b, what="b")
    return range_edges(min(a.min(), b.min()), max(a.max(), b.max()), bins, log)


def range_edges(low: float, high: float, bins: int = 50, log: bool = False) -> np.ndarray:
    """Histogram edges [bins + 1] from pixel value ``low`` to ``high`` (field units), as `shared_edges` draws
    them; for sets streamed in batches, whose range is known from a first pass."""
    if log:
        if low <= 0:
            raise DataError(f"shared_edges: log bins need positive pixel values, the minimum is {low:g}")
        return np.geomspace(low, high * (1 + 1e-12), bins + 1) if high > low else np.geomspace(low, low * 2, bins + 1)
    if high == low:
        high = low + 1.0
    # Widen the top edge a hair so the maximum lands inside the last bin.
    return np.linspace(low, high + 1e-12 * (high - low), bins + 1)


def histograms(maps, edges) -> Histogram:
    """Normalised pixel histogram of every map and channel on the given edges (one vectorised bincount)."""
    x = as_maps(maps)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise DataError("histograms: edges must be a 1D increasing array with at least 2 values")
    n, c = x.shape[:2]
    n_bins = len(edges) - 1
    flat = x.reshape(n * c, -1)
    idx = np.searchsorted(edges, flat, side="right") - 1
    idx[flat == edges[-1]] = n_bins - 1
    # Out-of-range pixels go to an overflow slot per map, dropped below.
    idx = np.where((idx >= 0) & (idx < n_bins), idx, n_bins)
    offsets = np.arange(n * c)[:, None] * (n_bins + 1)
    counts = np.bincount((idx + offsets).ravel(), minlength=n * c * (n_bins + 1)).reshape(n * c, n_bins + 1)
    density = counts[:, :n_bins] / (flat.shape[1] * np.diff(edges))
    log = bool(edges[0] > 0 and np.allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0])) and n_bins > 1
               and not np.allclose(np.diff(edges), edges[1] - edges[0]))
    return Histogram(edges, density.reshape(n, c, n_bins), log)


def moments(maps) -> dict[str, np.ndarray]:
    """Mean, variance, skewness and excess kurtosis of the pixels of every map: each [N, C]."""
    x = as_maps(maps, float64=True)
    flat = x.reshape(*x.shape[:2], -1)
    mean = flat.mean(-1)
    centred = flat - mean[..., None]
    var = (centred**2).mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = (centred**3).mean(-1) / var**1.5
        kurt = (centred**4).mean(-1) / var**2 - 3.0
    return {"mean": mean, "variance": var, "skewness": skew, "kurtosis": kurt}


def _cdf_gap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDFs of two samples on their merged sorted values (SciPy's two-sample construction)."""
    a, b = np.sort(a), np.sort(b)
    values = np.sort(np.concatenate([a, b]))
    gap = np.searchsorted(a, values, side="right") / len(a) - np.searchsorted(b, values, side="right") / len(b)
    return values, gap


def _per_channel(a, b, reduce) -> np.ndarray:
    a, b = as_maps(a, what="a"), as_maps(b, what="b")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"the two sets have {a.shape[1]} and {b.shape[1]} channels")
    return np.array([reduce(*_cdf_gap(a[:, ch].ravel(), b[:, ch].ravel())) for ch in range(a.shape[1])])


def ks_statistic(a, b) -> np.ndarray:
    """Two-sample Kolmogorov-Smirnov statistic between all pixels of ``a`` and of ``b``, per channel: [C]."""
    return _per_channel(a, b, lambda values, gap: np.abs(gap).max())


def wasserstein1(a, b) -> np.ndarray:
    """Wasserstein-1 (earth mover's) distance between the pixel distributions of ``a`` and ``b`` per channel,
    in field units: [C]. Equals ``scipy.stats.wasserstein_distance`` on the flattened pixels."""
    return _per_channel(a, b, lambda values, gap: np.sum(np.abs(gap[:-1]) * np.diff(values)))


def mean_offset(real, generated) -> np.ndarray:
    """Bias of the generated set's mean: (mean of generated map means - mean of real map means) divided by the
    scatter (standard deviation) of the real map means, per channel: [C]. Needs at least 2 real maps."""
    real_means = as_maps(real, what="real").mean(axis=(-2, -1), dtype=np.float64)
    gen_means = as_maps(generated, what="generated").mean(axis=(-2, -1), dtype=np.float64)
    if len(real_means) < 2:
        raise DataError("mean_offset: need at least 2 real maps to estimate the scatter of the mean")
    if real_means.shape[1] != gen_means.shape[1]:
        raise DataError(f"mean_offset: {real_means.shape[1]} real channels vs {gen_means.shape[1]} generated")
    return (gen_means.mean(0) - real_means.mean(0)) / real_means.std(0, ddof=1)
