"""What the inference networks (regressor, segmentation, denoiser, posterior) share: a LightningModule base
(checkpoints load through `astrogen.tasks.load_model`).

The input transform (e.g. ``Log1p`` then ``MinMax``) is fitted on the training split (`astrogen.train.data`) and
travels in the checkpoint, so `InferenceModule.network_input` maps physical images of any later set the same way.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from astrogen.config import KIND_KEY
from astrogen.data.transforms import Transform
from astrogen.errors import DataError


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
