import numpy as np
import pytest
import torch
from scipy import ndimage

from astrogen.errors import DataError
from astrogen.stats.peaks import FWHM_TO_SIGMA, find_peaks, marginal_sums, peak_counts, peak_profiles, stacked_profile

SIZE = 64


def blobs(centres, amplitude=1.0, fwhm=5.0, size=SIZE, periodic=False):
    """Sum of circular Gaussian blobs at (row, col) centres (wrapped around the edges when periodic)."""
    rows, cols = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size))
    s = fwhm * FWHM_TO_SIGMA
    for r0, c0 in centres:
        dr, dc = rows - r0, cols - c0
        if periodic:
            dr, dc = (dr + size / 2) % size - size / 2, (dc + size / 2) % size - size / 2
        image += amplitude * np.exp(-(dr**2 + dc**2) / (2 * s**2))
    return image


PLANTED = [(10, 12), (30, 50), (50, 20), (45, 45), (20, 33)]


def test_finds_planted_peaks_exactly():
    mask = find_peaks(torch.from_numpy(blobs(PLANTED)))
    assert mask.shape == (1, 1, SIZE, SIZE) and mask.dtype == bool
    assert sorted(zip(*np.nonzero(mask[0, 0]))) == sorted(PLANTED)


def test_periodic_peak_across_the_corner():
    image = blobs([(0, 0)], periodic=True)
    assert list(zip(*np.nonzero(find_peaks(image, periodic=True)[0, 0]))) == [(0, 0)]
    # without wrap the three other corners are edge maxima of the wrapped blob
    assert find_peaks(image, periodic=False).sum() == 4


def test_beam_matched_filter_suppresses_noise_peaks():
    rng = np.random.default_rng(1)
    image = blobs(PLANTED, amplitude=4.0) + rng.normal(size=(SIZE, SIZE))
    edges = [1.0, 100.0]  # peaks higher than 1 (field units, sigma=1)
    raw = peak_counts(image, nu_edges=edges, sigma=1.0).counts.sum()
    smooth = peak_counts(image, nu_edges=edges, sigma=1.0, beam_fwhm=2.5, pixel_size=0.5)  # 5 pixels
    assert raw > 100
    assert smooth.counts.sum() == len(PLANTED)
    found = np.argwhere(find_peaks(image, beam_fwhm=2.5, pixel_size=0.5)[0, 0] & (image > 1.0))
    for r0, c0 in PLANTED:
        assert np.abs(found - [r0, c0]).max(axis=1).min() <= 1


def test_peak_counts_match_a_per_map_histogram():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(3, 2, 16, 16)) * np.array([1.0, 5.0])[None, :, None, None]
    result = peak_counts(maps, periodic=True)
    sigma = maps.std(axis=(0, 2, 3))
    np.testing.assert_allclose(result.sigma, sigma)
    mask = find_peaks(maps, periodic=True)
    for n in range(3):
        for c in range(2):
            expected, _ = np.histogram(maps[n, c][mask[n, c]] / sigma[c], bins=result.edges)
            np.testing.assert_array_equal(result.counts[n, c], expected)
    np.testing.assert_allclose(result.nu, np.linspace(-1.75, 5.75, 16))


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_maxima_match_a_maximum_filter(periodic, dtype):
    # An independent reference: above the maximum filter over the 8-neighbour ring (wrapped, or -inf outside).
    # Integer maps have many ties (not peaks); in 1- and 2-pixel-wide maps wrapped neighbours repeat or are the
    # pixel itself. The fused counting kernel agrees with a histogram of the reference peaks.
    ring = np.ones((1, 1, 3, 3), dtype=bool)
    ring[..., 1, 1] = False
    mode = {"mode": "wrap"} if periodic else {"mode": "constant", "cval": -np.inf}
    rng = np.random.default_rng(5)
    edges = np.array([0.0, 0.5, 1.0, 2.0])
    for shape in [(1, 1), (1, 5), (5, 1), (2, 3), (7, 64)]:
        maps = rng.integers(0, 3, size=(3, 2, *shape)).astype(dtype)
        maps[0, 1] = rng.normal(size=shape)
        expected = maps > ndimage.maximum_filter(maps, footprint=ring, **mode)
        np.testing.assert_array_equal(find_peaks(maps, periodic=periodic), expected)
        counts = peak_counts(maps, nu_edges=edges, sigma=[1.0, 0.5], periodic=periodic).counts
        for n in range(3):
            for c in range(2):
                hist, _ = np.histogram(maps[n, c][expected[n, c]] / [1.0, 0.5][c], bins=edges)
                np.testing.assert_array_equal(counts[n, c], hist)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("edges", [np.linspace(-2, 6, 17), np.linspace(0, 1, 11), np.array([-1.0, 0.1, 0.2, 3.0])])
