"""Training experiments: one config shape for every kind of model, validated from YAML with dotted overrides.

Every experiment has the same sections (`Experiment`): ``kind`` (default ``diffusion``), ``data`` (`DataConfig`: a
FieldSet, its split, the transform to network space, augmentation, loaders, and the parameter columns or channels
the kind reads: ``conditions``, ``targets`` or ``inputs``), ``model`` (the network's config from `astrogen.models`),
``optim`` (`OptimConfig`, or its subclass with the kind's extras), ``init_from`` (transfer learning) and ``trainer``
(`RunConfig`); diffusion adds ``conditioning``, the GANs ``convergence`` and ``collapse``. `EXPERIMENTS` maps each
kind to its config. Keys of older files that moved (top-level ``targets`` and ``inputs``) are one-line errors
naming the new place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from astrogen.config import StrictModel, load_yaml, validate_config
from astrogen.errors import ConfigError, UnknownNameError
from astrogen.models.denoiser import DAEConfig
from astrogen.models.diffusion import DiffusionConfig, DiffusionOptimConfig
from astrogen.models.gan import GANNetConfig, GANOptimConfig
from astrogen.models.optim import OptimConfig
from astrogen.models.posterior import PosteriorConfig
from astrogen.models.regressor import RegressorConfig
from astrogen.models.segmentation import UNetConfig
from astrogen.models.vae import VAENetConfig, VAEOptimConfig

COLUMNS = ("conditions", "targets", "inputs")  # the `DataConfig` keys that only some kinds read
MOVED = {"targets": "data.targets", "inputs": "data.inputs"}  # old top-level keys -> where they live now


class BalanceConfig(StrictModel):
    """Draw training samples with weight n^-power, n the number of training samples in the same one of ``bins``
    equal-width bins of the parameter ``column`` (power 1: flat in the column; as stored as power -> 0).

    A model conditioned on ``column`` still learns p(image | column), with more of its updates on the sparse
    values; an unconditional model, the unconditional branch of classifier-free guidance and a regressor of
    ``column`` learn the reweighted mix instead.
    """

    column: str = Field(description="param column to balance")
    bins: int = Field(40, ge=2, description="equal-width bins over the training split's range")
    power: float = Field(0.5, gt=0, le=1, description="weight n^-power, n the count in the sample's bin")


class DataConfig(StrictModel):
    """Training data, the same for every kind: a FieldSet, its split, the transform to network space,
    augmentation, loaders and the columns the kind reads.

    ``transform`` and ``augment`` default to ``[MinMax]`` and ``true`` (generative kinds); the inference kinds
    (regressor, segmentation, denoiser, posterior) default to ``[Log1p, MinMax]`` (counts maps) and ``false`` (a
    target may change under a rotation). ``val_fraction`` 0 suits only the GANs: the other kinds keep the
    checkpoint with the best validation loss. Only the kinds named in the descriptions of ``conditions``,
    ``targets`` and ``inputs`` accept them.
    """

    path: str = Field(description="FieldSet file")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="last fraction of the file held out")
    conditions: list[str] = Field(default_factory=list, description="diffusion: param columns to condition on")
    targets: list[str] = Field(default_factory=list, description="regressor, posterior (at least one): param "
                               "columns to predict, or sums of them ('a+b')")
    inputs: list[str] = Field(default_factory=list, description="pixgan: channels given to the generator")
    transform: list[dict] = Field(default_factory=lambda: [{"name": "MinMax"}],
                                  description="Compose stages mapping physical images to network space")
    augment: bool | Literal["flips"] = Field(
        True, description="random symmetries: true, the 8 dihedral maps (only if no direction is preferred); "
        "'flips', the mirror flips about both image axes and the half turn (they keep a horizontal disk horizontal)")
    shift: bool = Field(False, description="random periodic shifts (periodic sets only)")
    balance: BalanceConfig | None = Field(None, description="draw sparse values of a param column more often")
    batch_size: int = Field(32, ge=1, description="global batch, split across devices x nodes")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per device")


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
    max_minutes: float | None = Field(
        None, gt=0, description="wall-clock budget of the whole run (a resumed run counts the minutes already done)")
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


class Experiment(StrictModel):
    """The sections of every experiment; each kind's subclass fixes ``kind`` and the types of ``model`` and
    ``optim``, and says which of ``data.conditions``, ``targets`` and ``inputs`` it reads (``columns``: name ->
    required)."""

    columns: ClassVar[dict[str, bool]] = {}
    data_defaults: ClassVar[dict] = {}  # the kind's defaults of `DataConfig` keys, where they differ

    kind: str
    data: DataConfig
    model: StrictModel
    optim: OptimConfig = Field(default_factory=OptimConfig)
    init_from: str | None = Field(None, description="checkpoint whose weights start the run (transfer learning; "
                                  "same network and image size)")
    trainer: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="before")
    @classmethod
    def _kind_data_defaults(cls, values):
        if cls.data_defaults and isinstance(values, dict) and isinstance(values.get("data"), dict):
            values = {**values, "data": {**cls.data_defaults, **values["data"]}}
        return values


class TrainConfig(Experiment):
    """A diffusion training experiment (``kind: diffusion``, the default)."""

    columns: ClassVar[dict[str, bool]] = {"conditions": False}

    kind: Literal["diffusion"] = "diffusion"
    model: DiffusionConfig = Field(default_factory=DiffusionConfig)
    optim: DiffusionOptimConfig = Field(default_factory=DiffusionOptimConfig)
    conditioning: ConditioningConfig = Field(default_factory=ConditioningConfig)


class GANTrainConfig(Experiment):
    """A GAN experiment: ``kind`` wgan (DCWGAN-GP), pixgan (``data.inputs`` channels -> the others) or vaegan."""

    columns: ClassVar[dict[str, bool]] = {"inputs": False}  # GANModule checks that pixgan, and only it, has some

    kind: Literal["wgan", "pixgan", "vaegan"] = "wgan"
    model: GANNetConfig = Field(default_factory=GANNetConfig)
    optim: GANOptimConfig = Field(default_factory=GANOptimConfig)
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    collapse: CollapseConfig = Field(default_factory=CollapseConfig)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/gan"))


class VAETrainConfig(Experiment):
    """A VAE experiment (``kind: vae``)."""

    kind: Literal["vae"] = "vae"
    model: VAENetConfig = Field(default_factory=VAENetConfig)
    optim: VAEOptimConfig = Field(default_factory=VAEOptimConfig)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/vae"))


class InferenceExperiment(Experiment):
    """The inference kinds' defaults: inputs through ``[Log1p, MinMax]``, no augmentation."""

    data_defaults: ClassVar[dict] = {"transform": [{"name": "Log1p"}, {"name": "MinMax"}], "augment": False}


