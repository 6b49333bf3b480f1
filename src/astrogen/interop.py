"""Diffusion models as diffusers pipelines: `export_diffusers` writes the folder, `AstrogenDiffusionPipeline` samples.

A plain ``UNet2DModel`` + ``DDPMPipeline`` loses four things an astrogen diffusion model needs; the folder keeps them::

    OUT/
      model_index.json          pipeline config: periodic, transform (physical <-> network), data_meta
      pipeline.py               two lines re-exporting AstrogenDiffusionPipeline (for custom_pipeline="pipeline")
      unet/                     UNet2DModel: config.json + diffusion_pytorch_model.safetensors (the EMA weights)
      scheduler/                scheduler_config.json: T, betas, prediction type (epsilon or v_prediction)
      condition/                ConditionEncoder (conditional models only): names, mean/std, MLP weights

* **periodic padding**: ``UNet2DModel.from_pretrained(OUT, subfolder="unet")`` builds zero-padded convolutions;
  the pipeline (or `periodic_padding`) sets circular padding on every padded ``Conv2d`` when ``periodic`` is true.
* **conditions**: the UNet's class embedding is the identity; `ConditionEncoder` standardises the conditions,
  embeds them (astrogen's `ConditionEmbedding`) and feeds them as ``class_labels``; a zero label is the
  unconditional model, which gives classifier-free guidance (``guidance_scale``).
* **physical units**: the pipeline applies the inverse of the training transform with astrogen's own `Transform`
  (so sampling needs astrogen installed; the transform maths is not copied into the folder).
* **schedule**: ``scheduler_config.json`` is astrogen's DPM-Solver++ sampler (the default, 20 steps) and also holds
  the DDPM and DDIM settings, so ``DDPMScheduler``, ``DDIMScheduler`` and ``DPMSolverMultistepScheduler``
  ``.from_pretrained(OUT, subfolder="scheduler")`` each rebuild astrogen's sampler of that name.

Loading ``AstrogenDiffusionPipeline.from_pretrained(OUT)`` runs no code from the folder;
``DiffusionPipeline.from_pretrained(OUT, custom_pipeline="pipeline", trust_remote_code=True)`` runs ``pipeline.py``.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from diffusers import (
    ConfigMixin,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    ModelMixin,
    SchedulerMixin,
    UNet2DModel,
)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from astrogen import __version__
from astrogen._io import jsonable
from astrogen.data.transforms import Transform
from astrogen.errors import ConfigError, InputFileError
from astrogen.models.diffusion import ConditionEmbedding, DiffusionModule, make_scheduler
from astrogen.tasks import load_model, resolve

PIPELINE_FILE = "pipeline.py"
PIPELINE_CODE = '''"""Sampling pipeline of an astrogen diffusion model (needs astrogen installed).

