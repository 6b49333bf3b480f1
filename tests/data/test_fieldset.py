import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from astrogen.data import Augment, FieldMeta, FieldSet, FieldSetWriter
from astrogen.data.augment import dihedral
from astrogen.data.transforms import MinMax
from astrogen.errors import DataError, InputFileError


def test_round_trip_with_params_masks_and_attrs(make_fieldset):
    path, images, params, masks = make_fieldset(n=10)
    with FieldSet(path) as fs:
        assert fs.shape == (10, 2, 8, 8)
        assert fs.channels == ["c0", "c1"]
        assert fs.meta.units == "uK" and fs.meta.pixel_size == 0.5 and fs.meta.pixel_unit == "arcmin"
        assert fs.meta.box_size == [4.0, 4.0] and fs.meta.periodic is False
        assert fs.images.chunks == (1, 2, 8, 8)  # one image per chunk
        batch = fs[:]
        np.testing.assert_array_equal(batch.images, images)
        np.testing.assert_array_equal(batch.masks, masks)
        for name, values in params.items():
            np.testing.assert_array_equal(batch.params[name], values)
        assert fs.param_units == {"redshift": ""}
        one = fs[-1]
        np.testing.assert_array_equal(one.images, images[-1])
        assert one.params["amplitude"] == params["amplitude"][-1]
        picked = fs[[7, 2, 7]]  # unsorted, repeated indices keep their order
        np.testing.assert_array_equal(picked.images, images[[7, 2, 7]])
        np.testing.assert_array_equal(picked.params["redshift"], params["redshift"][[7, 2, 7]])
        np.testing.assert_array_equal(fs[1:9:3].images, images[1:9:3])
        with pytest.raises(IndexError):
            fs[10]


def test_3d_fields_and_compression(tmp_path):
    data = np.random.default_rng(1).normal(size=(3, 1, 4, 6, 6)).astype(np.float32)
    path = tmp_path / "cube.h5"
    with FieldSetWriter(path, data.shape[1:], FieldMeta(channels=["delta"], periodic=True),
                        compression="gzip") as w:
        w.append(data)
    with FieldSet(path) as fs:
        assert fs.images.compression == "gzip"
        np.testing.assert_array_equal(fs[:].images, data)


def test_lazy_batches_cover_a_set_larger_than_one_batch(make_fieldset):
    path, images, params, _ = make_fieldset(n=23)
    with FieldSet(path) as fs:
        assert isinstance(fs.images, h5py.Dataset)  # nothing read until indexed
        batches = list(fs.batches(batch_size=5))
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
        np.testing.assert_array_equal(np.concatenate([b.images for b in batches]), images)
        np.testing.assert_array_equal(np.concatenate([b.params["redshift"] for b in batches]),
                                      params["redshift"])


def test_exception_inside_writer_leaves_no_file(tmp_path):
    path = tmp_path / "broken.h5"
    with pytest.raises(RuntimeError), FieldSetWriter(path, (1, 4, 4), FieldMeta(channels=["x"])) as w:
        w.append(np.zeros((2, 1, 4, 4)))
        raise RuntimeError("simulated crash")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_killed_writer_leaves_no_complete_looking_file(tmp_path):
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from astrogen.data import FieldMeta, FieldSetWriter
        w = FieldSetWriter({str(path)!r}, (1, 32, 32), FieldMeta(channels=["x"]))
        w.append(np.ones((50, 1, 32, 32)))
        print("written", flush=True)
        sys.stdin.read()  # wait to be killed mid-write
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not path.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".killed.h5.")  # hidden partial file
    with pytest.raises(InputFileError, match=r"incomplete|not a readable"):
        FieldSet(leftovers[0])


def test_existing_file_is_kept_unless_overwrite(make_fieldset):
    path, *_ = make_fieldset()
    before = path.read_bytes()
    with pytest.raises(InputFileError, match="exists"):
        FieldSetWriter(path, (2, 8, 8), FieldMeta(channels=["a", "b"]))
    assert path.read_bytes() == before


