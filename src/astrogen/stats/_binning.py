"""Compiled histogram binning: the bin of a value among sorted edges exactly as ``np.histogram`` bins it (last bin
closed), found by arithmetic for uniform edges and checked against the edges, so that a binary search runs only
where rounding puts the arithmetic guess in a neighbouring bin (or the edges are not uniform)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=False)
def bin_of(value, edges, per_unit):
    """Bin of ``value`` in ``edges`` [B + 1] as np.histogram, or -1 / B below / above them: the bin of uniform edges
    ``edges[0] + i / per_unit`` first (``per_unit = B / (edges[B] - edges[0])``, computed once by the caller),
    checked against ``edges`` (exact); a binary search if that misses."""
    b = edges.size - 1
    guess = (value - edges[0]) * per_unit
    k = int(guess) if 0 <= guess < b else 0
    if edges[k] <= value < edges[k + 1]:
        return k
    return b - 1 if value == edges[b] else np.searchsorted(edges, value, side="right") - 1


@njit(cache=True, nogil=True, fastmath=False)
def clipped_histograms(x, edges):
    """Counts [N, C, B] (int64) of the values ``x`` [N, C, P] in the bins ``edges`` [C, B + 1] of their channel, as
    np.histogram per map and channel, values below or above the edges counted in the first or last bin."""
    n, c, p = x.shape
    b = edges.shape[1] - 1
    counts = np.zeros((n, c, b), np.int64)
    for ch in range(c):
        e = edges[ch]
        per_unit = b / (e[b] - e[0])
        for m in range(n):
            for q in range(p):
                counts[m, ch, min(max(bin_of(x[m, ch, q], e, per_unit), 0), b - 1)] += 1
    return counts
