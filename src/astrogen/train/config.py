"""Training experiments: one config per kind of model, validated from YAML with dotted overrides.

Every experiment has the same shape: ``kind`` (default ``diffusion``), ``data`` (a FieldSet, its split, the
transform to network space, augmentation, loaders), ``model`` (the network's config from `astrogen.models`),
``optim`` and ``trainer`` (`RunConfig`), plus the few keys a kind adds (GAN ``inputs``, ``convergence``,
``collapse``; ``init_from``; inference ``targets``). `EXPERIMENTS` maps each kind to its config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field

from astrogen.config import StrictModel, load_yaml, validate_config
from astrogen.errors import UnknownNameError
from astrogen.models.denoiser import DAEConfig
from astrogen.models.diffusion import DiffusionConfig
from astrogen.models.gan import GANNetConfig, GANOptimConfig
from astrogen.models.posterior import PosteriorConfig
from astrogen.models.regressor import RegressorConfig
from astrogen.models.segmentation import UNetConfig
from astrogen.models.vae import VAENetConfig, VAEOptimConfig


class DataConfig(StrictModel):
    """Training data of a generative model: a FieldSet, its split, the transform to network space and
    augmentation."""

    path: str = Field(description="FieldSet file")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="last fraction of the file held out")
    conditions: list[str] = Field(default_factory=list, description="param columns to condition on")
    transform: list[dict] = Field(default_factory=lambda: [{"name": "MinMax"}], description="Compose stages")
    augment: bool = Field(True, description="random dihedral symmetries")
    shift: bool = Field(False, description="random periodic shifts (periodic sets only)")
    batch_size: int = Field(32, ge=1, description="global batch, split across devices x nodes")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per device")


class InferenceData(StrictModel):
    """Training data of an inference network: a FieldSet, its split, input transform and augmentation."""

    path: str = Field(description="FieldSet file")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="last fraction of the file held out")
    transform: list[dict] = Field(default_factory=lambda: [{"name": "Log1p"}, {"name": "MinMax"}],
                                  description="Compose stages mapping physical images to network inputs")
    augment: bool | Literal["flips"] = Field(
        False, description="random symmetries: true, the 8 dihedral maps (only if no direction is preferred); "
        "'flips', the mirror flips about both image axes and the half turn (they keep a horizontal disk horizontal)")
    shift: bool = Field(False, description="random periodic shifts (periodic sets only)")
    batch_size: int = Field(32, ge=1, description="global batch, split across devices x nodes")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per device")


class OptimConfig(StrictModel):
    """AdamW with linear warm-up, gradient clipping and an EMA of the weights."""

    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(500, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)


class InferenceOptim(StrictModel):
    """Adam with weight decay and gradient clipping."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)


class ConditioningConfig(StrictModel):
    """Condition jitter (std in each condition's own units; one value or one per name) and dropout."""

    jitter: float | dict[str, float] = 0.01
    dropout: float = Field(0.1, ge=0, le=1)


class ConvergenceConfig(StrictModel):
    """Stop when the means of the last two windows of losses agree within ``rtol`` (see `ConvergenceStop`)."""

    enabled: bool = True
    window: int = Field(50, ge=1)
    rtol: float = Field(0.1, gt=0)


class CollapseConfig(StrictModel):
    """Warn when generated batches are much less diverse than real ones (see `ModeCollapseWarning`)."""

    enabled: bool = True
    every_steps: int = Field(200, ge=1)
    threshold: float = Field(0.2, gt=0, lt=1)


class RunConfig(StrictModel):
    """Loop length, hardware and outputs."""

    out: str = Field("runs/diffusion", description="directory for checkpoints and logs")
    max_steps: int = Field(20_000, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="wall-clock budget")
    val_every_steps: int = Field(500, ge=1)
    log_every_steps: int = Field(50, ge=1)
    precision: str = Field("auto", description="'auto' = bf16-mixed on GPUs that support it, else 32-true")
    accelerator: str = Field("auto", description="cpu, gpu, cuda, mps or auto")
    devices: int | str = Field("auto", description="devices per node: a count, 'auto' or a list like '0,1'")
    num_nodes: int = Field(1, ge=1, description="machines (e.g. SLURM nodes)")
    strategy: Literal["auto", "ddp", "ddp_spawn", "fsdp"] = Field(
        "auto", description="'ddp' for several devices (processes); 'fsdp' shards the model (GPUs)")
    channels_last: bool = Field(False, description="NHWC weights and activations (try on GPUs; no gain on CPU)")
    compile: bool = Field(False, description="torch.compile the networks (try on GPUs; no gain on CPU)")
    seed: int = Field(0, ge=0)


