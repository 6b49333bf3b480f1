"""Compiled binning against np.histogram: values on every edge and one float either side, uniform and uneven edges."""

import numpy as np
import pytest

from astrogen.stats._binning import clipped_histograms


def _values_around(edges: np.ndarray, dtype) -> np.ndarray:
    """Every edge, its neighbouring floats of ``dtype``, points beyond both ends, and random values inside."""
    e = edges.astype(dtype)
    near = np.concatenate([e, np.nextafter(e, dtype(-np.inf)), np.nextafter(e, dtype(np.inf))])
    outside = np.array([edges[0] - 1, edges[-1] + 1], dtype)
    inside = np.random.default_rng(0).uniform(edges[0], edges[-1], 200).astype(dtype)
    return np.concatenate([near, outside, inside])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("edges", [np.linspace(-1.3, 2.9, 51), np.array([-1.0, -0.2, 0.0, 0.1, 3.0])])
def test_clipped_histograms_equal_np_histogram_with_the_ends_clipped(dtype, edges):
    values = _values_around(edges, dtype)
    maps = np.stack([values, values[::-1] * 0.5]).astype(dtype)[:, None]  # [2, 1, P]
    counts = clipped_histograms(maps, edges[None])
    for m in range(2):
        clipped = np.clip(maps[m, 0], edges[0], edges[-1])  # outside: counted in the first or last bin
        assert counts[m, 0].tolist() == np.histogram(clipped, edges)[0].tolist()


def test_clipped_histograms_use_each_channels_own_edges():
    maps = np.array([[[0.5, 1.5], [10.0, 30.0]]])  # [1, 2, 2]
    edges = np.array([[0.0, 1.0, 2.0], [0.0, 20.0, 40.0]])
    assert clipped_histograms(maps, edges).tolist() == [[[1, 1], [1, 1]]]
