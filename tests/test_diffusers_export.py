"""Diffusion models exported to diffusers sample exactly as astrogen does: periodic padding, conditions with
classifier-free guidance, the schedule and the data transform survive the trip."""

import json
import sys

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.utils import dynamic_modules_utils
from safetensors.torch import load_file
from torch import nn

from astrogen.data import FieldMeta
from astrogen.data.transforms import Standardize
from astrogen.errors import ConfigError, InputFileError
from astrogen.interop import AstrogenDiffusionPipeline, ConditionEncoder, export_diffusers
from astrogen.models.diffusion import DiffusionModule, make_scheduler

TINY = {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1, "cond_features": 8}
SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}


def checkpoint(path, model=None, **module_args):
    """A tiny diffusion checkpoint whose EMA differs from its raw weights and whose transform is x -> (x - 0.5) / 2."""
    torch.manual_seed(0)
    transform = Standardize()
    transform.mean, transform.std = [0.5], [2.0]
    module = DiffusionModule(model={**TINY, **(model or {})}, image_shape=[1, 8, 8], transform={
        "name": "Compose", "transforms": [transform.to_dict()]}, data_meta=FieldMeta(
            channels=["delta"], units="", periodic=True).to_attrs(), **module_args)
    with torch.no_grad():
        for p in module.ema.module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "astrogen_kind": "diffusion", "global_step": 7}, path)
    return module.eval()


def seed(n=1):
    return torch.Generator().manual_seed(n)


def padded_convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and any(m.padding)]


