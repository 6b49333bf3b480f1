"""Photometric-redshift metrics of the HSC challenge: loss, bias, sigma_NMAD and outlier fraction."""

from __future__ import annotations

import numpy as np

from astrogen.errors import DataError

OUTLIER_DZ = 0.15  # |dz| above which an object is an outlier, also the width of the HSC loss


def _dz(z_pred, z_true) -> np.ndarray:
    z_pred, z_true = np.asarray(z_pred, dtype=np.float64), np.asarray(z_true, dtype=np.float64)
    if z_pred.shape != z_true.shape or z_pred.size == 0:
        raise DataError(f"photo-z: z_pred {z_pred.shape} and z_true {z_true.shape} must be equal, non-empty shapes")
    if not (np.isfinite(z_pred).all() and np.isfinite(z_true).all()):
        raise DataError("photo-z: redshifts contain NaN or inf")
    if np.any(z_true <= -1):
        raise DataError("photo-z: z_true must be > -1")
    return (z_pred - z_true) / (1 + z_true)


def photoz_loss(z_pred, z_true) -> np.ndarray:
    """Per-object HSC loss L = 1 - 1 / (1 + (dz / 0.15)^2), dz = (z_pred - z_true) / (1 + z_true)."""
    return 1 - 1 / (1 + (_dz(z_pred, z_true) / OUTLIER_DZ) ** 2)


def photoz_metrics(z_pred, z_true) -> dict[str, float]:
    """Summary metrics of photometric redshifts.

    Returns
    -------
    dict with ``loss`` (mean HSC loss), ``bias`` (mean dz), ``sigma_nmad`` (1.4826 median |dz - median dz|)
    and ``outlier_fraction`` (fraction with |dz| > 0.15).
    """
    dz = _dz(z_pred, z_true)
    return {
        "loss": float(np.mean(1 - 1 / (1 + (dz / OUTLIER_DZ) ** 2))),
        "bias": float(np.mean(dz)),
        "sigma_nmad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
        "outlier_fraction": float(np.mean(np.abs(dz) > OUTLIER_DZ)),
    }
