"""FFT bispectrum estimator for chosen triangle configurations, and the reduced bispectrum Q.

For a shell of width ``dk`` around k_i, ``I_i(x) = IFFT[delta_k 1_{|k| in shell i}]`` and ``J_i`` the same for a unit
field. ``sum_x I_1 I_2 I_3 / sum_x J_1 J_2 J_3`` is the mean of ``delta_k1 delta_k2 delta_k3`` over all closed
triangles (k1 + k2 + k3 = 0) in the three shells, so ``B = V^2 / N_pix^3 * sum I I I / sum J J J`` in the
normalisation of `astrogen.stats.power` (``P = V |delta_k|^2 / N_pix^2``), <field unit>^3 <pixel unit>^(2d).
``Q = B / (P1 P2 + P2 P3 + P3 P1)`` with the shell powers of the same map.

Cost: one forward FFT per map and one inverse per map and shell, on cache-sized chunks of maps (SciPy on CPU, torch
on GPU). A shell reaches only the first columns of the last rfft axis, so the other axes are inverse-transformed
on those columns alone; the triple sums share the product ``I_1 I_2`` between triangles with the same two sides.
float32 maps are transformed and summed in float32 (relative round-off ~1e-6 of ``sum |I|^3``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from astrogen.errors import DataError
from astrogen.stats._common import CACHE_BYTES, as_tensor, batch_ndim, chunks, fft
from astrogen.stats.power import _grid


@dataclass
class Bispectrum:
    """Binned bispectrum of T triangle configurations.

    Attributes
    ----------
    k1, k2 : [T] side lengths, 1/<pixel unit>; theta : [T] angle between the vectors k1 and k2 (radians);
    k3 : [T] third side |k1 + k2|; bispectrum : [N, C, T] (NaN where the shells close no triangle);
    reduced : [N, C, T] Q, dimensionless.
    """

    k1: np.ndarray
    k2: np.ndarray
    theta: np.ndarray
    bispectrum: np.ndarray
    reduced: np.ndarray
    k3: np.ndarray | None = None


def equilateral_triangles(k) -> np.ndarray:
    """Equilateral configurations [T, 3] of (k1, k2, theta) with k1 = k2 = k and theta = 2 pi / 3."""
    k = np.atleast_1d(np.asarray(k, dtype=np.float64))
    return np.stack([k, k, np.full_like(k, 2 * np.pi / 3)], axis=1)


def angle_triangles(k1: float, k2: float, thetas) -> np.ndarray:
    """The k1-k2-angle family [T, 3]: fixed sides k1, k2 (1/<pixel unit>) and the angles ``thetas`` (radians)."""
    thetas = np.atleast_1d(np.asarray(thetas, dtype=np.float64))
    return np.stack([np.full_like(thetas, k1), np.full_like(thetas, k2), thetas], axis=1)


def default_triangles(shape: tuple[int, ...], pixel_size: float = 1.0) -> np.ndarray:
    """Equilateral triangles at 8 scales from 3 k_f to k_Nyquist / 2, plus k2 = 2 k1 = 8 k_f at 6 angles."""
    n = min(shape)
    kf = 2 * np.pi / (n * pixel_size)
    scales = np.unique(np.round(np.geomspace(3, max(n // 4, 4), 8)))
    return np.concatenate([equilateral_triangles(kf * scales),
                           angle_triangles(4 * kf, 8 * kf, np.linspace(0.1, 0.9, 6) * np.pi)])


def bispectrum(maps, pixel_size: float = 1.0, triangles: np.ndarray | None = None, dk: float | None = None,
               ) -> Bispectrum:
    """Bispectrum and reduced bispectrum of periodic maps for the given triangle configurations.

    Parameters
    ----------
    maps : [N, C, H, W] maps (or [N, C, D, H, W] boxes, or one [H, W] map); NumPy or torch (kept on its device).
    pixel_size : side of a pixel in physical units; k in 1/<pixel unit>.
    triangles : [T, 3] rows (k1, k2, theta) from `equilateral_triangles` / `angle_triangles`;
        None: `default_triangles`.
    dk : shell width in 1/<pixel unit>; default the fundamental k_f = 2 pi / (shortest side).
    """
    if not pixel_size > 0:
        raise DataError(f"bispectrum: pixel_size must be > 0, got {pixel_size}")
    x = as_tensor(maps, batch_ndim(maps))
    shape = tuple(x.shape[2:])
    triangles = default_triangles(shape, pixel_size) if triangles is None else np.asarray(triangles, np.float64)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or np.any(triangles[:, :2] <= 0):
        raise DataError(f"bispectrum: triangles must be [T, 3] rows (k1 > 0, k2 > 0, theta), got {triangles.shape}")
    k1, k2, theta = triangles.T
    k3 = np.sqrt(np.maximum(k1**2 + k2**2 + 2 * k1 * k2 * np.cos(theta), 0.0))
    dk = 2 * np.pi / (min(shape) * pixel_size) if dk is None else float(dk)
    grid = _grid(shape, float(pixel_size), x.device)
    centres, index = np.unique(np.round(np.stack([k1, k2, k3], 1) / dk, 6), return_inverse=True)
    index = index.reshape(-1, 3)
    kmag = grid.kmag.reshape(*shape[:-1], shape[-1] // 2 + 1)
    shells = torch.stack([(torch.abs(kmag / dk - c) < 0.5).to(x.dtype) for c in centres])  # [U, *rfft grid]
    columns = shells.flatten(1, -2).any(1)  # [U, rfft columns]: which columns of the last axis each shell reaches
    widths = [int(torch.nonzero(c).max()) + 1 if bool(c.any()) else 1 for c in columns]
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (a, b) -> [(triangle, c)]
    for t, (a, b, c) in enumerate(index):
        pairs.setdefault((a, b), []).append((t, c))
    unit = _shell_fields(torch.ones_like(shells[0], dtype=_complex(x.dtype)), shells, widths, shape)  # J_i
    counts = _triple_sums(unit, pairs, len(index)).to(torch.float64)
    unit_power = torch.stack([torch.linalg.vecdot(j, j) for j in unit]).to(x.dtype)  # (1 / N_pix) x modes per shell
    volume, npix = grid.volume, grid.npix
    n, c = x.shape[:2]
    sums = torch.empty(n, c, len(index), dtype=x.dtype, device=x.device)
    shell_power = torch.empty(n, c, len(centres), dtype=x.dtype, device=x.device)
    # The U shell fields of a chunk of maps stay in cache (4 MB here) through the triple products.
    for part in chunks(n, len(centres) * x[0].numel() * x.element_size(), 4 * CACHE_BYTES):
        fields = _shell_fields(fft("rfftn", x[part], tuple(range(2, x.ndim))), shells, widths, shape)  # I_i
        sums[part] = _triple_sums(fields, pairs, len(index))
        shell_power[part] = torch.stack([torch.linalg.vecdot(i, i) for i in fields], -1) / unit_power
    with np.errstate(divide="ignore", invalid="ignore"):
        bis = (sums.to(torch.float64) / counts).cpu().numpy() * volume**2 / npix**3
        shell_power = shell_power.to(torch.float64).cpu().numpy() * volume / npix**2  # [N, C, U]
        p1, p2, p3 = (shell_power[..., index[:, i]] for i in range(3))
        reduced = bis / (p1 * p2 + p2 * p3 + p3 * p1)
    bis[..., ~(np.abs(counts.cpu().numpy()) > 1e-9)] = np.nan
    return Bispectrum(k1, k2, theta, bis, reduced, k3)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _shell_fields(f: torch.Tensor, shells: torch.Tensor, widths: list[int], shape: tuple[int, ...]) -> list:
    """Inverse FFTs of ``f`` [..., *rfft grid] restricted to each shell: U fields [..., N_pix], flattened.

    Shell ``i`` reaches only the first ``widths[i]`` columns of the last axis: the other axes are transformed on
    those columns alone, and the last (complex-to-real) transform zero-pads the rest.
    """
    dims = tuple(range(-len(shape), 0))
    fields = (fft("irfftn", fft("ifftn", f[..., :w] * shell[..., :w], dims[:-1]), dims[-1:], shape[-1:])
              for shell, w in zip(shells, widths))
    return [field.flatten(-len(shape)) for field in fields]


def _triple_sums(fields: list, pairs: dict, n_triangles: int) -> torch.Tensor:
    """``sum_x I_a I_b I_c`` [..., T] of every triangle; ``I_a I_b`` is formed once per pair of sides."""
    out = torch.empty(*fields[0].shape[:-1], n_triangles, dtype=fields[0].dtype, device=fields[0].device)
    for (a, b), rest in pairs.items():
        product = fields[a] * fields[b]
        for t, c in rest:
            out[..., t] = torch.linalg.vecdot(product, fields[c])
    return out
