"""What the inference networks (regressor, segmentation, denoiser) share: data and optimiser configs,
the train / validation split with a fitted input transform and a LightningModule base (checkpoints load through
`astrogen.tasks.load_model`).

The split follows `astrogen.train`: the last ``val_fraction`` of the file is held out. The input
transform (e.g. ``Log1p`` then ``MinMax``) is fitted on the training split and travels in the checkpoint,
so `InferenceModule.network_input` maps physical images of any later set the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lightning as L
import numpy as np
import torch
from pydantic import Field

from astrogen.config import KIND_KEY, StrictModel
from astrogen.data import Augment, FieldSet
from astrogen.data.dataset import FieldSetDataset
from astrogen.data.transforms import Transform
from astrogen.distributed import make_loaders
from astrogen.errors import ConfigError, DataError


class InferenceData(StrictModel):
    """Training data of an inference network: a FieldSet, its split, input transform and augmentation."""

    path: str = Field(description="FieldSet file")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="last fraction of the file held out")
    transform: list[dict] = Field(default_factory=lambda: [{"name": "Log1p"}, {"name": "MinMax"}],
                                  description="Compose stages mapping physical images to network inputs")
    augment: bool | Literal["flips"] = Field(
        False, description="random symmetries: true, the 8 dihedral maps (only if no direction is preferred); "
        "'flips', the mirror flips about both image axes and the half turn (they keep a horizontal disk horizontal)")
    batch_size: int = Field(32, ge=1, description="global batch, split across devices x nodes")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per device")


class InferenceOptim(StrictModel):
    """Adam with weight decay and gradient clipping."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)


@dataclass
class Split:
    """A FieldSet split into training and validation loaders, with the fitted transform and metadata."""

    transform: Transform
    image_shape: list[int]
    n_train: int
    params: dict[str, np.ndarray]  # every parameter column over the training split
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader


def split_loaders(cfg: InferenceData, params: list[str], masks: bool = False, seed: int = 0) -> Split:
    """Fit ``cfg.transform`` on the training split and build shuffled training / ordered validation loaders."""
    with FieldSet(cfg.path) as fs:
        n_total = len(fs)
        n_train = n_total - max(1, round(cfg.val_fraction * n_total))
        if n_train < 1:
            raise DataError(f"{fs.path}: {n_total} samples are too few for val_fraction {cfg.val_fraction}")
        if len(fs.sample_shape) != 3:
            raise DataError(f"{fs.path}: inference networks take 2D images [N, C, H, W], got {fs.shape}")
        missing = sorted(set(params) - set(fs.param_names))
        if missing:
            raise ConfigError(f"{fs.path} has no parameter columns {missing}; it has {fs.param_names}")
        transform = Transform.from_dict({"name": "Compose", "transforms": cfg.transform})
        transform.fit(fs.image_batches(stop=n_train))
        train_params = {name: np.asarray(fs.params[name][:n_train]) for name in fs.param_names}
        shape = list(fs.sample_shape)
    augment = Augment(dihedral=cfg.augment) if cfg.augment else None
    train_set = FieldSetDataset(cfg.path, transform, augment, params=params, masks=masks)
    val_set = FieldSetDataset(cfg.path, transform, None, params=params, masks=masks)
    train, val = make_loaders(train_set, val_set, range(n_train), range(n_train, n_total), cfg.batch_size,
                              cfg.num_workers, seed)
    return Split(transform, shape, n_train, train_params, train, val)


class InferenceModule(L.LightningModule):
    """Base of the inference LightningModules: the input transform, Adam and batched prediction helpers.

    Subclasses set ``task`` and ``self.net`` and call ``save_hyperparameters()`` with at least
    ``image_shape``, ``transform``, ``lr`` and ``weight_decay``.
    """

    task: str = ""

    def _setup_transform(self, transform: dict | None) -> None:
        self.transform = Transform.from_dict(transform) if transform else None

    def network_input(self, images) -> torch.Tensor:
        """Physical images ``[N, C, H, W]`` (array or tensor) -> float32 network inputs on the module's device."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).float()
        shape = list(self.hparams.image_shape)
        if x.ndim != 4 or list(x.shape[1:]) != shape:
            raise DataError(f"{self.task}: expected images [N, {', '.join(map(str, shape))}], got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise DataError(f"{self.task}: images contain NaN or inf")
        return (x if self.transform is None else self.transform.forward(x)).float().to(self.device)

    @torch.inference_mode()
    def _batched(self, fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        self.eval()
        return torch.cat([fn(x[i:i + batch_size]).cpu() for i in range(0, len(x), batch_size)])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[KIND_KEY] = self.task  # lets `astrogen.tasks.load_model` pick the class

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
