import h5py
import numpy as np
import pytest

from astrogen import __version__
from astrogen.cli import main
from astrogen.data import FieldSet
from astrogen.errors import AstrogenError


def assert_user_error(cli, match, *args):
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert err.startswith("error:") and match in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_version_and_help(cli):
    assert cli("version")[:2] == (0, __version__ + "\n")
    code, out, _ = cli("--help")
    assert code == 0 and "simulate" in out and "import" in out


def test_simulate_then_info(tmp_path, cli):
    out = tmp_path / "blobs.h5"
    code, stdout, _ = cli("simulate", "blobs", "--n", "20", "--seed", "3", "--out", str(out),
                          "--set", "n_blobs=10", "--set", "size=32")
    assert code == 0 and "wrote 20" in stdout
    with FieldSet(out) as fs:
        assert fs.shape == (20, 1, 32, 32) and fs.meta.seed == 3 and fs.meta.config["n_blobs"] == 10
        assert fs.meta.simulator == "blobs"
    code, stdout, _ = cli("info", str(out))
    assert code == 0
    for text in ("20", "1 x 32 x 32", "intensity", "blobs v1", "n_blobs=10", "param x9"):
        assert text in stdout
    assert "blobs" in cli("simulate", "list")[1].split()


def test_simulate_from_a_preset_with_overrides(tmp_path, cli):
    preset = tmp_path / "p.yaml"
    preset.write_text("simulator: blobs\nn: 7\nseed: 4\nconfig:\n  n_blobs: 1\n  size: 16\n")
    out = tmp_path / "p.h5"
    code, stdout, _ = cli("simulate", str(preset), "--out", str(out), "--set", "fwhm=3")
    assert code == 0 and "wrote 7 blobs" in stdout
    with FieldSet(out) as fs:
        assert len(fs) == 7 and fs.meta.seed == 4
        assert fs.meta.config == {**fs.meta.config, "n_blobs": 1, "size": 16, "fwhm": 3.0}
    assert cli("simulate", str(preset), "--out", str(tmp_path / "q.h5"), "--n", "2", "--seed", "0")[0] == 0
    assert FieldSet(tmp_path / "q.h5").meta.seed == 0
    assert_user_error(cli, "no such file", "simulate", str(tmp_path / "none.yaml"), "--out", str(out))


def test_import_then_info(tmp_path, cli):
    np.save(tmp_path / "maps.npy", np.random.default_rng(0).normal(size=(4, 2, 8, 8)))
    code, stdout, _ = cli("import", str(tmp_path / "maps.npy"), "--out", str(tmp_path / "m.h5"),
                          "--channels", "a,b", "--pixel-size", "0.5", "--pixel-unit", "arcmin")
    assert code == 0 and "imported 4" in stdout
    assert "0.5 arcmin" in cli("info", str(tmp_path / "m.h5"))[1]


def test_import_galaxiesml_style_hdf5_with_param_columns(tmp_path, cli):
    with h5py.File(tmp_path / "gml.hdf5", "w") as f:
        f["image"] = np.ones((3, 5, 8, 8), dtype=np.float32)
        f["specz_redshift"], f["ra"] = np.array([0.1, 0.5, 2.0]), np.zeros(3)
    out = tmp_path / "g.h5"
    code, stdout, _ = cli("import", str(tmp_path / "gml.hdf5"), "--out", str(out), "--key", "image",
                          "--channels", "g,r,i,z,y", "--param", "redshift=specz_redshift", "--param", "ra")
    assert code == 0 and "imported 3" in stdout
    with FieldSet(out) as fs:
        assert sorted(fs.param_names) == ["ra", "redshift"]
        np.testing.assert_array_equal(fs.params["redshift"], [0.1, 0.5, 2.0])
    assert_user_error(cli, "--param expects", "import", str(tmp_path / "gml.hdf5"), "--out", str(out),
                      "--param", "redshift=")


