import h5py
import numpy as np
import pytest
from astropy.io import fits

from astrogen.data import import_file
from astrogen.errors import DataError, InputFileError


@pytest.fixture
def cube():
    return np.random.default_rng(0).normal(size=(7, 3, 6, 5)).astype(np.float32)


def test_npy_default_layouts(tmp_path, cube):
    np.save(tmp_path / "maps.npy", cube[:, 0])  # [N, H, W]
    with import_file(tmp_path / "maps.npy", tmp_path / "a.h5", batch_size=3) as fs:
        assert fs.shape == (7, 1, 6, 5)
        np.testing.assert_array_equal(fs[:].images[:, 0], cube[:, 0])
        assert fs.meta.provenance["layout"] == "NHW"
    np.save(tmp_path / "one.npy", cube[0, 0])  # [H, W]
    with import_file(tmp_path / "one.npy", tmp_path / "b.h5") as fs:
        assert fs.shape == (1, 1, 6, 5)


def test_channels_last_layout(tmp_path, cube):
    np.save(tmp_path / "nhwc.npy", np.moveaxis(cube, 1, -1))
    with import_file(tmp_path / "nhwc.npy", tmp_path / "c.h5", layout="NHWC", channels=["g", "r", "i"]) as fs:
        np.testing.assert_array_equal(fs[:].images, cube)
        assert fs.channels == ["g", "r", "i"]


def test_npz_with_params_and_masks(tmp_path, cube):
    z = np.linspace(0, 1, 7)
    np.savez(tmp_path / "set.npz", images=cube, masks=cube[:, :1] > 0, redshift=z, label=np.array(["a"] * 7))
    with import_file(tmp_path / "set.npz", tmp_path / "d.h5", units="mag") as fs:
        np.testing.assert_array_equal(fs.params["redshift"], z)
        assert fs.param_names == ["redshift"]  # non-numeric columns are skipped
        np.testing.assert_array_equal(fs[:].masks, (cube[:, :1] > 0).astype(np.float32))
        assert fs.meta.units == "mag"


def test_fits_header_gives_units_and_pixel_size(tmp_path, cube):
    hdu = fits.PrimaryHDU(cube[:, 0])
    hdu.header["BUNIT"] = "counts"
    hdu.header["CDELT1"], hdu.header["CDELT2"] = -0.625, 0.625
    hdu.header["CUNIT1"] = "deg"
    hdu.writeto(tmp_path / "sky.fits")
    with import_file(tmp_path / "sky.fits", tmp_path / "e.h5") as fs:
        assert fs.meta.units == "counts" and fs.meta.pixel_size == 0.625 and fs.meta.pixel_unit == "deg"
        np.testing.assert_array_equal(fs[:].images[:, 0], cube[:, 0])


def test_plain_hdf5_with_key_and_params(tmp_path, cube):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["sims/maps"] = cube
        f["sims/params/omega_m"] = np.arange(7.0)
        f["other"] = np.zeros((2, 2))
    with pytest.raises(InputFileError, match="--key"):
        import_file(tmp_path / "plain.h5", tmp_path / "f.h5")
    with import_file(tmp_path / "plain.h5", tmp_path / "f.h5", key="sims/maps", periodic=True) as fs:
        np.testing.assert_array_equal(fs[:].images, cube)
        np.testing.assert_array_equal(fs.params["omega_m"], np.arange(7.0))
        assert fs.meta.periodic


def test_bad_inputs_raise_clear_errors_and_write_nothing(tmp_path, cube):
    bad = cube.copy()
    bad[5, 1, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"nan\.npy: sample\[5\] contains NaN"):
        import_file(tmp_path / "nan.npy", tmp_path / "out.h5", batch_size=2)
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(DataError, match="layout"):
        import_file(tmp_path / "flat.npy", tmp_path / "out.h5")
    with pytest.raises(DataError, match="layout 'NCHW'"):
        import_file(tmp_path / "flat.npy", tmp_path / "out.h5", layout="NCHW")
    with pytest.raises(InputFileError, match="no such file"):
        import_file(tmp_path / "missing.npy", tmp_path / "out.h5")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match="unknown file type"):
        import_file(tmp_path / "notes.txt", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def write_galaxiesml(path, n=6, channels_last=False):
    """A small GalaxiesML-style file: 5-band cutouts beside spectroscopic redshifts and catalogue columns."""
    rng = np.random.default_rng(1)
    images = rng.normal(size=(n, 5, 8, 8)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["image"] = np.moveaxis(images, 1, -1) if channels_last else images
        f["specz_redshift"] = rng.uniform(0, 4, n)
        f["g_cmodel_mag"] = rng.uniform(18, 25, n)
        f["object_id"] = np.arange(n, dtype=np.int64)
        f["skymap_id"] = np.array([b"9813"] * n)  # text columns are not parameters
        f["meta/ra"] = rng.uniform(0, 360, n)
        f["short"] = np.zeros(n - 1)
    return images


def test_galaxiesml_hdf5_with_named_parameter_columns(tmp_path):
    images = write_galaxiesml(tmp_path / "gml.hdf5", channels_last=True)
    wanted = {"redshift": "specz_redshift", "mag_g": "g_cmodel_mag", "ra": "/meta/ra"}
    with import_file(tmp_path / "gml.hdf5", tmp_path / "g.h5", key="image", layout="NHWC",
                     channels=list("grizy"), pixel_size=0.168, pixel_unit="arcsec", params=wanted) as fs:
        np.testing.assert_array_equal(fs[:].images, images)
        assert sorted(fs.param_names) == ["mag_g", "ra", "redshift"] and fs.channels == list("grizy")
        with h5py.File(tmp_path / "gml.hdf5") as f:
            np.testing.assert_array_equal(fs.params["redshift"], f["specz_redshift"][()])
            np.testing.assert_array_equal(fs.params["ra"], f["meta/ra"][()])
    # Without a mapping, every numeric column of one value per image in the image's group comes along.
    write_galaxiesml(tmp_path / "nchw.hdf5")
    with import_file(tmp_path / "nchw.hdf5", tmp_path / "h.h5", key="image") as fs:
        assert sorted(fs.param_names) == ["g_cmodel_mag", "object_id", "specz_redshift"]
        assert fs.shape == (6, 5, 8, 8)


def test_named_parameter_columns_that_cannot_be_used_raise(tmp_path):
    write_galaxiesml(tmp_path / "gml.hdf5")
    with pytest.raises(InputFileError, match=r"no column 'zspec' for parameter 'redshift'.*specz_redshift"):
        import_file(tmp_path / "gml.hdf5", tmp_path / "o.h5", key="image", params={"redshift": "zspec"})
    with pytest.raises(DataError, match="column 'short' of shape \\(5,\\)"):
        import_file(tmp_path / "gml.hdf5", tmp_path / "o.h5", key="image", params={"x": "short"})
    with pytest.raises(DataError, match="column 'skymap_id'"):
        import_file(tmp_path / "gml.hdf5", tmp_path / "o.h5", key="image", params={"x": "skymap_id"})
    assert not (tmp_path / "o.h5").exists()
