import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from astrogen.errors import DataError
from astrogen.stats.clusters import clusters


def reference_periodic_components(binary, connectivity):
    """Cluster sizes by flood fill with explicit wrap, one pixel at a time (independent of the code)."""
    h, w = binary.shape
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    if connectivity == 8:
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    seen = np.zeros_like(binary)
    sizes = []
    for i, j in zip(*np.nonzero(binary)):
        if seen[i, j]:
            continue
        seen[i, j] = True
        stack, size = [(i, j)], 0
        while stack:
            a, b = stack.pop()
            size += 1
            for da, db in steps:
                p, q = (a + da) % h, (b + db) % w
                if binary[p, q] and not seen[p, q]:
                    seen[p, q] = True
                    stack.append((p, q))
        sizes.append(size)
    return sorted(sizes)


def test_blob_straddling_the_border_is_one_cluster_when_periodic():
    image = np.zeros((32, 32))
    image[10:21, -3:] = 2.0  # right edge ...
    image[10:21, :3] = 3.0  # ... continues on the left edge
    one = clusters(image, thresholds=[1.0], sigma0=1.0, periodic=True)
    two = clusters(image, thresholds=[1.0], sigma0=1.0, periodic=False)
    assert one.count[0, 0, 0] == 1 and two.count[0, 0, 0] == 2
    np.testing.assert_array_equal(one.sizes[0], [66])
    np.testing.assert_array_equal(np.sort(two.sizes[0]), [33, 33])
    np.testing.assert_allclose(one.masses[0], [33 * 2.0 + 33 * 3.0])


def test_corners_touch_diagonally_only_with_8_connectivity():
    image = np.zeros((16, 16))
    image[0, 0] = image[-1, -1] = image[0, 8] = image[-1, 8] = 1.0  # two corner pixels, a top-bottom pair
    assert clusters(image, thresholds=[0.5], sigma0=1.0, periodic=True, connectivity=8).count[0, 0, 0] == 2
    assert clusters(image, thresholds=[0.5], sigma0=1.0, periodic=True, connectivity=4).count[0, 0, 0] == 3
    assert clusters(image, thresholds=[0.5], sigma0=1.0, periodic=False).count[0, 0, 0] == 4


@pytest.mark.parametrize("connectivity", [4, 8])
def test_random_fields_match_per_map_references(connectivity):
    rng = np.random.default_rng(0)
    maps = ndimage.gaussian_filter(rng.normal(size=(3, 2, 24, 24)), 1.5, axes=(-2, -1), mode="wrap")
    levels = np.array([0.0, 1.0])
    sigma = maps.std(axis=(0, 2, 3))
    per = clusters(maps, thresholds=levels, periodic=True, connectivity=connectivity)
    flat = clusters(maps, thresholds=levels, periodic=False, connectivity=connectivity)
    np.testing.assert_allclose(per.sigma0, sigma)
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    for t, level in enumerate(levels):
        expected_per, expected_flat, masses = [], [], []
        for n in range(3):
            for c in range(2):
                binary = maps[n, c] > level * sigma[c]
                ref = reference_periodic_components(binary, connectivity)
                assert per.count[n, c, t] == len(ref)
                expected_per += ref
                labels, count = ndimage.label(binary, structure=structure)
                assert flat.count[n, c, t] == count
                expected_flat += list(np.bincount(labels.ravel())[1:])
                masses += list(ndimage.sum_labels(maps[n, c], labels, np.arange(1, count + 1)))
                assert per.skeleton_length[n, c, t] == skeletonize(binary).sum()
        np.testing.assert_array_equal(np.sort(per.sizes[t]), sorted(expected_per))
        np.testing.assert_array_equal(np.sort(flat.sizes[t]), sorted(expected_flat))
        np.testing.assert_allclose(np.sort(flat.masses[t]), np.sort(masses))
        assert per.masses[t].sum() == pytest.approx(flat.masses[t].sum())


def test_skeleton_length_of_a_filament():
    image = np.zeros((1, 1, 40, 40))
    image[0, 0, 20, 5:35] = 1.0  # 30-pixel line
    image[0, 0, 5:10, 5:35] = 1.0  # 30 x 5 bar: its skeleton is a line along the bar, shorter by ~ the width
    result = clusters(image, thresholds=[0.5], sigma0=1.0)
    assert 30 + 24 <= result.skeleton_length[0, 0, 0] <= 30 + 30
    assert result.count[0, 0, 0] == 2


def test_empty_excursion_set_and_bad_input():
    result = clusters(np.zeros((2, 1, 8, 8)), thresholds=[1.0], sigma0=1.0, periodic=True)
    assert result.count.sum() == 0 and result.sizes[0].size == 0
    with pytest.raises(DataError):
        clusters(np.zeros((1, 1, 8, 8)), connectivity=6, sigma0=1.0)
    with pytest.raises(DataError):
        clusters(np.zeros((8, 8)))  # constant maps: default sigma0 is zero