def test_user_errors_exit_2_with_one_line(tmp_path, cli):
    out = str(tmp_path / "x.h5")
    assert_user_error(cli, "no such file", "info", str(tmp_path / "missing.h5"))
    assert_user_error(cli, "unknown simulator 'galaxies2'", "simulate", "galaxies2", "--out", out)
    assert_user_error(cli, "unknown key 'colour'", "simulate", "blobs", "--out", out, "--set", "colour=red")
    assert_user_error(cli, "n_blobs", "simulate", "blobs", "--out", out, "--set", "n_blobs=3")
    assert_user_error(cli, "key=value", "simulate", "blobs", "--out", out, "--set", "n_blobs")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    assert_user_error(cli, "layout", "import", str(tmp_path / "flat.npy"), "--out", out)
    bad = np.zeros((3, 4, 4))
    bad[1, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert_user_error(cli, "sample[1] contains NaN", "import", str(tmp_path / "nan.npy"), "--out", out)
    assert_user_error(cli, "no such file", "import", str(tmp_path / "none.npy"), "--out", out)
    assert not (tmp_path / "x.h5").exists()
    # Usage errors (missing arguments, bad numbers) also exit 2, through Typer.
    assert cli("simulate", "blobs", "--out", out, "--n", "zero")[0] == 2


def test_existing_output_needs_overwrite(tmp_path, cli):
    out = str(tmp_path / "x.h5")
    assert cli("simulate", "blobs", "--n", "2", "--out", out, "--set", "size=16")[0] == 0
    assert_user_error(cli, "exists", "simulate", "blobs", "--n", "2", "--out", out)
    assert cli("simulate", "blobs", "--n", "3", "--out", out, "--set", "size=16", "--overwrite")[0] == 0
    assert len(FieldSet(out)) == 3


def test_debug_shows_the_traceback(tmp_path, cli):
    with pytest.raises(AstrogenError, match="no such file"):
        main(["--debug", "info", str(tmp_path / "missing.h5")])


def test_simulate_shards_then_merge(tmp_path, cli):
    common = ["--n", "300", "--seed", "2", "--set", "size=16", "--set", "n_blobs=10"]
    assert cli("simulate", "blobs", *common, "--out", str(tmp_path / "whole.h5"))[0] == 0
    (tmp_path / "shards").mkdir()
    for i in range(3):
        code, stdout, _ = cli("simulate", "blobs", *common, "--shard", f"{i}/3",
                              "-o", str(tmp_path / "shards" / f"part-{i}.h5"))
        assert code == 0 and f"wrote shard {i}/3" in stdout
    assert "samples 256 to 299 of 300" in stdout
    parts = sorted(map(str, (tmp_path / "shards").glob("part-*.h5")))
    for flags in ([], ["--virtual"]):
        out = tmp_path / f"set{len(flags)}.h5"
        code, stdout, _ = cli("merge", *parts, "-o", str(out), *flags)
        assert code == 0 and "wrote 300 samples from 3 files" in stdout
        with FieldSet(tmp_path / "whole.h5") as whole, FieldSet(out) as merged:
            np.testing.assert_array_equal(merged[:].images, whole[:].images)
            np.testing.assert_array_equal(merged.params["x0"], whole.params["x0"])
    assert_user_error(cli, "missing shard(s) 1 of 3", "merge", parts[0], parts[2], "-o", str(tmp_path / "x.h5"))
    assert_user_error(cli, "exists", "merge", *parts, "-o", str(tmp_path / "set0.h5"))


@pytest.mark.parametrize(("text", "match"), [("1-3", "--shard expects I/N"), ("a/3", "--shard expects I/N"),
                                             ("-1/3", "--shard expects I/N"), ("3/3", "0 <= index < count"),
                                             ("0/4", "at most 3 shards")])
def test_bad_shard_text_is_refused(tmp_path, cli, text, match):
    out = tmp_path / "x.h5"
    assert_user_error(cli, match, "simulate", "blobs", "--n", "300", "--shard", text, "--out", str(out))
    assert not out.exists()