class RegressorExperiment(InferenceExperiment):
    """A regressor training experiment (``kind: regressor``)."""

    columns: ClassVar[dict[str, bool]] = {"targets": True}

    kind: Literal["regressor"] = "regressor"
    model: RegressorConfig = Field(default_factory=RegressorConfig)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/regressor"))


class SegmentationExperiment(InferenceExperiment):
    """A segmentation training experiment (``kind: segmentation``)."""

    kind: Literal["segmentation"] = "segmentation"
    model: UNetConfig = Field(default_factory=UNetConfig)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/segmentation"))


class DenoiserExperiment(InferenceExperiment):
    """A denoising-autoencoder training experiment (``kind: denoiser``)."""

    kind: Literal["denoiser"] = "denoiser"
    model: DAEConfig = Field(default_factory=DAEConfig)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/denoiser"))


class PosteriorExperiment(InferenceExperiment):
    """A neural posterior estimation experiment (``kind: posterior``)."""

    columns: ClassVar[dict[str, bool]] = {"targets": True}

    kind: Literal["posterior"] = "posterior"
    model: PosteriorConfig = Field(default_factory=PosteriorConfig)
    trainer: RunConfig = Field(default_factory=lambda: RunConfig(out="runs/posterior"))


EXPERIMENTS: dict[str, type[Experiment]] = {
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
                      overrides: Mapping[str, object] | None = None) -> Experiment:
    """Validate a training config (YAML file, dict or config model) with dotted overrides, by its ``kind``."""
    if isinstance(source, BaseModel):
        source = source.model_dump()
    where = str(source) if isinstance(source, (str, os.PathLike)) else "train config"
    values = apply_overrides(load_yaml(source) if isinstance(source, (str, os.PathLike)) else dict(source),
                             overrides or {})
    for key, new in MOVED.items():
        if key in values:
            raise ConfigError(f"{where}: {key} moved to {new}")
    kind = values.get("kind", "diffusion")
    if kind not in EXPERIMENTS:
        raise UnknownNameError(f"unknown kind {kind!r}; available: {', '.join(sorted(EXPERIMENTS))}")
    cfg = validate_config(EXPERIMENTS[kind], values, where)
    for key in COLUMNS:
        if getattr(cfg.data, key) and key not in cfg.columns:
            raise ConfigError(f"{where}: data.{key}: a {kind} experiment takes no {key}")
        if cfg.columns.get(key) and not getattr(cfg.data, key):
            raise ConfigError(f"{where}: data.{key}: a {kind} experiment needs at least one")
    return cfg