DiffusionPipeline.from_pretrained(FOLDER, custom_pipeline="pipeline", trust_remote_code=True) runs this file;
astrogen.interop.AstrogenDiffusionPipeline.from_pretrained(FOLDER) loads the same pipeline without running it.
"""

from astrogen.interop import AstrogenDiffusionPipeline

__all__ = ["AstrogenDiffusionPipeline"]
'''


def periodic_padding(unet: nn.Module) -> nn.Module:
    """Set circular padding on every padded ``Conv2d`` of ``unet`` (as astrogen's `Denoiser` does), in place."""
    for module in unet.modules():
        if isinstance(module, nn.Conv2d) and any(module.padding):
            module.padding_mode = "circular"
    return unet


class ConditionEncoder(ModelMixin, ConfigMixin):
    """Conditions in their own units ``[N, P]`` -> class labels ``[N, dim]`` for the UNet's identity class embedding.

    Parameters
    ----------
    names : condition names, in column order.
    mean, std : standardisation of each condition (its own units).
    dim : width of the UNet's time embedding (4 x its first channel width).
    features : sinusoidal features per condition.
    """

    @register_to_config
    def __init__(self, names: list[str], mean: list[float], std: list[float], dim: int, features: int = 64):
        super().__init__()
        self.embedding = ConditionEmbedding(len(names), dim, features)

    def forward(self, cond: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Labels of ``cond`` [N, P]; ``keep`` [N] in {0, 1} drops a sample's condition (zero label) when 0."""
        mean, std = (torch.tensor(v, dtype=torch.float32, device=cond.device) for v in (self.config.mean,
                                                                                        self.config.std))
        labels = self.embedding((cond.float() - mean) / std)
        if keep is not None:
            labels = labels * keep[:, None].to(labels.dtype)
        return labels


@dataclass
class FieldPipelineOutput(BaseOutput):
    """Samples ``[N, C, H, W]`` (torch tensor or NumPy array), in physical units unless ``physical=False``."""

    images: torch.Tensor | np.ndarray


class AstrogenDiffusionPipeline(DiffusionPipeline):
    """Sample an exported astrogen diffusion model with diffusers: periodic padding, conditions with classifier-free
    guidance, and samples in physical units (the inverse data transform).

    Parameters
    ----------
    unet : the denoiser (predicts eps or v, as the scheduler's ``prediction_type`` says).
    scheduler : any diffusers scheduler built from the folder's ``scheduler_config.json``.
    condition : `ConditionEncoder` of a conditional model, None for an unconditional one.
    periodic : circular padding in every convolution (periodic fields).
    transform : `Transform.to_dict()` of the training transform (physical -> network space), or None.
    data_meta : the training set's metadata (channels, units, pixel size), for reference.
    """

    model_cpu_offload_seq = "condition->unet"
    _optional_components: ClassVar[list[str]] = ["condition"]

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, condition: ConditionEncoder | None = None,
                 periodic: bool = False, transform: dict | None = None, data_meta: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, condition=condition)
        self.register_to_config(periodic=periodic, transform=transform, data_meta=data_meta)
        if periodic:
            periodic_padding(unet)
        self.transform = Transform.from_dict(transform) if transform else None

    def _conditions(self, conditions, n: int, device: torch.device) -> torch.Tensor | None:
        """``conditions`` as a float32 ``[n, P]`` tensor: an array ``[P]`` or ``[n, P]``, or a dict name -> value(s)."""
        names = list(self.condition.config.names) if self.condition is not None else []
        if (conditions is None) != (not names):
            raise ValueError(f"the model is conditioned on {names or 'nothing'}; "
                             f"{'pass' if names else 'do not pass'} conditions")
        if conditions is None:
            return None
        if isinstance(conditions, dict):
            if set(conditions) != set(names):
                raise ValueError(f"conditions must name exactly {names}, got {sorted(conditions)}")
            columns = [np.asarray(conditions[k], dtype=np.float32).reshape(-1) for k in names]
            if any(c.size not in (1, n) for c in columns):
                raise ValueError(f"each condition takes one value or {n} values")
            conditions = np.stack([np.broadcast_to(c, n) for c in columns], 1)
        cond = torch.as_tensor(conditions).float() if isinstance(conditions, torch.Tensor) else \
            torch.as_tensor(np.asarray(conditions, dtype=np.float32))
        if cond.ndim == 1:
            cond = cond.expand(n, -1)
        if tuple(cond.shape) != (n, len(names)):
            raise ValueError(f"conditions must be [{n}, {len(names)}] ({', '.join(names)}), got {tuple(cond.shape)}")
        return cond.to(device)

    @torch.no_grad()
    def __call__(self, batch_size: int = 1, conditions=None, guidance_scale: float = 1.0,
                 num_inference_steps: int = 20, generator: torch.Generator | None = None, output_type: str = "pt",
                 physical: bool = True, return_dict: bool = True):
        """Draw ``batch_size`` samples, as astrogen's `DiffusionModule.sample` does with the same scheduler.

        Parameters
        ----------
        batch_size : number of samples.
        conditions : a conditional model's conditions in their own units: ``[P]`` (all samples), ``[N, P]``, or a
            dict name -> value or ``[N]`` values.
        guidance_scale : classifier-free guidance w: out_u + w (out_c - out_u); 1 is the conditional model alone.
        num_inference_steps : sampler steps (1..T).
        generator : a CPU ``torch.Generator`` for the initial and the sampler noise (a seed fixes the result).
        output_type : ``"pt"`` (torch tensor) or ``"np"`` (NumPy array), shaped ``[N, C, H, W]``.
        physical : apply the inverse data transform (physical units); False returns network space.
        return_dict : return a `FieldPipelineOutput` rather than a tuple.
        """
        if output_type not in ("pt", "np"):
            raise ValueError(f"output_type must be 'pt' or 'np', got {output_type!r}")
        timesteps = self.scheduler.config.num_train_timesteps
        if not 1 <= num_inference_steps <= timesteps:
            raise ValueError(f"num_inference_steps must be in 1..{timesteps}, got {num_inference_steps}")
        device = self._execution_device
        cond = self._conditions(conditions, batch_size, device)
        guided = cond is not None and guidance_scale != 1.0
        size, channels = self.unet.config.sample_size, self.unet.config.in_channels
        self.scheduler.set_timesteps(num_inference_steps)
        # float32 noise from the (CPU) generator, then the model's device: the bits astrogen draws.
        x = randn_tensor((batch_size, channels, size, size), generator=generator, device=device,
                         dtype=torch.float32) * self.scheduler.init_noise_sigma
        labels = None
        if guided:
            keep = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)]).to(device)
            labels = self.condition(cond.repeat(2, 1), keep)
        elif cond is not None:
            labels = self.condition(cond)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = self.scheduler.scale_model_input(x, t).to(self.unet.dtype)
            t_batch = torch.full((batch_size,), int(t), device=device, dtype=torch.long)
            if guided:
                both = self.unet(model_in.repeat(2, 1, 1, 1), t_batch.repeat(2),
                                 class_labels=labels.to(self.unet.dtype)).sample.float()
                conditional, unconditional = both.chunk(2)
                out = unconditional + guidance_scale * (conditional - unconditional)
            else:
                out = self.unet(model_in, t_batch,
                                class_labels=None if labels is None else labels.to(self.unet.dtype)).sample.float()
            x = self.scheduler.step(out, t, x, generator=generator).prev_sample
        if physical and self.transform is not None:
            x = self.transform.inverse(x)
        self.maybe_free_model_hooks()
        images = x.cpu().numpy() if output_type == "np" else x
        return FieldPipelineOutput(images=images) if return_dict else (images,)


