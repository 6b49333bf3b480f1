"""The scorecard passes a set against its other half and fails a visibly different set."""

import json

import numpy as np
import pytest

from astrogen.data import FieldMeta, FieldSetWriter
from astrogen.errors import ConfigError, DataError, UnknownNameError
from astrogen.stats.compare import compare, compare_files

OWN = ("pixel_pdf", "power", "bispectrum", "mean")


def smooth_maps(n, seed, scale=0.15):
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(rng.normal(size=(n, 1, 32, 32)))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.rfftfreq(32), indexing="ij"))
    return np.fft.irfft2(f * np.exp(-((k / scale) ** 2)), s=(32, 32)) * 10


def test_halves_pass_and_a_different_set_fails(tmp_path):
    maps = smooth_maps(300, seed=0)
    same = compare(maps[:150], maps[150:], stats=OWN, n_bootstrap=100)
    assert same.passed, [(r.statistic, r.distance) for r in same.rows]
    assert all(r.error > 0 for r in same.rows)
    different = compare(maps[:150], 1.3 * smooth_maps(150, seed=1, scale=0.25) + 0.5, stats=OWN, n_bootstrap=100)
    assert not any(r.passed for r in different.rows), [(r.statistic, r.distance) for r in different.rows]
    path = different.to_json(tmp_path / "out" / "scorecard.json")
    data = json.loads(path.read_text())
    assert {"statistic", "distance", "error", "tolerance", "passed"} <= set(data["rows"][0])
    assert data["passed"] is False


def test_conditioned_rows_and_tolerances():
    maps = smooth_maps(200, seed=2)
    z = np.random.default_rng(3).uniform(0, 2, 200)
    card = compare(maps[:100], maps[100:], stats=("power",), condition=(z[:100], z[100:]), condition_bins=[0, 1, 2],
                   tolerances={"power": 1e-6}, n_bootstrap=50)
    assert [r.statistic for r in card.rows] == ["power", "power [0, 1)", "power [1, 2]"]
    assert not card.passed  # an impossible tolerance fails
    assert all(r.detail["interval95"][0] <= r.detail["interval95"][1] for r in card.rows)
    with pytest.raises(UnknownNameError):
        compare(maps, maps, stats=("nope",))
    with pytest.raises(ConfigError):
        compare(maps, maps, stats=("power",), tolerances={"nope": 1.0})


def write(path, images, units="uK", pixel_size=0.5):
    meta = FieldMeta(channels=["kappa"], units=units, pixel_size=pixel_size, pixel_unit="arcmin", periodic=True)
    with FieldSetWriter(path, images.shape[1:], meta) as w:
        w.append(images.astype(np.float32))
    return path


def test_compare_files_matches_compare_and_checks_compatibility(tmp_path):
    maps = smooth_maps(120, seed=4).astype(np.float32)
    real, gen = write(tmp_path / "r.h5", maps[:60]), write(tmp_path / "g.h5", maps[60:])
    from_files = compare_files(real, gen, stats=("power", "pixel_pdf"), n_bootstrap=30, batch_size=16)
    in_memory = compare(maps[:60], maps[60:], stats=("power", "pixel_pdf"), n_bootstrap=30, pixel_size=0.5)
    for a, b in zip(from_files.rows, in_memory.rows):
        assert a.distance == pytest.approx(b.distance, rel=1e-6)
    assert from_files.provenance["pixel_size"] == 0.5 and from_files.provenance["units"] == "uK"
    other = write(tmp_path / "o.h5", maps[60:], units="K")
    with pytest.raises(DataError, match="units"):
        compare_files(real, other, stats=("power",))


def test_structure_statistics_pass_halves_and_fail_a_different_set():
    maps = smooth_maps(200, seed=5)
    structure = ("peaks", "minkowski", "clusters")
    same = compare(maps[:100], maps[100:], stats=structure, n_bootstrap=50)
    assert [r.statistic for r in same.rows] == list(structure) and same.passed, [r.distance for r in same.rows]
    # Same pixel variance, rougher maps: more peaks and clusters, other Minkowski functionals.
    other = smooth_maps(100, seed=6, scale=0.25)
    other *= maps.std() / other.std()
    different = compare(maps[:100], other, stats=structure, n_bootstrap=50)
    assert not any(r.passed for r in different.rows), [(r.statistic, r.distance) for r in different.rows]



def test_blob_rows_pass_halves_and_fail_wider_blobs():
    """The blob experiments' rows (Han et al. 2021): stacked peak profile and marginal sums."""
    from astrogen.sims import simulate

    real = simulate("blobs", 400, seed=0, config={"n_blobs": 10, "size": 32, "fwhm": 6.0}).images
    wide = simulate("blobs", 200, seed=1, config={"n_blobs": 10, "size": 32, "fwhm": 7.5}).images
    rows = ("peak_profile", "marginal_sums")
    same = compare(real[:200], real[200:], stats=rows, n_bootstrap=50, periodic=False)
    assert same.passed, [(r.statistic, r.distance) for r in same.rows]
    assert len(same.rows[0].detail["x"]) == 6 and len(same.rows[1].detail["x"]) == 64  # radii 0..5; 32 + 32 sums
    different = compare(real[:200], wide, stats=rows, n_bootstrap=50, periodic=False)
    assert not any(r.passed for r in different.rows), [(r.statistic, r.distance) for r in different.rows]


