"""Training aids for generative models: convergence stop, mode-collapse warning, transfer learning."""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from astrogen.errors import ConfigError, DataError, InputFileError
from astrogen.tasks import read_checkpoint


def plateaued(values: Sequence[float], window: int = 50, rtol: float = 0.1) -> bool:
    """True when the mean of the last ``window`` values is within ``rtol`` (relative) of the mean of the
    ``window`` before them (microwave-sky report's stopping rule); False with fewer than 2 windows."""
    if len(values) < 2 * window:
        return False
    values = list(values)[-2 * window :]
    before, last = sum(values[:window]) / window, sum(values[window:]) / window
    return abs(last - before) <= rtol * abs(before)


class ConvergenceStop(L.Callback):
    """Stop training once every loss in ``keys`` has `plateaued` (defaults W = 50, r = 10%).

    The losses are read from the dict that ``training_step`` returns (a key missing from a step, e.g. the
    generator loss between generator steps, adds nothing). Note the relative test never passes for a loss
    whose mean is 0, as written in the report.
    """

    def __init__(self, keys: Sequence[str] = ("g_loss", "d_loss"), window: int = 50, rtol: float = 0.1):
        if window < 1 or rtol <= 0:
            raise ConfigError(f"convergence stop needs window >= 1 and rtol > 0, got {window}, {rtol}")
        self.keys, self.window, self.rtol = tuple(keys), window, rtol
        self.history = {k: deque(maxlen=2 * window) for k in self.keys}
        self.stopped_at: int | None = None

    def update(self, losses: dict) -> bool:
        """Record one step's losses; return whether every loss has plateaued."""
        for key in self.keys:
            if key in losses:
                value = float(losses[key])
                if math.isfinite(value):
                    self.history[key].append(value)
        return all(plateaued(self.history[k], self.window, self.rtol) for k in self.keys)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        converged = isinstance(outputs, dict) and self.update(outputs)
        # Each rank sees its own losses: stop when all agree, or a lone stopping rank would hang the others.
        if trainer.strategy.reduce_boolean_decision(converged, all=True):
            self.stopped_at = trainer.global_step
            trainer.should_stop = True


def batch_diversity(x: torch.Tensor) -> float:
    """Mean distance between the samples of a batch ``[N, ...]`` over sqrt(2 * values per sample): for
    independent samples it is the per-pixel standard deviation across the batch; 0 under mode collapse."""
    flat = x.detach().flatten(1).float()
    if flat.shape[0] < 2:
        raise DataError("batch diversity needs at least two samples")
    n = flat.shape[0]
    return float(torch.cdist(flat, flat).sum() / (n * (n - 1)) / math.sqrt(2 * flat.shape[1]))


class ModeCollapseWarning(L.Callback):
    """Every ``every_steps`` batches, compare the `batch_diversity` of the module's last generated batch
    (``pl_module.last_fake``) with that of its real batch (``last_real``); log the ratio as
    ``train/diversity_ratio`` and warn when it falls below ``threshold``."""

    def __init__(self, every_steps: int = 200, threshold: float = 0.2):
        self.every_steps, self.threshold = every_steps, threshold
        self.ratios: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        real, fake = getattr(pl_module, "last_real", None), getattr(pl_module, "last_fake", None)
        if batch_idx % self.every_steps or real is None or fake is None or len(real) < 2:
            return
        ratio = batch_diversity(fake) / max(batch_diversity(real), 1e-12)
        self.ratios.append(ratio)
        pl_module.log("train/diversity_ratio", ratio, batch_size=len(real))
        if ratio < self.threshold:
            warnings.warn(f"possible mode collapse at step {trainer.global_step}: generated batch diversity is "
                          f"{ratio:.2f} of the real batch's (threshold {self.threshold})", stacklevel=2)


def load_weights(module: torch.nn.Module, checkpoint: str | os.PathLike) -> None:
    """Transfer learning: copy the weights of a Lightning ``checkpoint`` (same architecture) into ``module``.

    Only the weights move: optimizers, step count and the data transform start afresh (the transform is
    fitted on the new data set).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise InputFileError(f"init_from {path}: no such checkpoint")
    state = read_checkpoint(path)["state_dict"]
    if hasattr(module, "upgrade_state_dict"):  # e.g. a GAN checkpoint from before the generator average
        state = module.upgrade_state_dict(state)
    own = module.state_dict()
    mismatched = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    if mismatched or set(state) - set(own):
        raise ConfigError(f"init_from {path}: a different architecture (first mismatch: "
                          f"{(mismatched or sorted(set(state) - set(own)))[0]}); match model and image size")
    module.load_state_dict(state)
