"""Training: experiment configs (YAML), the FieldSet data module, and the Lightning Trainer.

``astrogen train CONFIG.yaml --set optim.lr=1e-4`` and `train` from Python run the same code. The
Trainer owns devices, precision, loops, checkpoints and logs (CSV and TensorBoard under ``out``).
A config's ``kind`` (default ``diffusion``) names a registered `Task`: its config model and how it builds
the LightningModule and data loaders. Tasks register on import of their module (``TASK_MODULES``).
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from pydantic import BaseModel, Field

from astrogen.config import StrictModel, load_yaml, validate_config
from astrogen.data import Augment, FieldSet
from astrogen.data.dataset import FieldSetDataset
from astrogen.data.transforms import ChannelStats, MaxNorm, Transform
from astrogen.distributed import ReseedAtTrainStart, make_loaders
from astrogen.errors import ConfigError, DataError, InputFileError, UnknownNameError
from astrogen.models.diffusion import DiffusionConfig, DiffusionModule
from astrogen.tasks import read_checkpoint


class DataConfig(StrictModel):
    """Training data: a FieldSet, its split, the transform to network space and augmentation."""

    path: str = Field(description="FieldSet file")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="last fraction of the file held out")
    conditions: list[str] = Field(default_factory=list, description="param columns to condition on")
    transform: list[dict] = Field(default_factory=lambda: [{"name": "MinMax"}], description="Compose stages")
    augment: bool = Field(True, description="random dihedral symmetries")
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


class ConditioningConfig(StrictModel):
    """Condition jitter (std in each condition's own units; one value or one per name) and dropout."""

    jitter: float | dict[str, float] = 0.01
    dropout: float = Field(0.1, ge=0, le=1)


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
    """A diffusion training experiment (the YAML files under ``configs/``)."""

    kind: Literal["diffusion"] = "diffusion"
    data: DataConfig
    model: DiffusionConfig = Field(default_factory=DiffusionConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    conditioning: ConditioningConfig = Field(default_factory=ConditioningConfig)
    trainer: RunConfig = Field(default_factory=RunConfig)


@dataclass(frozen=True)
class Task:
    """A kind of model that `train` fits.

    ``config`` is the pydantic model of the whole experiment (fields ``kind`` and ``trainer: RunConfig``
    at least); ``build(cfg)`` returns ``(module, train_loader, val_loader)``. ``monitor`` is the logged
    metric that selects the best checkpoint; ``clip_gradients`` lets the Trainer clip at ``cfg.optim.grad_clip``
    (False for manual optimisation, e.g. GANs, which clip themselves); ``callbacks(cfg)`` adds callbacks.
    ``unused_parameters`` says some steps leave parameters without gradients (a GAN's critic step), which
    DDP must then look for; ``compilable`` is False where torch.compile cannot run the step (double backward).
    """

    config: type[BaseModel]
    build: Callable[[BaseModel], tuple[L.LightningModule, object, object]]
    monitor: str | None = "val/loss"
    clip_gradients: bool = True
    callbacks: Callable[[BaseModel], list] | None = None
    unused_parameters: bool = False
    compilable: bool = True


TASKS: dict[str, Task] = {}
# kind -> module whose import registers it (kept lazy so `astrogen train` loads only what it runs).
TASK_MODULES = {"diffusion": "astrogen.train", "wgan": "astrogen.models.gan", "pixgan": "astrogen.models.gan",
                "vaegan": "astrogen.models.gan", "vae": "astrogen.models.vae", "regressor": "astrogen.models.regressor",
                "segmentation": "astrogen.models.segmentation", "denoiser": "astrogen.models.denoiser",
                "posterior": "astrogen.models.posterior"}


def register_task(kind: str, task: Task) -> None:
    """Make ``kind`` trainable with `train` / ``astrogen train``."""
    TASKS[kind] = task


def get_task(kind: str) -> Task:
    """The registered `Task` of ``kind`` (importing its module on first use)."""
    if kind not in TASKS and kind in TASK_MODULES:
        importlib.import_module(TASK_MODULES[kind])
    if kind not in TASKS:
        raise UnknownNameError(f"unknown kind {kind!r}; available: {', '.join(sorted(TASK_MODULES))}")
    return TASKS[kind]


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
    return validate_config(get_task(values.get("kind", "diffusion")).config, values, where)


@dataclass
class TrainResult:
    """Where a training run left its outputs."""

    checkpoint: Path
    out: Path
    steps: int
    metrics: dict[str, float]
    best: Path | None = None  # ``out/best.ckpt``: the checkpoint with the best monitored validation metric


def _precision(name: str) -> str:
    if name != "auto":
        return name
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def _loaders(cfg: DataConfig, transform: Transform, n_train: int, n_total: int, seed: int):
    augment = Augment(dihedral=True, shift=cfg.shift) if (cfg.augment or cfg.shift) else None
    train_set = FieldSetDataset(cfg.path, transform, augment, params=cfg.conditions)
    val_set = FieldSetDataset(cfg.path, transform, None, params=cfg.conditions)
    return make_loaders(train_set, val_set, range(n_train), range(n_train, n_total), cfg.batch_size,
                        cfg.num_workers, seed)


def build_module(cfg: TrainConfig) -> tuple[DiffusionModule, int, int]:
    """Fit the transform and condition statistics on the training split; return the module and split."""
    with FieldSet(cfg.data.path) as fs:
        n_total = len(fs)
        n_train = n_total - round(cfg.data.val_fraction * n_total)
        if n_train < 1 or (cfg.data.val_fraction > 0 and n_train == n_total):
            raise DataError(f"{fs.path}: {n_total} samples are too few for val_fraction {cfg.data.val_fraction}")
        if len(fs.sample_shape) != 3:
            raise DataError(f"{fs.path}: diffusion models take 2D images [N, C, H, W], got {fs.shape}")
        missing = sorted(set(cfg.data.conditions) - set(fs.param_names))
        if missing:
            raise ConfigError(f"data.conditions: {fs.path} has no columns {missing}; it has {fs.param_names}")
        transform = Transform.from_dict({"name": "Compose", "transforms": cfg.data.transform})
        if any(isinstance(t, MaxNorm) for t in transform.transforms):
            raise ConfigError("data.transform: MaxNorm is per image and cannot be inverted for generated samples")
        transform.fit(fs.image_batches(stop=n_train))
        network_range = ChannelStats.of(transform.forward(b) for b in fs.image_batches(stop=n_train))
        params = np.stack([fs.params[c][:n_train] for c in cfg.data.conditions], 1) if cfg.data.conditions \
            else np.zeros((n_train, 0))
        meta = fs.meta.to_attrs()
        shape = list(fs.sample_shape)
    jitter = cfg.conditioning.jitter
    jitter = [jitter.get(c, 0.01) if isinstance(jitter, dict) else jitter for c in cfg.data.conditions]
    std = params.std(0)
    if np.any(std == 0):
        raise DataError(f"conditions {np.array(cfg.data.conditions)[std == 0].tolist()} are constant in the data")
    module = DiffusionModule(
        model=cfg.model.model_dump(), image_shape=shape, conditions=cfg.data.conditions,
        cond_mean=params.mean(0).tolist(), cond_std=std.tolist(), cond_jitter=jitter,
        cond_dropout=cfg.conditioning.dropout, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_steps, ema_decay=cfg.optim.ema_decay,
        transform=transform.to_dict(), data_meta=meta,
        data_range=[network_range.min.tolist(), network_range.max.tolist()],
    )
    return module, n_train, n_total


def build_trainer(cfg: BaseModel, progress: bool = True, callbacks: list | None = None) -> L.Trainer:
    """The Lightning Trainer for ``cfg``: precision, checkpoints (best on the task's monitored metric and
    last), CSV and TensorBoard logs, gradient clipping, step-based validation and a wall-clock budget."""
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    task = get_task(cfg.kind)
    out = Path(cfg.trainer.out)
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{step}" if task.monitor else "{step}",
                                 monitor=task.monitor, save_last=True, save_top_k=1)
    strategy = cfg.trainer.strategy
    if task.unused_parameters and strategy in ("ddp", "ddp_spawn"):
        strategy += "_find_unused_parameters_true"
    callbacks = [checkpoint, ReseedAtTrainStart(cfg.trainer.seed), *(task.callbacks(cfg) if task.callbacks else []),
                 *(callbacks or [])]
    if progress:  # each refresh reads the logged losses (a host sync): every 10 steps, not every step
        callbacks.append(TQDMProgressBar(refresh_rate=min(10, cfg.trainer.log_every_steps)))
    return L.Trainer(
        default_root_dir=out,
        max_steps=cfg.trainer.max_steps,
        max_time={"minutes": cfg.trainer.max_minutes} if cfg.trainer.max_minutes else None,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=strategy,
        use_distributed_sampler=False,  # the loaders split global batches across ranks themselves
        precision=_precision(cfg.trainer.precision),
        gradient_clip_val=cfg.optim.grad_clip if task.clip_gradients else None,
        check_val_every_n_epoch=None,
        val_check_interval=cfg.trainer.val_every_steps,
        log_every_n_steps=cfg.trainer.log_every_steps,
        logger=[CSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="tensorboard", version="")],
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_model_summary=progress,
        num_sanity_val_steps=0,
    )