def scheduler_config(module: DiffusionModule) -> dict:
    """One scheduler config holding astrogen's DPM-Solver++, DDPM and DDIM samplers (`make_scheduler`).

    Each class keeps the keys it knows and diffusers drops its compatible classes' keys silently; the only key
    they disagree on is DDPM's ``variance_type`` ("fixed_small"), which DPM-Solver++ reads only when learned.
    """
    config = {}
    for sampler in ("dpm", "ddim", "ddpm"):  # DDPM last: its variance_type is the one with a meaning
        config.update({k: v for k, v in make_scheduler(module.config, sampler).config.items()
                       if not k.startswith("_")})
    return config  # as diffusers writes it (lambda_min_clipped = -inf is JSON's -Infinity)


def to_diffusers(module: DiffusionModule) -> AstrogenDiffusionPipeline:
    """The diffusers pipeline of an astrogen diffusion model, with its EMA weights (what sampling uses)."""
    if not isinstance(module, DiffusionModule):
        raise ConfigError(f"only diffusion models convert to diffusers, got a {type(module).__name__}")
    state = module.exported_state()
    weights = {part: {k.split(".", 2)[2]: v.detach().cpu().float().clone() for k, v in state.items()
                      if k.startswith(f"denoiser.{part}.")} for part in ("unet", "condition")}
    unet = UNet2DModel.from_config(module.ema.module.unet.config)
    unet.load_state_dict(weights["unet"])
    condition = None
    if module.conditions:
        condition = ConditionEncoder(list(module.conditions), module.cond_mean.tolist(), module.cond_std.tolist(),
                                     dim=unet.config.block_out_channels[0] * 4, features=module.config.cond_features)
        condition.embedding.load_state_dict(weights["condition"])
    scheduler = DPMSolverMultistepScheduler.from_config(scheduler_config(module))
    hparams = module.hparams
    return AstrogenDiffusionPipeline(
        unet.eval(), scheduler, condition.eval() if condition is not None else None, periodic=module.config.periodic,
        transform=jsonable(hparams.get("transform")), data_meta=jsonable(hparams.get("data_meta")))


def export_diffusers(source: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the diffusers folder ``out`` (layout in the module docstring) from a diffusion checkpoint or folder.

    The folder appears whole or not at all; an existing ``out`` is kept unless ``overwrite``.
    """
    src, out = resolve(source), Path(out)
    if out.exists() and not overwrite:
        raise InputFileError(f"{out}: exists (choose another name or overwrite it)")
    if not out.parent.is_dir():
        raise InputFileError(f"{out.parent}: output directory does not exist")
    module = load_model(src)
    if not isinstance(module, DiffusionModule):
        raise ConfigError(f"{source}: a {type(module).__name__}; only diffusion models export to diffusers")
    pipeline = to_diffusers(module)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        (tmp / PIPELINE_FILE).write_text(PIPELINE_CODE)
        index = json.loads((tmp / "model_index.json").read_text())
        index["_astrogen"] = {"exported_from": src.name, "astrogen_version": __version__}  # provenance only
        (tmp / "model_index.json").write_text(json.dumps(index, indent=1) + "\n")
        for path in tmp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # a shareable model, like every other output
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

