"""The Lightning Trainer, and how each kind of model turns its experiment config into a module and loaders.

``astrogen train CONFIG.yaml --set optim.lr=1e-4`` and `train` from Python run the same code. The Trainer owns
devices, precision, loops, checkpoints and logs (CSV and TensorBoard under ``trainer.out``). A config's ``kind``
picks its `Task` in `TASKS`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from astrogen.data import FieldSet
from astrogen.data.transforms import ChannelStats
from astrogen.distributed import ReseedAtTrainStart
from astrogen.errors import ConfigError, DataError, InputFileError, UnknownNameError
from astrogen.models.denoiser import DenoiserModule
from astrogen.models.diffusion import DiffusionModule
from astrogen.models.gan import GAN_KINDS, GANModule
from astrogen.models.posterior import PosteriorModule
from astrogen.models.regressor import RegressorModule, TargetScaler, target_matrix
from astrogen.models.segmentation import SegmentationModule
from astrogen.models.vae import VAEModule
from astrogen.tasks import read_checkpoint
from astrogen.train.callbacks import ConvergenceStop, ModeCollapseWarning, load_weights
from astrogen.train.config import (
    DenoiserExperiment,
    Experiment,
    GANTrainConfig,
    PosteriorExperiment,
    RegressorExperiment,
    SegmentationExperiment,
    TrainConfig,
    VAETrainConfig,
    load_train_config,
)
from astrogen.train.data import Split, prepare_split


@dataclass(frozen=True)
class Task:
    """How `train` fits a kind of model.

    ``build(cfg)`` returns ``(module, train_loader, val_loader)``. ``monitor`` is the logged metric that selects
    the best checkpoint (it needs a validation split); ``clip_gradients`` lets the Trainer clip at
    ``cfg.optim.grad_clip`` (False for manual optimisation, e.g. GANs, which clip themselves); ``callbacks(cfg)``
    adds callbacks. ``unused_parameters`` says some steps leave parameters without gradients (a GAN's critic
    step), which DDP must then look for; ``compilable`` is False where torch.compile cannot run the step
    (double backward).
    """

    build: Callable[[Experiment], tuple[L.LightningModule, object, object]]
    monitor: str | None = "val/loss"
    clip_gradients: bool = True
    callbacks: Callable[[Experiment], list] | None = None
    unused_parameters: bool = False
    compilable: bool = True


@dataclass
class TrainResult:
    """Where a training run left its outputs."""

    checkpoint: Path
    out: Path
    steps: int
    metrics: dict[str, float]
    best: Path | None = None  # ``out/best.ckpt``: the checkpoint with the best monitored validation metric


def build_module(cfg: TrainConfig) -> tuple[DiffusionModule, Split]:
    """The diffusion module of ``cfg`` (transform, network range and condition statistics fitted on the training
    split) and the split."""
    split = prepare_split(cfg.data, cfg.trainer.seed, cfg.data.conditions, invertible=True)
    with FieldSet(cfg.data.path) as fs:
        network_range = ChannelStats.of(split.transform.forward(b) for b in fs.image_batches(stop=split.n_train))
    conditions = cfg.data.conditions
    params = np.stack([split.params[c] for c in conditions], 1) if conditions else np.zeros((split.n_train, 0))
    std = params.std(0)
    if np.any(std == 0):
        raise DataError(f"conditions {np.array(conditions)[std == 0].tolist()} are constant in the data")
    jitter = cfg.conditioning.jitter
    jitter = [jitter.get(c, 0.01) if isinstance(jitter, dict) else jitter for c in conditions]
    module = DiffusionModule(
        model=cfg.model.model_dump(), image_shape=split.image_shape, conditions=conditions,
        cond_mean=params.mean(0).tolist(), cond_std=std.tolist(), cond_jitter=jitter,
        cond_dropout=cfg.conditioning.dropout, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_steps, ema_decay=cfg.optim.ema_decay,
        transform=split.transform.to_dict(), data_meta=split.meta.to_attrs(),
        data_range=[network_range.min.tolist(), network_range.max.tolist()],
    )
    return module, split


def _diffusion(cfg: TrainConfig):
    module, split = build_module(cfg)
    return module, split.train, split.val


def _gan(cfg: GANTrainConfig):
    split = prepare_split(cfg.data, cfg.trainer.seed, min_channels=2 if cfg.kind == "pixgan" else 1, invertible=True)
    module = GANModule(cfg.kind, cfg.model.model_dump(), cfg.optim.model_dump(), split.image_shape,
                       list(split.meta.channels), cfg.data.inputs, split.transform.to_dict(), split.meta.to_attrs())
    return module, split.train, split.val


def _gan_callbacks(cfg: GANTrainConfig) -> list:
    callbacks = []
    if cfg.convergence.enabled:
        callbacks.append(ConvergenceStop(("g_loss", "d_loss"), cfg.convergence.window, cfg.convergence.rtol))
    if cfg.collapse.enabled:
        callbacks.append(ModeCollapseWarning(cfg.collapse.every_steps, cfg.collapse.threshold))
    return callbacks


def _vae(cfg: VAETrainConfig):
    split = prepare_split(cfg.data, cfg.trainer.seed, invertible=True)
    module = VAEModule(cfg.model.model_dump(), cfg.optim.model_dump(), split.image_shape, split.transform.to_dict(),
                       split.meta.to_attrs())
    return module, split.train, split.val


def _target_split(cfg: RegressorExperiment | PosteriorExperiment) -> tuple[Split, list[str], np.ndarray]:
    """The split of a targets experiment, the parameter columns its targets sum and the target values over the
    training split."""
    targets = cfg.data.targets
    columns = sorted({name.strip() for target in targets for name in target.split("+")})
    split = prepare_split(cfg.data, cfg.trainer.seed, columns)
    return split, columns, np.stack([split.params[c] for c in columns], 1) @ target_matrix(targets, columns)


def _regressor(cfg: RegressorExperiment):
    split, columns, values = _target_split(cfg)
    scaler = TargetScaler.fit(values)
    module = RegressorModule(cfg.model.model_dump(), split.image_shape, list(cfg.data.targets), columns,
                             scaler.low.tolist(), scaler.high.tolist(), split.transform.to_dict(),
                             cfg.optim.lr, cfg.optim.weight_decay)
    return module, split.train, split.val


def _posterior(cfg: PosteriorExperiment):
    split, columns, values = _target_split(cfg)
    std = values.std(0)
    if not np.isfinite(values).all() or np.any(std == 0):
        raise DataError(f"targets {np.array(cfg.data.targets)[~(std > 0)].tolist()} are constant or not finite in the "
                        "training data")
    meta = split.meta
    training_data = {"path": str(cfg.data.path), "simulator": meta.simulator,
                     "simulator_version": meta.simulator_version, "config": meta.config}
    module = PosteriorModule(cfg.model.model_dump(), split.image_shape, list(cfg.data.targets), columns,
                             values.mean(0).tolist(), std.tolist(), values.min(0).tolist(), values.max(0).tolist(),
                             split.transform.to_dict(), cfg.optim.lr, cfg.optim.weight_decay, training_data)
    return module, split.train, split.val


def _segmentation(cfg: SegmentationExperiment):
    split = prepare_split(cfg.data, cfg.trainer.seed, masks=True)
    module = SegmentationModule(cfg.model.model_dump(), split.image_shape, split.transform.to_dict(),
                                cfg.optim.lr, cfg.optim.weight_decay)
    return module, split.train, split.val


def _denoiser(cfg: DenoiserExperiment):  # clean images only: the module draws the noise
    split = prepare_split(cfg.data, cfg.trainer.seed)
    module = DenoiserModule(cfg.model.model_dump(), split.image_shape, split.transform.to_dict(),
                            cfg.optim.lr, cfg.optim.weight_decay)
    return module, split.train, split.val


TASKS: dict[str, Task] = {
    "diffusion": Task(_diffusion),
    **{kind: Task(_gan, monitor=None, clip_gradients=False, callbacks=_gan_callbacks, unused_parameters=True,
                  compilable=False) for kind in GAN_KINDS},
    "vae": Task(_vae),
    "regressor": Task(_regressor),
    "posterior": Task(_posterior),
    "segmentation": Task(_segmentation),
    "denoiser": Task(_denoiser),
}


def get_task(kind: str) -> Task:
    """The `Task` of ``kind``."""
    if kind not in TASKS:
        raise UnknownNameError(f"unknown kind {kind!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[kind]


def _precision(name: str) -> str:
    if name != "auto":
        return name
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def build_trainer(cfg: Experiment, progress: bool = True, callbacks: list | None = None) -> L.Trainer:
    """The Lightning Trainer for ``cfg``: precision, checkpoints (the latest at every validation, and the best on
    the task's monitored metric), CSV and TensorBoard logs, gradient clipping, step-based validation and a
    wall-clock budget."""
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    task = get_task(cfg.kind)
    out = Path(cfg.trainer.out)
    # last.ckpt: the state at every validation, for resuming (Lightning's save_last=True beside a monitored metric
    # refreshes it only with a new best, so a plateaued validation loss would leave it thousands of steps behind).
    checkpoints = [ModelCheckpoint(dirpath=out / "checkpoints", filename="last", enable_version_counter=False)]
    if task.monitor:  # saved before last.ckpt, so that the best-checkpoint state last.ckpt carries is current
        checkpoints.insert(0, ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{step}",
                                              monitor=task.monitor, save_top_k=1))
    strategy = cfg.trainer.strategy
    if task.unused_parameters and strategy in ("ddp", "ddp_spawn"):
        strategy += "_find_unused_parameters_true"
    callbacks = [*checkpoints, ReseedAtTrainStart(cfg.trainer.seed), *(task.callbacks(cfg) if task.callbacks else []),
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
    count included), read as plain data (`astrogen.tasks.read_checkpoint`); ``init_from`` starts a new run from
    another checkpoint's weights (`load_weights`). ``callbacks`` are extra Lightning
    callbacks. A ``trainer.out`` that already holds a ``final.ckpt`` is refused unless ``overwrite`` or ``resume``.
    """
    cfg = load_train_config(config, overrides)
    task = get_task(cfg.kind)
    if task.monitor and cfg.data.val_fraction == 0:
        raise ConfigError(f"data.val_fraction must be > 0: {task.monitor} on the validation split selects the best "
                          "checkpoint")
    if cfg.trainer.compile and not task.compilable:
        raise ConfigError(f"trainer.compile: {cfg.kind} training cannot be compiled (its gradient penalty "
                          "differentiates twice)")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module, train_loader, val_loader = task.build(cfg)
    if cfg.init_from:
        load_weights(module, cfg.init_from)
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
    # A save, not a load: Lightning's weights_only=False writes the full state (optimizer included, resumable) as
    # plain data; every checkpoint astrogen reads goes through torch.load(weights_only=True) (tasks.read_checkpoint).
    trainer.save_checkpoint(out / "final.ckpt", weights_only=False)
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor), "")
    if best and trainer.is_global_zero:
        partial = out / "best.ckpt.partial"
        shutil.copyfile(best, partial)
        partial.replace(out / "best.ckpt")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return TrainResult(out / "final.ckpt", out, trainer.global_step, metrics, out / "best.ckpt" if best else None)
