"""Input validation shared by the statistics modules."""

from __future__ import annotations

import numpy as np

from astrogen.errors import DataError


def as_maps(x, ndim: int = 4) -> np.ndarray:
    """Validated float64 copy of ``x`` (NumPy array or torch tensor) with ``ndim`` axes.

    Parameters
    ----------
    x : array-like or torch.Tensor
        Maps ``[N, C, H, W]`` (``ndim=4``); a single ``[H, W]`` map is promoted to ``[1, 1, H, W]``
        (in general an array with ``ndim - 2`` axes gets two leading unit axes).
    ndim : int
        Number of axes expected after promotion.

    Raises
    ------
    DataError
        Wrong number of axes, an empty axis, or non-finite values.
    """
    if hasattr(x, "detach"):  # torch tensor on any device
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == ndim - 2:
        arr = arr[None, None]
    if arr.ndim != ndim:
        raise DataError(f"expected an array with {ndim} axes (or {ndim - 2} for one map), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"empty array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"maps contain {int((~np.isfinite(arr)).sum())} non-finite values (NaN or inf)")
    return arr
