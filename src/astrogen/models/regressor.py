"""CNN regressor of physical parameters from images (gamma-ray report; also the redshift CNN).

Convolution (3x3) + ReLU + 2x2 max-pool stacks, then fully connected layers with ReLU, one linear output
per target. Targets are parameter columns, or sums of columns written ``"n_ps_disk+n_ps_gc"`` (the total
point-source count); each is mapped to [0, 1] by its training-split min and max (`TargetScaler`) for the
loss (MSE) and mapped back for predictions. With five-band galaxy cutouts and ``data.targets: [redshift]`` it
is the redshift CNN that judges redshift-conditioned generated galaxies (``astrogen evaluate --judge``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from astrogen.config import StrictModel
from astrogen.errors import ConfigError, DataError
from astrogen.models.blocks import CNNRegressor
from astrogen.models.inference import InferenceModule


class RegressorConfig(StrictModel):
    """Network shape: channels of the conv blocks (each halves the image) and widths of hidden layers."""

    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128], min_length=1)
    hidden: list[int] = Field(default_factory=lambda: [128], description="fully connected hidden widths")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before each hidden layer")


@dataclass
class TargetScaler:
    """Per-target affine map of [low, high] (fitted min and max) onto [0, 1], and back."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, values) -> TargetScaler:
        """``values`` ``[N, T]`` -> scaler; constant targets cannot be scaled."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) == 0 or not np.isfinite(values).all():
            raise DataError(f"targets must be a finite, non-empty [N, T] array, got shape {values.shape}")
        low, high = values.min(0), values.max(0)
        if np.any(high <= low):
            raise DataError(f"targets {np.flatnonzero(high <= low).tolist()} are constant in the training data")
        return cls(low, high)

    def forward(self, y):
        return (y - self._like(self.low, y)) / self._like(self.high - self.low, y)

    def inverse(self, u):
        return u * self._like(self.high - self.low, u) + self._like(self.low, u)

    @staticmethod
    def _like(v: np.ndarray, ref):
        return torch.as_tensor(v, dtype=ref.dtype, device=ref.device) if isinstance(ref, torch.Tensor) else v


def target_matrix(targets: list[str], columns: list[str]) -> np.ndarray:
    """``[P, T]`` 0/1 matrix summing parameter columns into targets (``"a+b"`` is a + b)."""
    matrix = np.zeros((len(columns), len(targets)))
    for j, target in enumerate(targets):
        for name in target.split("+"):
            if name.strip() not in columns:
                raise ConfigError(f"target {target!r}: no parameter column {name.strip()!r}; have {columns}")
            matrix[columns.index(name.strip()), j] = 1
    return matrix


class RegressorModule(InferenceModule):
    """Lightning training of `CNNRegressor`; the checkpoint holds the input transform and target scaling.

    Parameters
    ----------
    model : `RegressorConfig` fields.
    image_shape : ``[C, H, W]`` of the inputs.
    targets : target names (columns or ``a+b`` sums); columns : the parameter columns the loader returns.
    target_low, target_high : `TargetScaler` range of each target (its units).
    transform : `Transform.to_dict()` of the fitted input transform.
    lr, weight_decay : Adam settings.
    """

    task = "regressor"

    def __init__(self, model: dict, image_shape: list[int], targets: list[str], columns: list[str],
                 target_low: list[float], target_high: list[float], transform: dict | None = None,
                 lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        config = RegressorConfig.model_validate(model)
        self.net = CNNRegressor(image_shape[0], tuple(image_shape[1:]), config.channels, config.hidden,
                                len(targets), config.dropout)
        self.register_buffer("matrix", torch.tensor(target_matrix(targets, columns), dtype=torch.float32))
        self.scaler = TargetScaler(np.asarray(target_low), np.asarray(target_high))
        self._setup_transform(transform)

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = batch["params"] @ self.matrix
        out = self.net(batch["image"])
        return F.mse_loss(out, self.scaler.forward(target)), self.scaler.inverse(out), target

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, pred, target = self._loss(batch)
        n = len(batch["image"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=n)
        for j, name in enumerate(self.hparams.targets):
            self.log(f"val/mae_{name}", (pred[:, j] - target[:, j]).abs().mean(), sync_dist=True, batch_size=n)

    def predict(self, images, batch_size: int = 256) -> np.ndarray:
        """Targets ``[N, T]`` (their own units) of physical images ``[N, C, H, W]``."""
        out = self._batched(self.net, self.network_input(images), batch_size)
        return self.scaler.inverse(out.double().numpy())

    def targets_of(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """True targets ``[N, T]`` from a FieldSet's parameter columns."""
        columns = self.hparams.columns
        missing = sorted(set(columns) - set(params))
        if missing:
            raise DataError(f"the data lack parameter columns {missing} that the regressor's targets need")
        values = np.stack([np.asarray(params[c], dtype=np.float64) for c in columns], 1)
        return values @ self.matrix.cpu().double().numpy()