def test_peak_counts_bin_edge_ties_as_np_histogram(edges, dtype):
    # One peak per 3x3 map, its height on every edge and one float either side of it, and outside the edges: the
    # kernel's arithmetic bin of uniform edges (checked against the edges) must give np.histogram's bins exactly,
    # the last edge counted in the last bin.
    nu = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), edges[[0, -1]] + [-1, 1]])
    maps = np.full((len(nu), 1, 3, 3), -1e9, dtype=dtype)
    maps[:, 0, 1, 1] = nu * 0.5
    expected, _ = np.histogram(maps[:, 0, 1, 1].astype(np.float64) / 0.5, bins=edges)
    for periodic in (True, False):
        counts = peak_counts(maps, nu_edges=edges, sigma=0.5, periodic=periodic).counts
        assert counts.sum() == expected.sum() < len(nu)
        np.testing.assert_array_equal(counts.sum(axis=(0, 1)), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_maps_raise_the_maps_error(bad, dtype):
    # The peak kernels check finiteness in their own pass (no separate check first): the same error as as_maps.
    maps = np.random.default_rng(6).normal(size=(3, 2, 16, 16)).astype(dtype)
    maps[2, 1, 15, 0] = bad
    calls = [lambda: peak_counts(maps, sigma=1.0), lambda: peak_counts(maps), lambda: find_peaks(maps),
             lambda: find_peaks(maps, periodic=True), lambda: stacked_profile(maps, size=5),
             lambda: peak_profiles(maps, size=5, threshold_nu=1.0), lambda: peak_counts(maps, beam_fwhm=2.0)]
    for call in calls:
        with pytest.raises(DataError, match=r"^maps: contains NaN or inf$"):
            call()


def test_stacked_profile_recovers_the_blob():
    rng = np.random.default_rng(3)
    fwhm = 4.0
    centres = rng.integers(0, SIZE, size=(6, 2))
    maps = np.stack([blobs([c], fwhm=fwhm, periodic=True) for c in centres])[:, None]
    stack, r, profile = stacked_profile(maps, size=21, periodic=True, pixel_size=2.0)
    expected = blobs([(10, 10)], fwhm=fwhm, size=21)
    np.testing.assert_allclose(stack[0], expected, atol=1e-10)
    np.testing.assert_allclose(r, 2.0 * np.arange(11))
    # ring k: pixels whose distance rounds to k; ring 1 = 4 at 1 + 4 at sqrt 2, ring 2 = 4 at 2 + 8 at sqrt 5
    s = fwhm * FWHM_TO_SIGMA
    g = lambda d2: np.exp(-np.asarray(d2) / (2 * s**2))  # noqa: E731
    np.testing.assert_allclose(profile[0, :3], [1.0, g([1, 2]).mean(), g([4] * 4 + [5] * 8).mean()], atol=1e-10)
    # without wrap, peaks closer than 10 pixels to an edge are skipped; the others stack exactly
    inner = np.stack([blobs([c], fwhm=fwhm) for c in [(32, 32), (5, 40), (20, 25)]])[:, None]
    np.testing.assert_allclose(stacked_profile(inner, size=21)[0][0], expected, atol=1e-10)



def test_per_map_profiles_are_each_maps_own_stack():
    # map 0: one blob of fwhm 4; map 1: two blobs of fwhm 6, amplitude 2; map 2: empty (no peak: zero profile)
    maps = np.stack([blobs([(32, 32)], fwhm=4.0), blobs([(20, 20), (44, 40)], amplitude=2.0, fwhm=6.0),
                     np.zeros((SIZE, SIZE))])[:, None]
    r, profiles, n_peaks = peak_profiles(maps, size=11, threshold_nu=0.5, sigma=1.0, pixel_size=2.0)
    assert profiles.shape == (3, 1, 6) and n_peaks.tolist() == [[1], [2], [0]]
    np.testing.assert_allclose(r, 2.0 * np.arange(6))
    for i in range(2):
        np.testing.assert_allclose(profiles[i], stacked_profile(maps[i : i + 1], size=11)[2], atol=1e-10)
    np.testing.assert_allclose(profiles[1, 0, 0], 2.0, atol=1e-10)
    assert np.all(profiles[2] == 0)
    # the count-weighted mean of the per-map stacks is the set's stack
    weighted = (profiles * n_peaks[..., None]).sum(0) / n_peaks.sum(0)[:, None]
    np.testing.assert_allclose(weighted, stacked_profile(maps, size=11, threshold_nu=0.5, sigma=1.0)[2], atol=1e-10)

def test_matched_filter_removes_noise_bias_of_stacking():
    # bright blobs in unit white noise: a raw maximum near a blob is where the noise happens to be high, often
    # off the true centre, so the raw stack is distorted (too narrow); peaks of the beam-smoothed map sit on
    # the true centres and the stack of the original maps recovers the noise-free profile
    rng = np.random.default_rng(4)
    clean = blobs(PLANTED, amplitude=8.0)
    truth = stacked_profile(clean, size=11)[2][0]
    maps = np.stack([clean + rng.normal(size=(SIZE, SIZE)) for _ in range(20)])[:, None]
    raw = stacked_profile(maps, size=11, threshold_nu=5.0, sigma=1.0)[2][0]
    matched = stacked_profile(maps, size=11, threshold_nu=3.0, sigma=1.0, beam_fwhm=5.0)[2][0]
    assert np.abs(matched - truth).max() < 0.35  # noise per stacked pixel 0.1
    assert truth[1] - raw[1] > 1.0


def test_marginal_sums():
    maps = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    rows, cols = marginal_sums(maps)
    assert rows.shape == (2, 3, 4) and cols.shape == (2, 3, 5)
    np.testing.assert_allclose(rows.sum(-1), maps.sum((-2, -1)))
    np.testing.assert_allclose(cols[0, 0], maps[0, 0].sum(0))


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8)), np.full((8, 8), np.nan)])
def test_bad_input_raises(bad):
    with pytest.raises(DataError):
        peak_counts(bad)
    with pytest.raises(DataError):
        stacked_profile(np.ones((1, 1, 8, 8)), size=21)
    with pytest.raises(DataError):
        peak_counts(np.ones((1, 2, 8, 8)), sigma=[1.0, 2.0, 3.0])