class TrainConfig(StrictModel):
    """A diffusion training experiment (``kind: diffusion``, the default)."""

    kind: Literal["diffusion"] = "diffusion"
    data: DataConfig
    model: DiffusionConfig = Field(default_factory=DiffusionConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    conditioning: ConditioningConfig = Field(default_factory=ConditioningConfig)
    trainer: RunConfig = Field(default_factory=RunConfig)


class GANTrainConfig(StrictModel):
    """A GAN experiment: ``kind`` wgan (DCWGAN-GP), pixgan (``inputs`` channels -> the others) or vaegan."""

    kind: Literal["wgan", "pixgan", "vaegan"] = "wgan"
    data: DataConfig
    inputs: list[str] = Field(default_factory=list, description="pixgan: channels given to the generator")
    model: GANNetConfig = Field(default_factory=GANNetConfig)
    optim: GANOptimConfig = Field(default_factory=GANOptimConfig)
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    collapse: CollapseConfig = Field(default_factory=CollapseConfig)
    init_from: str | None = Field(None, description="checkpoint whose weights start the run (transfer learning)")
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/gan"))


class VAETrainConfig(StrictModel):
    """A VAE experiment (``kind: vae``)."""

    kind: Literal["vae"] = "vae"
    data: DataConfig
    model: VAENetConfig = Field(default_factory=VAENetConfig)
    optim: VAEOptimConfig = Field(default_factory=VAEOptimConfig)
    init_from: str | None = Field(None, description="checkpoint whose weights start the run (transfer learning)")
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/vae"))


class RegressorExperiment(StrictModel):
    """A regressor training experiment (``kind: regressor``)."""

    kind: Literal["regressor"] = "regressor"
    data: InferenceData
    targets: list[str] = Field(min_length=1, description="param columns, or sums of them ('a+b')")
    model: RegressorConfig = Field(default_factory=RegressorConfig)
    optim: InferenceOptim = Field(default_factory=InferenceOptim)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/regressor"))


class SegmentationExperiment(StrictModel):
    """A segmentation training experiment (``kind: segmentation``)."""

    kind: Literal["segmentation"] = "segmentation"
    data: InferenceData
    model: UNetConfig = Field(default_factory=UNetConfig)
    optim: InferenceOptim = Field(default_factory=InferenceOptim)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/segmentation"))


class DenoiserExperiment(StrictModel):
    """A denoising-autoencoder training experiment (``kind: denoiser``)."""

    kind: Literal["denoiser"] = "denoiser"
    data: InferenceData
    model: DAEConfig = Field(default_factory=DAEConfig)
    optim: InferenceOptim = Field(default_factory=InferenceOptim)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/denoiser"))


class PosteriorExperiment(StrictModel):
    """A neural posterior estimation experiment (``kind: posterior``)."""

    kind: Literal["posterior"] = "posterior"
    data: InferenceData
    targets: list[str] = Field(min_length=1, description="param columns, or sums of them ('a+b')")
    model: PosteriorConfig = Field(default_factory=PosteriorConfig)
    optim: InferenceOptim = Field(default_factory=InferenceOptim)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/posterior"))


EXPERIMENTS: dict[str, type[BaseModel]] = {
    "diffusion": TrainConfig, "wgan": GANTrainConfig, "pixgan": GANTrainConfig, "vaegan": GANTrainConfig,
    "vae": VAETrainConfig, "regressor": RegressorExperiment, "segmentation": SegmentationExperiment,
    "denoiser": DenoiserExperiment, "posterior": PosteriorExperiment,
}


def apply_overrides(values: dict, overrides: Mapping[str, object]) -> dict:
    """Set dotted keys (``optim.lr``) of a nested dict; returns a new dict."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[leaf] = value
    return out


def load_train_config(source: str | os.PathLike | Mapping | BaseModel,
                      overrides: Mapping[str, object] | None = None) -> BaseModel:
    """Validate a training config (YAML file, dict or config model) with dotted overrides, by its ``kind``."""
    if isinstance(source, BaseModel):
        source = source.model_dump()
    where = str(source) if isinstance(source, (str, os.PathLike)) else "train config"
    values = apply_overrides(load_yaml(source) if isinstance(source, (str, os.PathLike)) else dict(source),
                             overrides or {})
    kind = values.get("kind", "diffusion")
    if kind not in EXPERIMENTS:
        raise UnknownNameError(f"unknown kind {kind!r}; available: {', '.join(sorted(EXPERIMENTS))}")
    return validate_config(EXPERIMENTS[kind], values, where)
