"""Shared by the statistics: input validation (every estimator sees a finite ``[N, C, ...]`` array, float32 kept
float32, anything else float64), the FFTs (SciPy's pocketfft with ``torch.get_num_threads()`` workers for CPU
tensors, measured faster than torch's own CPU transforms; torch on other devices) and cache-sized chunks of maps."""

from __future__ import annotations

import numpy as np
import torch
from scipy import fft as sp_fft

from astrogen.errors import DataError

CACHE_BYTES = 1 << 20  # working set of one chunk of maps: stays inside a core's L2 cache (2 MB here)


def _check(shape: tuple[int, ...], finite: bool, ndim: int, what: str) -> None:
    if len(shape) not in (ndim, ndim - 2):
        spatial = "D, H, W" if ndim == 5 else "H, W"
        raise DataError(f"{what}: expected [N, C, {spatial}] or [{spatial}], got shape {tuple(shape)}")
    if 0 in shape:
        raise DataError(f"{what}: empty array of shape {tuple(shape)}")
    if not finite:
        raise not_finite(what)


def not_finite(what: str = "maps") -> DataError:
    """The error for input with NaN or inf (raised here, or by a compiled kernel that checks in its own pass)."""
    return DataError(f"{what}: contains NaN or inf")


def as_maps(x, ndim: int = 4, what: str = "maps", float64: bool = False, check_finite: bool = True) -> np.ndarray:
    """Validated NumPy array of a batch of maps: float32 stays float32 (no copy), anything else becomes float64.

    Parameters
    ----------
    x : NumPy array or torch tensor, ``[N, C, H, W]`` (``ndim=4``) or ``[N, C, D, H, W]`` (``ndim=5``);
        a single map ``[H, W]`` (``[D, H, W]``) is promoted to ``[1, 1, ...]``.
    ndim : number of axes of the batched form (4 for 2D maps, 5 for 3D boxes).
    what : name used in error messages.
    float64 : float64 whatever the input (moments and fits, whose sums need the precision).
    check_finite : False leaves the NaN/inf check to a caller whose own pass over the maps does it (one pass less).

    Raises
    ------
    DataError : wrong number of axes, empty array, NaN or inf.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    array = array if array.dtype == np.float32 and not float64 else array.astype(np.float64, copy=False)
    _check(array.shape, not check_finite or bool(np.isfinite(array).all()), ndim, what)
    return array if array.ndim == ndim else array[None, None]


def as_tensor(x, ndim: int = 4, what: str = "maps", check_finite: bool = True) -> torch.Tensor:
    """Like `as_maps` but a torch tensor kept on the input tensor's device (NumPy input: CPU).

    float32 input stays float32 (FFTs in single precision are twice as fast and accurate to ~1e-6 relative;
    callers accumulate their sums in float64); anything else becomes float64. ``check_finite=False`` leaves
    the NaN/inf check to a caller that can do it cheaper (e.g. on the k = 0 mode of an FFT).
    """
    tensor = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    tensor = tensor.to(torch.float32 if tensor.dtype == torch.float32 else torch.float64)
    _check(tuple(tensor.shape), not check_finite or bool(torch.isfinite(tensor).all()), ndim, what)
    return tensor if tensor.ndim == ndim else tensor[None, None]


def fft(kind: str, x: torch.Tensor, dim: tuple[int, ...], s: tuple[int, ...] | None = None) -> torch.Tensor:
    """``torch.fft.<kind>(x, s=s, dim=dim)``, ``kind`` one of rfftn, irfftn, ifftn: by SciPy for CPU tensors
    (``torch.get_num_threads()`` workers; complex64 / float32 kept), by torch on other devices."""
    if x.device.type != "cpu":
        return getattr(torch.fft, kind)(x, s=s, dim=dim)
    return torch.from_numpy(getattr(sp_fft, kind)(x.numpy(), s=s, axes=dim, workers=torch.get_num_threads()))


def chunks(n: int, item_bytes: int, budget: int = CACHE_BYTES) -> list[slice]:
    """Slices of ``range(n)`` whose items (``item_bytes`` of working memory each) fit in ``budget`` bytes."""
    step = max(1, budget // max(item_bytes, 1))
    return [slice(start, start + step) for start in range(0, n, step)]


def batch_ndim(x) -> int:
    """5 for ``[N, C, D, H, W]`` boxes, else 4 (a 3-axis input stays ambiguous and is rejected by `as_maps`)."""
    return 5 if len(x.shape) == 5 else 4
