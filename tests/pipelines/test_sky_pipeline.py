from dataclasses import replace

import healpy as hp
import numpy as np
import pytest

from astrogen.cli import main
from astrogen.data import FieldSet, FieldSetWriter
from astrogen.errors import ConfigError, InputFileError
from astrogen.pipelines.microwave_sky import generate_sky, train_microwave_sky
from astrogen.sims import simulate_to_file

TINY_SKY = {"nside": 32, "patch_npix": 16, "patch_size_deg": 8, "band_deg": 10, "n_rotations": 2,
            "patches_per_rotation": 8, "clusters": 300, "cib_sources": 2000, "radio_sources": 500}


def test_pipeline_trains_three_stages_and_generates_a_partial_sky(tmp_path):
    patches = simulate_to_file("microwave_sky", 16, tmp_path / "mw.h5", seed=0, config=TINY_SKY)
    models = train_microwave_sky(patches, tmp_path / "models", n_enlarge=8, max_steps=3, base=4, latent=8,
                                 batch_size=8)
    assert list(models.seconds) == ["train wgan", "enlarge", "train pixgan", "step-2 patches", "train vaegan"]
    with FieldSet(patches) as real, FieldSet(tmp_path / "models" / "step2.h5") as step2, \
            FieldSet(tmp_path / "models" / "pixgan_train.h5") as pix_train:
        assert len(pix_train) == 16 + 8 and len(step2) == 16
        # PIXGAN keeps the kappa it is given and generates only the foregrounds
        np.testing.assert_allclose(step2[:].images[:, 0], real[:].images[:, 0], rtol=1e-4, atol=1e-7)
        assert not np.allclose(step2[:].images[:, 1:], real[:].images[:, 1:])
    code = main_code(["sky", "generate", str(tmp_path / "models"), "--out", str(tmp_path / "sky.fits"),
                      "--n-rotations", "2", "--patches-per-rotation", "10"])
    assert code == 0
    maps, header = hp.read_map(str(tmp_path / "sky.fits"), field=None, h=True)
    assert maps.shape == (5, hp.nside2npix(32)) and "uK_CMB" in dict(header)["UNITS"]
    seen = maps[0] != hp.UNSEEN
    # 20 patches of 8 x 8 deg cover at most 20 * 64 deg^2 of 41,253 (plus partly hit boundary pixels)
    assert 0.01 < seen.mean() < 2 * 20 * 64 / 41_253
    assert np.isfinite(maps[:, seen]).all()
    with pytest.raises(InputFileError, match="exists"):
        generate_sky(tmp_path / "models", tmp_path / "sky.fits")


def main_code(argv):
    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_full_sky_needs_a_microwave_sky_training_set(tmp_path):
    data = simulate_to_file("blobs", 16, tmp_path / "b.h5", seed=0, config={"n_blobs": 1, "size": 16})
    with FieldSet(data) as fs:  # a kappa + foreground set that the microwave_sky simulator did not make
        meta, images = fs.meta, fs[:].images
    two = tmp_path / "two.h5"
    with FieldSetWriter(two, (2, 16, 16), replace(meta, channels=["kappa", "tsz"])) as writer:
        writer.append(np.concatenate([images, images], 1), {})
    train_microwave_sky(two, tmp_path / "models", n_enlarge=4, max_steps=2, base=4, latent=8, batch_size=8)
    with pytest.raises(ConfigError, match="microwave_sky"):
        generate_sky(tmp_path / "models", tmp_path / "sky.fits")