def test_writer_rejects_bad_batches(tmp_path):
    w = FieldSetWriter(tmp_path / "x.h5", (1, 4, 4), FieldMeta(channels=["x"]), param_names=["z"])
    images = np.zeros((3, 1, 4, 4))
    with pytest.raises(DataError, match="shape"):
        w.append(np.zeros((3, 1, 4, 5)), {"z": [0, 1, 2]})
    images[2, 0, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"images\[2\] contains NaN"):
        w.append(images, {"z": [0, 1, 2]})
    with pytest.raises(DataError, match="3 images"):
        w.append(np.zeros((3, 1, 4, 4)), {"z": [0, 1]})
    with pytest.raises(DataError, match="expected"):
        w.append(np.zeros((3, 1, 4, 4)), {"q": [0, 1, 2]})
    w.abort()
    assert list(tmp_path.iterdir()) == []


def _corrupt(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def test_reader_rejects_nan_naming_the_index(make_fieldset):
    path, *_ = make_fieldset(n=10)

    def poison(f):
        f["images"][6, 1, 2, 3] = np.inf

    _corrupt(path, poison)
    with FieldSet(path) as fs:
        np.testing.assert_array_equal(fs[:5].images.shape, (5, 2, 8, 8))  # clean part still reads
        with pytest.raises(DataError, match=r"images\[6\] contains NaN or inf"):
            fs[4:8]
        with pytest.raises(DataError, match=r"images\[6\]"):
            fs[[9, 6]]


def test_reader_rejects_inconsistent_shapes(make_fieldset):
    path, *_ = make_fieldset(n=10)

    def shorten(f):
        f["params/redshift"].resize((9,))

    _corrupt(path, shorten)
    with pytest.raises(DataError, match="params/redshift"):
        FieldSet(path)

    path2, *_ = make_fieldset(n=10, name="b.h5")
    _corrupt(path2, lambda f: f.attrs.__setitem__("channels", json.dumps(["only-one"])))
    with pytest.raises(DataError, match="channel names"):
        FieldSet(path2)


def test_reader_rejects_foreign_and_missing_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        FieldSet(tmp_path / "missing.h5")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["data"] = np.zeros((2, 3, 3))
    with pytest.raises(InputFileError, match="not an astrogen FieldSet"):
        FieldSet(plain)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(InputFileError, match="not a readable HDF5"):
        FieldSet(text)


def test_dataloader_with_two_workers(make_fieldset):
    path, images, params, masks = make_fieldset(n=12)
    with FieldSet(path) as fs:
        transform = MinMax().fit(fs)
        dataset = fs.torch_dataset(transform=transform, params=["amplitude"], masks=True)
    loader = DataLoader(dataset, batch_size=5, num_workers=2, shuffle=False)
    batches = list(loader)
    got = torch.cat([b["image"] for b in batches])
    np.testing.assert_allclose(got.numpy(), transform.forward(images), rtol=1e-6)
    np.testing.assert_array_equal(torch.cat([b["params"] for b in batches])[:, 0].numpy(),
                                  params["amplitude"].astype(np.float32))
    np.testing.assert_array_equal(torch.cat([b["mask"] for b in batches]).numpy(), masks)


def _apply(x, k, dy, dx):
    return torch.roll(dihedral(x[None], torch.tensor([k]))[0], (dy, dx), (-2, -1))


def test_dataset_augment_moves_image_and_mask_together(make_fieldset):
    path, *_ = make_fieldset(n=4, periodic=True)
    dataset = FieldSet(path).torch_dataset(augment=Augment(dihedral=True, shift=True), masks=True)
    plain = FieldSet(path)[2]
    image, mask = torch.from_numpy(plain.images), torch.from_numpy(plain.masks)
    torch.manual_seed(0)
    sample = dataset[2]
    ops = [(k, dy, dx) for k in range(8) for dy in range(8) for dx in range(8)
           if torch.equal(_apply(image, k, dy, dx), sample["image"])]
    assert len(ops) == 1  # a random image identifies the symmetry that was drawn
    assert torch.equal(_apply(mask, *ops[0]), sample["mask"])
    with pytest.raises(DataError, match="periodic"):
        FieldSet(make_fieldset(n=4, name="np.h5")[0]).torch_dataset(augment=Augment(shift=True))
    with pytest.raises(DataError, match="no parameter columns"):
        FieldSet(path).torch_dataset(params=["mass"])


def test_an_empty_set_is_refused_by_the_reader(make_fieldset):
    path, *_ = make_fieldset(n=4)
    with h5py.File(path, "a") as f:
        f["images"].resize(0, axis=0)
        f["masks"].resize(0, axis=0)
        for column in f["params"].values():
            column.resize((0,))
    with pytest.raises(DataError, match=r"no samples \(N = 0\)"):
        FieldSet(path)
