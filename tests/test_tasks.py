"""One safe loader for every model file: checkpoints are data, model folders round-trip, pickles are refused."""

import json
import pathlib

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from astrogen.data import FieldMeta
from astrogen.data.transforms import Standardize
from astrogen.errors import ConfigError, InputFileError, UnknownNameError
from astrogen.models.diffusion import DiffusionModule
from astrogen.tasks import (
    CONFIG,
    WEIGHTS,
    Generative,
    convert_checkpoint,
    export_model,
    load_model,
    read_checkpoint,
)

TINY = {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1, "periodic": True}


class Payload:
    """Unpickling this creates ``marker``: stands for any code a crafted checkpoint could run."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def tiny_checkpoint(path, **extra):
    """A plain-data checkpoint of a tiny diffusion model, as Lightning writes one (its EMA differs from the raw
    weights, so a model folder that kept the raw weights would sample differently)."""
    torch.manual_seed(0)
    transform = Standardize()
    transform.mean, transform.std = [0.5], [2.0]
    module = DiffusionModule(model=TINY, image_shape=[1, 8, 8], transform={"name": "Compose", "transforms": [
        transform.to_dict()]}, data_meta=FieldMeta(channels=["delta"], units="", periodic=True).to_attrs())
    with torch.no_grad():
        for p in module.ema.module.parameters():
            p.add_(0.01 * torch.randn_like(p))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "astrogen_kind": "diffusion", "global_step": 7, **extra}, path)
    return module


def samples(module):
    return module.sample(3, torch.Generator().manual_seed(1), steps=4)


def test_a_pickle_payload_is_refused_with_one_line_and_runs_nothing(tmp_path, cli):
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    tiny_checkpoint(evil, payload=Payload(marker))
    with pytest.raises(InputFileError, match=r"refused.*convert-checkpoint"):
        load_model(evil)
    for args in (["sample", str(evil), "--out", str(tmp_path / "g.h5"), "--n", "2"],
                 ["export", str(evil), "--out", str(tmp_path / "folder")],
                 ["evaluate-model", str(evil), str(evil)]):
        code, _, err = cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:"), (args, err)
    assert not marker.exists() and not (tmp_path / "g.h5").exists() and not (tmp_path / "folder").exists()
    torch.load(evil, weights_only=False)  # the unsafe path really would have run it
    assert marker.exists()


def test_a_trusted_old_checkpoint_is_converted_to_one_the_safe_reader_takes(tmp_path, cli):
    old, new = tmp_path / "old.ckpt", tmp_path / "new.ckpt"
    # What older code wrote besides plain data: paths, NumPy scalars and arrays.
    module = tiny_checkpoint(old, callbacks={"ModelCheckpoint": {"dirpath": pathlib.PosixPath("/runs/x"),
                                                                 "best_score": np.float64(0.5)}},
                             loops={"history": np.arange(3)})
    with pytest.raises(InputFileError, match="refused"):
        read_checkpoint(old)
    code, _, err = cli("convert-checkpoint", str(old), "--out", str(new))
    assert code == 2 and "--trust" in err and not new.exists()
    with pytest.raises(ConfigError, match="--trust"):
        convert_checkpoint(old, new)
    convert_checkpoint(old, new, trust=True)
    torch.testing.assert_close(samples(load_model(new)), samples(module))


def test_the_converter_refuses_a_payload_even_when_trusted(tmp_path, cli):
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    tiny_checkpoint(evil, payload=Payload(marker))
    code, _, err = cli("convert-checkpoint", str(evil), "--out", str(tmp_path / "new.ckpt"), "--trust")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "builtins.getattr, pathlib.Path" in err
    assert not marker.exists() and not (tmp_path / "new.ckpt").exists()


def test_export_writes_safetensors_and_json_that_sample_like_the_checkpoint(tmp_path, cli):
    ckpt = tmp_path / "m.ckpt"
    module = tiny_checkpoint(ckpt)
    code, _, err = cli("export", str(ckpt), "--out", str(tmp_path / "model"))
    assert code == 0, err
    folder = tmp_path / "model"
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG, WEIGHTS])
    config = json.loads((folder / CONFIG).read_text())
    assert config["kind"] == "diffusion" and config["global_step"] == 7
    assert config["hyper_parameters"]["model"]["periodic"] is True
    weights = load_file(folder / WEIGHTS)
    assert not any(k.startswith("ema.") for k in weights)  # the EMA weights are stored as the denoiser's
    torch.testing.assert_close(weights["denoiser.unet.conv_in.weight"], module.ema.module.unet.conv_in.weight)
    loaded = load_model(folder)
    assert loaded.denoiser.unet.conv_in.padding_mode == "circular"
    torch.testing.assert_close(samples(loaded), samples(module))
    code, _, err = cli("export", str(ckpt), "--out", str(folder))  # no silent replacement
    assert code == 2 and "exists" in err



def test_a_gan_folder_keeps_the_generator_only_and_samples_like_the_checkpoint(tmp_path):
    from astrogen.models.gan import GANModule

    torch.manual_seed(0)
    module = GANModule("wgan", {"base": 8, "latent": 8}, {}, [1, 16, 16], ["intensity"])
    ckpt = tmp_path / "gan.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "astrogen_kind": "gan", "global_step": 3}, ckpt)
    folder = export_model(ckpt, tmp_path / "gan")
    assert not any(k.startswith("critic.") for k in load_file(folder / WEIGHTS))
    draw = lambda m: m.sample(4, torch.Generator().manual_seed(2))  # noqa: E731
    torch.testing.assert_close(draw(load_model(folder)), draw(module.eval()))

def test_unreadable_or_foreign_model_files_give_clear_errors(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint")
    with pytest.raises(InputFileError, match="not a checkpoint"):
        load_model(notes)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(InputFileError, match="no state_dict"):
        load_model(tmp_path / "other.ckpt")
    with pytest.raises(UnknownNameError, match="no such pretrained model"):
        load_model("pretrained:../../etc")
    folder = tmp_path / "model"
    tiny_checkpoint(tmp_path / "m.ckpt")
    export_model(tmp_path / "m.ckpt", folder)
    with pytest.raises(ConfigError, match="a diffusion model"):
        load_model(folder, kinds=("regressor",))
    (folder / WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(InputFileError, match="safetensors"):
        load_model(folder)


def test_every_generative_kind_samples_through_one_interface(tmp_path):
    from astrogen.models.gan import GANModule
    from astrogen.models.vae import VAEModule

    diffusion = tiny_checkpoint(tmp_path / "d.ckpt")
    wgan = GANModule("wgan", {"base": 4, "latent": 4}, {}, [1, 16, 16], ["m"])
    vaegan = GANModule("vaegan", {"base": 4, "latent": 4}, {}, [2, 16, 16], ["a", "b"])
    vae = VAEModule({"base": 4, "latent": 4}, {}, [1, 16, 16])
    for model in (diffusion, wgan, vaegan, vae):
        assert isinstance(model, Generative)
    draw = lambda m, **kw: m.sample(2, torch.Generator().manual_seed(0), **kw)  # noqa: E731
    assert draw(diffusion, steps=2).shape == (2, 1, 8, 8) and draw(wgan).shape == draw(vae).shape == (2, 1, 16, 16)
    assert draw(vaegan, inputs=torch.zeros(2, 2, 16, 16)).shape == (2, 2, 16, 16)
    with pytest.raises(ConfigError, match="a wgan model takes no sampling option steps; its options: none"):
        draw(wgan, steps=2)
    with pytest.raises(ConfigError, match="conditioned on nothing; do not pass conditions"):
        draw(vae, conditions=torch.zeros(2, 1))
    with pytest.raises(ConfigError, match="a vaegan model maps input images"):
        draw(vaegan)
    with pytest.raises(ConfigError, match="a diffusion model draws from noise; it takes no inputs"):
        draw(diffusion, inputs=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="3 rows of inputs for 2 samples"):
        draw(vaegan, inputs=torch.zeros(3, 2, 16, 16))
    with pytest.raises(ConfigError, match="guidance needs a conditioned model"):
        draw(diffusion, guidance=2.0)
    from astrogen.generate import sample_to_file

    with pytest.raises(ConfigError, match="guidance needs a conditioned model"):
        sample_to_file(tmp_path / "d.ckpt", tmp_path / "g.h5", n=2, steps=2, guidance=2.0)
    assert not (tmp_path / "g.h5").exists()  # nothing left behind


def outputs(model, images: np.ndarray) -> np.ndarray:
    """What a model of any kind computes from ``images`` (or draws beside them), as an array."""
    generator = torch.Generator().manual_seed(0)
    if isinstance(model, Generative):
        inputs = torch.from_numpy(images) if model.takes_inputs else None
        return model.sample(len(images), generator, inputs=inputs, **({"steps": 2} if model.kind == "diffusion"
                                                                       else {})).numpy()
    if hasattr(model, "predict"):
        return model.predict(images)
    if hasattr(model, "denoise"):
        return model.denoise(images)
    return model.sample(images, n_samples=8, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["diffusion", "wgan", "pixgan", "vaegan", "vae", "regressor", "segmentation",
                                  "denoiser", "posterior"])
def test_every_kind_exports_to_a_folder_that_computes_what_its_checkpoint_does(tiny_model, tiny_data, tmp_path,
                                                                                kind):
    from astrogen.data import FieldSet

    checkpoint = tiny_model(kind)
    folder = export_model(checkpoint, tmp_path / kind)
    with FieldSet(tiny_data) as fs:
        images = fs[:3].images
    model, reloaded = load_model(checkpoint), load_model(folder)
    assert type(model) is type(reloaded)
    np.testing.assert_allclose(outputs(reloaded, images), outputs(model, images), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_the_sample_command_passes_only_the_diffusion_options_a_user_sets(tiny_model, tmp_path, cli):
    wgan = str(tiny_model("wgan"))
    code, _, err = cli("sample", wgan, "--out", str(tmp_path / "a.h5"), "--n", "2", "--steps", "5")
    assert code == 2 and err.strip() == "error: a wgan model takes no sampling option steps; its options: none"
    code, _, err = cli("sample", wgan, "--out", str(tmp_path / "b.h5"), "--n", "2")  # the shown defaults not sent
    assert code == 0, err
