"""U-Net segmentation of point-source pixels in gamma-ray counts maps (gamma-ray report).

Encoder: four blocks of (3x3 conv, batch norm, LeakyReLU, dropout, 3x3 conv, batch norm, LeakyReLU),
each followed by 2x2 max-pooling, with 8 -> 16 -> 32 -> 64 channels; a bridge of the same two convs
with 128 channels; four decoder blocks of (3x3 transposed conv with stride 2, concatenation with the
encoder's skip, batch norm, LeakyReLU); a 1x1 conv and a sigmoid give the probability that a pixel is a
point-source pixel (the network returns the logit; `SegmentationModule.predict` applies the sigmoid).

**Target.** A pixel is a point-source pixel when the mask (expected point-source counts after the PSF)
exceeds ``threshold`` counts, default 5: about the Poisson fluctuation (sqrt of ~25 counts) of the
diffuse background of a default galactic-centre map, so that target pixels are ones where the sources
can be seen at all. About a quarter of the pixels of the default set qualify (a threshold of 1 count,
the total flux of the faintest source, would make half of them targets).

**Loss.** Binary cross-entropy plus ``count_weight`` x |sum of predicted probabilities - number of target
pixels| / pixels, per image. The count of pixels above a cut is a step function with zero gradient almost
everywhere; the summed probability is its differentiable surrogate (equal to it for confident outputs),
so the penalty can steer the network towards the right number of point-source pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from astrogen.config import StrictModel
from astrogen.errors import DataError
from astrogen.models.inference import InferenceModule
from astrogen.stats.inference import DEFAULT_THRESHOLD


class UNetConfig(StrictModel):
    """U-Net widths, dropout, target threshold and the count penalty."""

    channels: list[int] = Field(default_factory=lambda: [8, 16, 32, 64], min_length=1)
    bridge: int = Field(128, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, description="mask counts of a point-source pixel")
    count_weight: float = Field(0.1, ge=0, description="weight of the |predicted - true| pixel-count penalty")


def _double_conv(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1),
                         nn.Dropout2d(dropout), nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.1))


class UNet(nn.Module):
    """The report's U-Net; returns logits ``[N, 1, H, W]``."""

    def __init__(self, in_channels: int = 1, channels: list[int] = (8, 16, 32, 64), bridge: int = 128,
                 dropout: float = 0.1):
        super().__init__()
        self.levels = len(channels)
        widths = [in_channels, *channels]
        self.down = nn.ModuleList(_double_conv(widths[i], widths[i + 1], dropout) for i in range(self.levels))
        self.bridge = _double_conv(channels[-1], bridge, dropout)
        self.up, self.norm = nn.ModuleList(), nn.ModuleList()
        c = bridge
        for skip in reversed(channels):
            self.up.append(nn.ConvTranspose2d(c, skip, 3, stride=2, padding=1, output_padding=1))
            self.norm.append(nn.Sequential(nn.BatchNorm2d(2 * skip), nn.LeakyReLU(0.1)))
            c = 2 * skip
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2**self.levels or x.shape[-2] % 2**self.levels:
            raise DataError(f"image size {tuple(x.shape[-2:])} must be divisible by 2^{self.levels}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bridge(x)
        for up, norm, skip in zip(self.up, self.norm, reversed(skips)):
            x = norm(torch.cat([up(x), skip], 1))
        return self.out(x)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, count_weight: float) -> torch.Tensor:
    """BCE + count_weight * mean over images of |sum sigmoid(logits) - sum target| / pixels per image."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    pixels = target[0].numel()
    count = (torch.sigmoid(logits).flatten(1).sum(1) - target.flatten(1).sum(1)).abs() / pixels
    return bce + count_weight * count.mean()


class SegmentationModule(InferenceModule):
    """Lightning training of `UNet` on ``mask > threshold`` targets; see the module docstring for the loss.

    Parameters
    ----------
    model : `UNetConfig` fields; image_shape : ``[C, H, W]``; transform : fitted input transform dict;
    lr, weight_decay : Adam settings.
    """

    task = "segmentation"

    def __init__(self, model: dict, image_shape: list[int], transform: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.config = UNetConfig.model_validate(model)
        self.net = UNet(image_shape[0], self.config.channels, self.config.bridge, self.config.dropout)
        self._setup_transform(transform)

    def _loss(self, batch: dict) -> torch.Tensor:
        target = (batch["mask"] > self.config.threshold).float()
        return segmentation_loss(self.net(batch["image"]), target, self.config.count_weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))

    def predict(self, images, batch_size: int = 128) -> np.ndarray:
        """Point-source probability ``[N, 1, H, W]`` of physical images ``[N, C, H, W]``."""
        return self._batched(lambda x: torch.sigmoid(self.net(x)), self.network_input(images), batch_size).numpy()
