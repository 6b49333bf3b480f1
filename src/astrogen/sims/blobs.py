"""Gaussian-blob images: the four toy sets of the microwave-sky report (Han et al. 2021, section 3).

Each image (``size`` x ``size`` pixels, one channel ``intensity``, dimensionless) is a sum of circular
Gaussian blobs with full width at half maximum ``fwhm`` pixels,
``I(x, y) = sum_k a_k exp(-((x - x_k)^2 + (y - y_k)^2) / (2 sigma^2))``, sigma = fwhm / sqrt(8 ln 2).
Pixel (row i, column j) has its centre at (x, y) = (j, i); blob centres are uniform over the image
area, x_k, y_k ~ U(-0.5, size - 0.5). Blobs are not wrapped around the edges (``periodic=False``).

The set is chosen by ``n_blobs``:

* ``1``: one blob of peak amplitude 1. Params: ``n_blobs``, ``x0``, ``y0``.
* ``10``: ten blobs of amplitude 1; each image is then divided by its maximum (peaks exactly 1).
  Params: ``n_blobs``, ``x0..x9``, ``y0..y9``.
* ``50``: fifty blobs of amplitude 1, not rescaled (overlaps add). Params: ``n_blobs``.
* ``1000``: a thousand candidate blobs with folded-Gaussian amplitudes a = |N(0, intensity_sigma^2)|;
  blobs with a < ``intensity_threshold`` are dropped, so the number kept varies per image and the
  amplitudes follow a truncated folded Gaussian. Not rescaled. Params: ``n_blobs`` (blobs kept).

The report states the threshold without its exact form; dropping faint blobs is our reading of it.
Images are built separably, ``I = G_y^T diag(a) G_x``, as one batched matrix product, so 10,000
images of 128 x 128 with 50 blobs take a few seconds on two CPU cores.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from astrogen.config import StrictModel
from astrogen.data.fieldset import Batch, FieldMeta
from astrogen.sims.base import SimSpec, Simulator

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


class BlobsConfig(StrictModel):
    """Configuration of the Gaussian-blob simulator (all lengths in pixels)."""

    n_blobs: Literal[1, 10, 50, 1000] = Field(50, description="which of the four sets")
    size: int = Field(128, ge=8, le=4096, description="image side, pixels")
    fwhm: float = Field(6.0, gt=0, le=1000, description="blob full width at half maximum, pixels")
    intensity_sigma: float = Field(1.0, gt=0, description="1000-blob set: folded-Gaussian scale")
    intensity_threshold: float = Field(0.5, ge=0, description="1000-blob set: faintest blob kept")


def blob_images(
    x: torch.Tensor, y: torch.Tensor, amplitude: torch.Tensor, size: int, fwhm: float
) -> torch.Tensor:
    """Render blobs: centres ``x, y`` and amplitudes ``[n, K]`` (pixels) -> images ``[n, size, size]``."""
    sigma = fwhm * FWHM_TO_SIGMA
    grid = torch.arange(size, dtype=x.dtype, device=x.device)
    gx = torch.exp(-0.5 * ((grid - x[..., None]) / sigma) ** 2)  # [n, K, W]
    gy = torch.exp(-0.5 * ((grid - y[..., None]) / sigma) ** 2)  # [n, K, H]
    return torch.bmm((gy * amplitude[..., None]).transpose(1, 2), gx)


class Blobs(Simulator):
    """Gaussian-blob toy images (see the module docstring for the four sets)."""

    name = "blobs"
    version = "1"
    Config = BlobsConfig
    block_size = 128

    def _lists_centres(self) -> bool:
        return self.config.n_blobs in (1, 10)

    def spec(self) -> SimSpec:
        c = self.config
        names = ["n_blobs"]
        if self._lists_centres():
            names += [f"x{k}" for k in range(c.n_blobs)] + [f"y{k}" for k in range(c.n_blobs)]
        return SimSpec(
            sample_shape=(1, c.size, c.size),
            meta=FieldMeta(
                channels=["intensity"],
                units="dimensionless",
                pixel_size=1.0,
                pixel_unit="pixel",
                box_size=[float(c.size), float(c.size)],
                periodic=False,
            ),
            param_names=names,
            param_units={name: "pixel" for name in names if name != "n_blobs"},
        )

    def simulate_block(self, rng: np.random.Generator, n: int) -> Batch:
        c = self.config
        k = c.n_blobs
        x = rng.uniform(-0.5, c.size - 0.5, size=(n, k))
        y = rng.uniform(-0.5, c.size - 0.5, size=(n, k))
        if k == 1000:
            amplitude = np.abs(rng.normal(0.0, c.intensity_sigma, size=(n, k)))
            amplitude[amplitude < c.intensity_threshold] = 0.0
        else:
            amplitude = np.ones((n, k))
        as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
        images = blob_images(as_tensor(x), as_tensor(y), as_tensor(amplitude), c.size, c.fwhm)
        if k == 10:
            images = images / images.amax(dim=(1, 2), keepdim=True)
        params = {"n_blobs": np.count_nonzero(amplitude, axis=1).astype(np.float64)}
        if self._lists_centres():
            params.update({f"x{i}": x[:, i] for i in range(k)})
            params.update({f"y{i}": y[:, i] for i in range(k)})
        return Batch(images.unsqueeze(1).numpy(), params)