def train(config, overrides: Mapping[str, object] | None = None, resume: str | os.PathLike | None = None,
          progress: bool = True, callbacks: list | None = None, overwrite: bool = False) -> TrainResult:
    """Train the model described by ``config`` (YAML path, dict or config model; ``kind`` picks the task).

    Returns the final checkpoint (``out/final.ckpt``); for diffusion it holds the weights, their EMA, the
    data transform, condition normalisation and the training set's metadata. Tasks that monitor a validation
    metric also leave ``out/best.ckpt``, a copy of the checkpoint where it was lowest (the one to evaluate
    when a model overfits). ``resume`` continues a run from one of its checkpoints (optimizer, EMA and step
    count included), read as plain data (`astrogen.tasks.read_checkpoint`). ``callbacks`` are extra Lightning
    callbacks. A ``trainer.out`` that already holds a ``final.ckpt`` is refused unless ``overwrite`` or ``resume``.
    """
    cfg = load_train_config(config, overrides)
    task = get_task(cfg.kind)
    if cfg.trainer.compile and not task.compilable:
        raise ConfigError(f"trainer.compile: {cfg.kind} training cannot be compiled (its gradient penalty "
                          "differentiates twice)")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module, train_loader, val_loader = task.build(cfg)
    if cfg.trainer.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if cfg.trainer.compile:  # in place, so checkpoints keep their parameter names
        for network in module.children():
            network.compile()
    out = Path(cfg.trainer.out)
    if (out / "final.ckpt").exists() and resume is None and not overwrite:
        raise InputFileError(f"{out} holds a finished run (final.ckpt): choose another trainer.out, continue it with "
                             "--resume or replace it with --overwrite")
    if resume is not None:
        read_checkpoint(resume)  # a one-line error for a missing, foreign or unsafe file, before any banner
    trainer = build_trainer(cfg, progress, callbacks)
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    trainer.save_checkpoint(out / "final.ckpt")  # full state (optimizer included): resumable
    best = trainer.checkpoint_callback.best_model_path if task.monitor else ""
    if best and trainer.is_global_zero:
        partial = out / "best.ckpt.partial"
        shutil.copyfile(best, partial)
        partial.replace(out / "best.ckpt")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return TrainResult(out / "final.ckpt", out, trainer.global_step, metrics, out / "best.ckpt" if best else None)


def _build_diffusion(cfg: TrainConfig):
    if cfg.data.val_fraction == 0:
        raise ConfigError("data.val_fraction must be > 0: validation loss selects the best checkpoint")
    module, n_train, n_total = build_module(cfg)
    return module, *_loaders(cfg.data, module.transform, n_train, n_total, cfg.trainer.seed)


register_task("diffusion", Task(TrainConfig, _build_diffusion))

__all__ = ["TASKS", "Task", "TrainConfig", "TrainResult", "build_module", "build_trainer", "get_task",
           "load_train_config", "register_task", "train"]