def test_chi2_is_scale_free_and_never_negative_on_a_degenerate_covariance():
    from astrogen.stats.compare import _distances

    rng = np.random.default_rng(0)
    # bins 0-2 free, bin 3 = -(bin 0 + bin 1 + bin 2): every real map has total 0 (a rank-3 covariance)
    free = rng.normal(size=(500, 3))
    real = np.concatenate([free, -free.sum(1, keepdims=True)], 1)
    ones = lambda n: np.full((1, n), 1.0 / n)  # noqa: E731
    gen = real[:250] + np.array([0.1, 0.0, 0.0, -0.1])  # a shift that keeps the total at 0
    chi2 = _distances("chi2", real, gen, ones(500), ones(250))[0]
    # bin 3 adds no information: the same chi^2 as the three free bins alone, per their 3 degrees of freedom
    expected = _distances("chi2", real[:, :3], gen[:, :3], ones(500), ones(250))[0]
    assert chi2 > 0 and chi2 == pytest.approx(expected, rel=1e-6)
    scaled = np.array([1.0, 1e6, 1e-6, 1.0])  # bins on very different scales (as a bispectrum's)
    assert _distances("chi2", real * scaled, gen * scaled, ones(500), ones(250))[0] == pytest.approx(chi2, rel=1e-6)
    # a shift of the total, where the real set has no scatter, is left out rather than weighted by 1 / round-off
    moved = _distances("chi2", real, real[:250] + np.array([0.1, 0.0, 0.0, 0.3]), ones(500), ones(250))[0]
    assert 0 < moved < 10

def test_file_batches_read_a_sorted_subset_in_chunks_and_feed_observe(tmp_path):
    from astrogen.data import FieldSet
    from astrogen.stats.compare import FileBatches, compare_batches

    maps = smooth_maps(40, seed=7).astype(np.float32)
    path = write(tmp_path / "m.h5", maps)
    index = np.r_[3:13, 20, 25, 31:39]  # runs of consecutive maps (read as slices) and scattered ones
    with FieldSet(path) as fs:
        batches = FileBatches(fs, batch_size=8, index=index)
        got = list(batches)
        assert [len(b) for b in got] == [8, 8, 4] and len(batches) == 3
        assert all(b.dtype == np.float32 for b in got)  # as stored: no float64 copy
        np.testing.assert_array_equal(np.concatenate(got), maps[index])
        seen = []
        card = compare_batches(batches, FileBatches(fs, batch_size=16), stats=("power", "mean"), n_bootstrap=20,
                               pixel_size=0.5, observe=lambda which, b, results, ctx: seen.append(
                                   (which, len(b), sorted(results), ctx["real"].n)))
        with pytest.raises(DataError, match="increasing"):
            FileBatches(fs, index=[5, 2])
    assert seen == [("real", 8, ["mean", "power"], 20)] * 2 + [("real", 4, ["mean", "power"], 20)] + [
        ("generated", 16, ["mean", "power"], 20)] * 2 + [("generated", 8, ["mean", "power"], 20)]
    in_memory = compare(maps[index], maps, stats=("power", "mean"), n_bootstrap=20, pixel_size=0.5)
    assert [r.distance for r in card.rows] == pytest.approx([r.distance for r in in_memory.rows], rel=1e-12)


def test_a_few_huge_pixels_or_clamped_ones_fail_the_out_of_range_row():
    rng = np.random.default_rng(3)
    real, gen = rng.normal(size=(200, 1, 16, 16)), rng.normal(size=(200, 1, 16, 16))
    clean = compare(real, gen, stats=["out_of_range", "power"], n_bootstrap=20)
    assert clean.rows[0].statistic == "out_of_range" and clean.rows[0].distance == 0 and clean.passed
    exploded = gen.copy()
    exploded.reshape(-1)[rng.choice(exploded.size, 200, replace=False)] = 1e4  # 0.4% of the pixels
    card = compare(real, exploded, stats=["out_of_range", "power"], n_bootstrap=20)
    row = card.rows[0]
    assert row.distance == pytest.approx(200 / exploded.size) and not row.passed and row.error > 0
    # A clamp hides the pixels from the maps but not from the row: the recorded fraction is added.
    clamped = compare(real, gen, stats=["out_of_range"], n_bootstrap=20, clamped_fraction=0.002)
    assert clamped.rows[0].distance == pytest.approx(0.002) and not clamped.passed
    assert clamped.rows[0].detail["clamped_fraction"] == 0.002


def test_peaks_row_counts_peaks_above_six_sigma():
    """1-blob maps: the blob stands at nu ~ 7.6 sigma_real, above the -2..6 bins; a set with half the maps empty
    (no blob) must fail the peaks row, and the real set's halves must pass."""
    from astrogen.sims import simulate

    real = simulate("blobs", 400, seed=0, config={"n_blobs": 1, "size": 32, "fwhm": 6.0}).images
    half_empty = real[200:].copy()
    half_empty[::2] = 0.0
    same = compare(real[:200], real[200:], stats=["peaks"], n_bootstrap=50, periodic=False)
    assert same.passed, same.rows[0].distance
    assert same.rows[0].detail["x"][-1] > 6  # the top bin
    different = compare(real[:200], half_empty, stats=["peaks"], n_bootstrap=50, periodic=False)
    assert not different.passed, different.rows[0].distance