def test_a_periodic_v_model_samples_in_diffusers_as_in_astrogen_with_every_sampler(tmp_path, cli):
    ckpt, out = tmp_path / "m.ckpt", tmp_path / "diffusers-model"
    module = checkpoint(ckpt, {"periodic": True, "prediction": "v", "schedule": "cosine", "timesteps": 100})
    code, _, err = cli("export", str(ckpt), "--format", "diffusers", "--out", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["model_index.json", "pipeline.py", "scheduler", "unet"]
    assert not (tmp_path / ".diffusers-model.partial").exists()
    index = json.loads((out / "model_index.json").read_text())
    assert index["periodic"] is True and index["condition"] == [None, None]

    # The plain UNet: the EMA weights, but zero padding (what the pipeline restores).
    unet = UNet2DModel.from_pretrained(out, subfolder="unet")
    weights = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    torch.testing.assert_close(weights["conv_in.weight"], module.ema.module.unet.conv_in.weight)
    assert {c.padding_mode for c in padded_convs(unet)} == {"zeros"}

    pipe = AstrogenDiffusionPipeline.from_pretrained(out)
    assert len(padded_convs(pipe.unet)) > 10 and {c.padding_mode for c in padded_convs(pipe.unet)} == {"circular"}
    for sampler, steps in (("dpm", 4), ("ddpm", 10), ("ddim", 5)):
        scheduler = SCHEDULERS[sampler].from_pretrained(out, subfolder="scheduler")
        # Each class reads astrogen's sampler of that name (DPM-Solver++ ignores variance_type unless learned).
        own = {k: v for k, v in make_scheduler(module.config, sampler).config.items() if not k.startswith("_")}
        read = {k: scheduler.config[k] for k in own}
        assert read == own | ({"variance_type": "fixed_small"} if sampler == "dpm" else {}), sampler
        assert read["prediction_type"] == "v_prediction" and read["beta_schedule"] == "squaredcos_cap_v2"
        pipe.scheduler = scheduler
        expected = module.sample(3, seed(), sampler=sampler, steps=steps)
        got = pipe(3, num_inference_steps=steps, generator=seed()).images
        torch.testing.assert_close(got, expected, msg=sampler)
    # Physical units: the inverse of x -> (x - 0.5) / 2 was applied.
    raw = pipe(3, num_inference_steps=5, generator=seed(), physical=False).images
    torch.testing.assert_close(got, raw * 2 + 0.5)
    assert raw.std() < 0.8 * got.std()

    pipe.unet = unet  # zero padding: not the model astrogen trained
    assert (pipe(3, num_inference_steps=5, generator=seed()).images - got).abs().max() > 1e-2


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """diffusers copies a folder's pipeline.py into its modules cache before importing it: keep it in tmp_path."""
    monkeypatch.setattr(dynamic_modules_utils, "HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop("diffusers_modules.local.pipeline", None)


def test_a_conditional_model_samples_with_guidance_through_a_custom_pipeline(tmp_path, modules_cache, device):
    ckpt, out = tmp_path / "m.ckpt", tmp_path / "model"
    module = checkpoint(ckpt, conditions=["redshift", "omega_m"], cond_mean=[1.0, 0.3], cond_std=[0.5, 0.05],
                        cond_jitter=[0.0, 0.0]).to(device)
    export_diffusers(ckpt, out)
    assert (out / "condition" / "config.json").is_file()
    with pytest.raises(ValueError, match="trust_remote_code"):  # pipeline.py is code: diffusers asks first
        DiffusionPipeline.from_pretrained(out, custom_pipeline="pipeline")
    pipe = DiffusionPipeline.from_pretrained(out, custom_pipeline="pipeline", trust_remote_code=True).to(device)
    assert type(pipe).__name__ == "AstrogenDiffusionPipeline" and isinstance(pipe.condition, ConditionEncoder)
    assert pipe.condition.config.names == ["redshift", "omega_m"]

    cond = torch.tensor([[0.5, 0.25], [1.5, 0.3], [2.5, 0.35]])
    for guidance in (1.0, 3.0):
        expected = module.sample(3, seed(2), conditions=cond, steps=4, guidance=guidance)
        got = pipe(3, conditions=cond, guidance_scale=guidance, num_inference_steps=4, generator=seed(2)).images
        torch.testing.assert_close(got, expected, msg=f"guidance {guidance}")
    plain = pipe(3, conditions=cond, num_inference_steps=4, generator=seed(2)).images
    assert (got - plain).abs().max() > 1e-3  # guidance changed the samples

    # One condition for every sample, by name or as a row; NumPy output.
    same = module.sample(2, seed(), conditions=torch.tensor([[2.0, 0.3]] * 2), steps=4, guidance=2.0)
    for conditions in ({"redshift": 2.0, "omega_m": 0.3}, [2.0, 0.3]):
        got = pipe(2, conditions=conditions, guidance_scale=2.0, num_inference_steps=4, generator=seed(),
                   output_type="np").images
        torch.testing.assert_close(torch.from_numpy(got), same.cpu())
    with pytest.raises(ValueError, match="conditioned on"):
        pipe(2, num_inference_steps=4)
    with pytest.raises(ValueError, match="name exactly"):
        pipe(2, conditions={"redshift": 1.0}, num_inference_steps=4)


def test_the_export_refuses_what_it_cannot_write_and_leaves_nothing_half_written(tmp_path, cli, monkeypatch):
    from astrogen.models.gan import GANModule

    torch.manual_seed(0)
    gan = GANModule("wgan", {"base": 8, "latent": 8}, {}, [1, 16, 16], ["intensity"])
    torch.save({"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams), "astrogen_kind": "gan"},
               tmp_path / "gan.ckpt")
    code, _, err = cli("export", str(tmp_path / "gan.ckpt"), "--format", "diffusers", "--out", str(tmp_path / "g"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "only diffusion models" in err
    with pytest.raises(ConfigError, match="only diffusion models"):
        export_diffusers(tmp_path / "gan.ckpt", tmp_path / "g")

    ckpt, out = tmp_path / "m.ckpt", tmp_path / "model"
    checkpoint(ckpt)
    code, _, err = cli("export", str(ckpt), "--format", "onnx", "--out", str(out))
    assert code == 2 and "--format" in err and not out.exists()
    export_diffusers(ckpt, out)
    with pytest.raises(InputFileError, match="exists"):
        export_diffusers(ckpt, out)
    code, _, err = cli("export", str(ckpt), "--format", "diffusers", "--out", str(out))
    assert code == 2 and "exists" in err

    def fail(self, directory, **kwargs):  # dies half-way through writing the folder
        (directory / "unet").mkdir(parents=True)
        (directory / "model_index.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(AstrogenDiffusionPipeline, "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        export_diffusers(ckpt, out, overwrite=True)
    assert (out / "model_index.json").is_file()  # the old folder is kept whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan.ckpt", "m.ckpt", "model"]  # no .model.partial
    monkeypatch.undo()
    code, _, err = cli("export", str(ckpt), "--format", "diffusers", "--out", str(out), "--overwrite")
    assert code == 0, err
