"""The sky noise of galaxy stamps: its level and its negative tail, from the stamps' corners.

A generator of galaxy cutouts must draw the survey's sky noise as well as the galaxies: a noise a few per cent too
wide, or a tail of negative outliers, moves every threshold statistic (peaks, Minkowski functionals) of the faint
sky while the pixel histogram, dominated by its bright end, hardly changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrogen.errors import DataError
from astrogen.stats._common import as_maps


@dataclass
class SkyNoise:
    """Per band ``[C]``: ``sigma``, the reference noise level (1.4826 x the median absolute deviation of the corner
    pixels, or the one given); ``std``, the standard deviation of the sky in the clean corners; ``negative``, the
    fraction of all pixels below -4 ``sigma`` (Gaussian noise alone: 3.2e-5; galaxies add none)."""

    sigma: np.ndarray
    std: np.ndarray
    negative: np.ndarray


def sky_noise(maps, sigma=None, corner: int = 8, clip: float = 4.5) -> SkyNoise:
    """`SkyNoise` of ``[N, C, H, W]`` stamps, batched.

    The sky is read in the four ``corner`` x ``corner`` corners of each stamp; a corner with a pixel beyond ``clip``
    ``sigma`` in any band (a neighbour, or a large galaxy's wing) is left out, and each kept corner is measured about
    its own mean (std with ``corner**2 - 1`` degrees of freedom). Pass the ``sigma`` of a reference set (e.g. the
    real stamps') to measure another set (the generated ones) on the same scale.
    """
    x = as_maps(maps, float64=True)
    c = corner
    if not 2 <= c <= min(x.shape[-2:]) // 2:
        raise DataError(f"corner must be 2..{min(x.shape[-2:]) // 2} pixels for {x.shape[-2:]} stamps, got {c}")
    patches = np.concatenate([x[..., :c, :c], x[..., :c, -c:], x[..., -c:, :c], x[..., -c:, -c:]])
    if sigma is None:
        flat = np.moveaxis(patches, 1, 0).reshape(x.shape[1], -1)
        sigma = 1.4826 * np.median(np.abs(flat - np.median(flat, 1, keepdims=True)), 1)
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.shape != (x.shape[1],) or not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise DataError(f"sigma must be positive and finite, one per band ({x.shape[1]}), got {sigma}")
    scaled = patches / sigma[:, None, None]
    clean = scaled[(np.abs(scaled) <= clip).all((1, 2, 3))]
    if not len(clean):
        raise DataError(f"no corner is free of pixels beyond {clip} sigma: no sky to measure")
    clean = clean - clean.mean((-2, -1), keepdims=True)
    std = sigma * np.sqrt((clean**2).mean((0, 2, 3)) * c * c / (c * c - 1))
    return SkyNoise(sigma, std, (x < -4 * sigma[:, None, None]).mean((0, 2, 3)))
