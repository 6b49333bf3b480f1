"""Denoising autoencoder for gamma-ray counts maps (gamma-ray report).

Images are normalised per image by their maximum (`MaxNorm`, so values lie in [0, 1]); noise from
`astrogen.data.noise` is applied on the fly (fresh every step) and the network learns to return the clean
image. Encoder: stride-2 3x3 convs with batch norm and LeakyReLU halving the image down to 4 x 4; a
linear bottleneck of ``latent`` numbers (default 6); a mirrored decoder of stride-2 transposed convs
and a sigmoid output. Loss and metric: MSE against the clean normalised image.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from astrogen.config import StrictModel
from astrogen.data.noise import make_noise
from astrogen.errors import DataError
from astrogen.models.inference import InferenceModule


class DAEConfig(StrictModel):
    """Autoencoder widths (one per stride-2 level; the last level ends at 4 x 4), latent size and noise."""

    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64], min_length=1)
    latent: int = Field(6, ge=1)
    noise: list[dict] = Field(default_factory=lambda: [{"name": "gaussian", "factor": 0.2}],
                              description="astrogen.data.noise models, applied in order")


def _act(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.LeakyReLU(0.1)]


class DenoisingAutoencoder(nn.Module):
    """conv encoder -> linear bottleneck ``latent`` -> mirrored decoder; output in [0, 1] (sigmoid)."""

    def __init__(self, in_channels: int, size: int, channels: list[int], latent: int = 6):
        super().__init__()
        if size != 4 * 2 ** len(channels):
            raise DataError(f"{len(channels)} stride-2 levels take {4 * 2 ** len(channels)}-pixel images to "
                            f"4 x 4, got {size}: give one channel width per halving")
        widths = [in_channels, *channels]
        enc = []
        for a, b in itertools.pairwise(widths):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), *_act(b)]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(channels[-1] * 16, latent))
        dec = [nn.Linear(latent, channels[-1] * 16), nn.Unflatten(1, (channels[-1], 4, 4))]
        back = widths[::-1]
        for i, (a, b) in enumerate(itertools.pairwise(back)):
            last = i == len(back) - 2
            dec += [nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), *([] if last else _act(b))]
        self.decoder = nn.Sequential(*dec, nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DenoiserModule(InferenceModule):
    """Lightning training of `DenoisingAutoencoder` with on-the-fly noise (``model.noise``).

    Parameters
    ----------
    model : `DAEConfig` fields; image_shape : ``[C, H, W]``; transform : the input transform dict (MaxNorm);
    lr, weight_decay : Adam settings.
    """

    task = "denoiser"

    def __init__(self, model: dict, image_shape: list[int], transform: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.config = DAEConfig.model_validate(model)
        if image_shape[1] != image_shape[2]:
            raise DataError(f"the autoencoder needs square images, got {image_shape[1]} x {image_shape[2]}")
        self.net = DenoisingAutoencoder(image_shape[0], image_shape[1], self.config.channels, self.config.latent)
        self.noise = make_noise(self.config.noise)
        self._setup_transform(transform)

    def _loss(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.mse_loss(self.net(self.noise(clean, generator)), clean)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch["image"])
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # The same noise for a validation batch at every evaluation: comparable across epochs.
        loss = self._loss(batch["image"], torch.Generator().manual_seed(10_000 + batch_idx))
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))

    def corrupt(self, images, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(clean, noisy) normalised images ``[N, C, H, W]`` from physical ones, noise drawn from ``seed``."""
        clean = self.network_input(images).cpu()
        return clean.numpy(), self.noise(clean, torch.Generator().manual_seed(seed)).numpy()

    def denoise(self, noisy, batch_size: int = 256) -> np.ndarray:
        """Denoised normalised images from noisy normalised ones ``[N, C, H, W]``."""
        x = torch.as_tensor(np.asarray(noisy), dtype=torch.float32).to(self.device)
        return self._batched(self.net, x, batch_size).numpy()
