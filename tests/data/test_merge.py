import shutil

import h5py
import numpy as np
import pytest

from astrogen.data import FieldSet, merge_fieldsets
from astrogen.errors import DataError, InputFileError
from astrogen.sims import simulate_to_file

GC = {"size": 16, "supersample": 2}
N = 300  # three blocks of 128: shards of 128, 128 and 44 samples


def assert_same(a, b):
    np.testing.assert_array_equal(a.images, b.images)
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    if a.masks is None:
        assert b.masks is None
    else:
        np.testing.assert_array_equal(a.masks, b.masks)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An unsharded galactic_center set (with masks) and its three shards in shards/."""
    root = tmp_path_factory.mktemp("run")
    (root / "shards").mkdir()
    whole = simulate_to_file("galactic_center", N, root / "whole.h5", seed=4, config=GC)
    shards = [simulate_to_file("galactic_center", N, root / "shards" / f"part-{i}.h5", seed=4, config=GC,
                               shard=(i, 3)) for i in range(3)]
    return root, whole, shards


@pytest.mark.slow
@pytest.mark.parametrize("virtual", [False, True])
def test_merged_shards_equal_the_unsharded_set(run, tmp_path, virtual):
    root, whole, shards = run
    out = root / f"merged-{virtual}.h5"
    merge_fieldsets(shards[::-1], out, virtual=virtual, batch_size=50)  # any order: sorted by shard index
    with FieldSet(whole) as ref, FieldSet(out) as fs:
        assert_same(fs[:], ref[:])
        assert_same(fs[[299, 3, 130]], ref[[299, 3, 130]])  # across shard boundaries, any order
        assert fs.param_units == ref.param_units and fs.images.is_virtual == virtual
        np.testing.assert_array_equal(fs.torch_dataset()[299]["image"].numpy(), ref[299].images)
        meta = fs.meta
        assert (meta.simulator, meta.seed, meta.config, meta.channels) == (
            ref.meta.simulator, ref.meta.seed, ref.meta.config, ref.meta.channels)
        assert meta.provenance["merged_from"] == 3 and meta.provenance["shards"] == {"count": 3, "n_total": N}
    if virtual:
        assert out.stat().st_size < 100_000 < whole.stat().st_size
    with pytest.raises(InputFileError, match="exists"):
        merge_fieldsets(shards, out, virtual=virtual)
    merge_fieldsets(shards, out, virtual=virtual, overwrite=True)


def test_virtual_set_moves_with_its_folder_and_refuses_missing_shards(run, tmp_path, monkeypatch):
    root, whole, _ = run
    moved = tmp_path / "moved"
    shutil.copytree(root / "shards", moved / "shards")
    merge_fieldsets(sorted((moved / "shards").iterdir()), moved / "set.h5", virtual=True)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(moved, elsewhere)
    monkeypatch.chdir(tmp_path)  # relative source paths resolve from the merged file's folder, not the cwd
    with FieldSet(whole) as ref, FieldSet(elsewhere / "set.h5") as fs:
        assert_same(fs[:], ref[:])
    (elsewhere / "shards" / "part-1.h5").unlink()
    with pytest.raises(InputFileError, match=r"shards/part-1\.h5, which is missing"):
        FieldSet(elsewhere / "set.h5")


def test_virtual_sets_read_only_inside_their_folder_tree(run, tmp_path):
    root, _, shards = run
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputFileError, match="own folder tree"):  # ../shards/... would be outside
        merge_fieldsets(shards, tmp_path / "sub" / "set.h5", virtual=True)
    assert not list((tmp_path / "sub").iterdir())
    # A crafted virtual file pointing outside its folder (here: an absolute path) is refused on reading.
    inside = root / "inside.h5"
    merge_fieldsets(shards, inside, virtual=True)
    crafted = tmp_path / "sub" / "crafted.h5"
    shutil.copy(inside, crafted)
    with h5py.File(crafted, "a") as f:
        layout = h5py.VirtualLayout(f["images"].shape, f["images"].dtype)
        layout[:] = h5py.VirtualSource(str(root / "whole.h5"), "images", shape=f["images"].shape)
        del f["images"]
        f.create_virtual_dataset("images", layout)
    with pytest.raises(InputFileError, match="outside its folder"):
        FieldSet(crafted)


@pytest.mark.slow
def test_incomplete_duplicate_and_foreign_shards_are_refused(run, tmp_path):
    _, _, shards = run
    out = tmp_path / "m.h5"
    with pytest.raises(DataError, match=r"missing shard\(s\) 1 of 3"):
        merge_fieldsets([shards[0], shards[2]], out)
    copy = tmp_path / "copy.h5"
    shutil.copy(shards[1], copy)
    with pytest.raises(DataError, match=r"copy\.h5: shard 1/3 given twice"):
        merge_fieldsets([*shards, copy], out)
    other_seed = simulate_to_file("galactic_center", N, tmp_path / "s5.h5", seed=5, config=GC, shard=(1, 3))
    with pytest.raises(DataError, match=r"s5\.h5: seed differs"):
        merge_fieldsets([shards[0], other_seed, shards[2]], out)
    other_n = simulate_to_file("galactic_center", 280, tmp_path / "n280.h5", seed=4, config=GC, shard=(2, 3))
    with pytest.raises(DataError, match=r"n280\.h5: shard of 3 of 280 samples"):
        merge_fieldsets([*shards[:2], other_n], out)
    other_split = simulate_to_file("galactic_center", N, tmp_path / "of2.h5", seed=4, config=GC, shard=(1, 2))
    with pytest.raises(DataError, match=r"of2\.h5: shard of 2 of 300"):
        merge_fieldsets([shards[0], other_split], out)
    plain = simulate_to_file("galactic_center", 10, tmp_path / "plain.h5", seed=4, config=GC)
    with pytest.raises(DataError, match=r"plain\.h5: not a shard"):
        merge_fieldsets([*shards, plain], out)
    other_size = simulate_to_file("galactic_center", N, tmp_path / "big.h5", seed=4, config={**GC, "size": 32},
                                  shard=(2, 3))
    with pytest.raises(DataError, match=r"big\.h5: sample shape"):
        merge_fieldsets([*shards[:2], other_size], out)
    with pytest.raises(InputFileError, match="one of the files to merge"):
        merge_fieldsets(shards, shards[0], overwrite=True)
    with pytest.raises(DataError, match="nothing to merge"):
        merge_fieldsets([], out)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_plain_fieldsets_join_in_the_given_order(make_fieldset, tmp_path):
    a_path, a_images, a_params, a_masks = make_fieldset(n=6, name="a.h5", seed=1)
    b_path, b_images, b_params, b_masks = make_fieldset(n=5, name="b.h5", seed=2)
    for virtual in (False, True):
        out = tmp_path / f"ba-{virtual}.h5"
        merge_fieldsets([b_path, a_path], out, virtual=virtual)
        with FieldSet(out) as fs:
            batch = fs[:]
            np.testing.assert_array_equal(batch.images, np.concatenate([b_images, a_images]))
            np.testing.assert_array_equal(batch.masks, np.concatenate([b_masks, a_masks]))
            np.testing.assert_array_equal(batch.params["redshift"], np.r_[b_params["redshift"], a_params["redshift"]])
            assert fs.meta.pixel_unit == "arcmin" and fs.meta.provenance["merged_from"] == 2
    no_masks = make_fieldset(n=4, name="nomask.h5", masks=False)[0]
    with pytest.raises(DataError, match=r"nomask\.h5: masks None differs"):
        merge_fieldsets([a_path, no_masks], tmp_path / "x.h5")
    three_channels = make_fieldset(n=4, shape=(3, 8, 8), name="c3.h5")[0]
    with pytest.raises(DataError, match=r"c3\.h5: sample shape"):
        merge_fieldsets([a_path, three_channels], tmp_path / "x.h5")
