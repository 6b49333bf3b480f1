"""Power spectra of periodic 2D maps and 3D boxes: isotropic P(k), cross spectra, r(k), power images, Welch.

Conventions (shared by every function here): ``delta_k = sum_x delta(x) exp(-i k.x)`` (the DFT),
``P(k) = V |delta_k|^2 / N_pix^2`` with ``V`` the map area / box volume in physical units, so P carries
``<field unit>^2 <pixel unit>^d`` and ``sum_k P(k) / V = variance`` (Parseval). Wavenumbers are angular,
``k = 2 pi / wavelength``, in 1/<pixel unit> (h/Mpc for Mpc/h pixels, 1/arcmin for arcmin pixels).
On CPU the maps go through in cache-sized chunks (SciPy's FFT, |F|^2, one ``index_add_`` that bins the chunk's
modes), on GPU in one batch (torch); every per-mode factor (normalisation, CIC window, k^d) is folded into the
binning weights. float32 maps are transformed, squared and binned in float32 (1e-6 relative round-off) and
returned as float64; float64 maps stay float64 throughout, since the round-off of a float32 FFT (1e-7 of the
largest mode) would swamp the small-scale power of spectra spanning more than ~5 decades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal
import torch

from astrogen.errors import DataError
from astrogen.stats._common import CACHE_BYTES, as_tensor, batch_ndim, chunks, fft


@dataclass
class PowerSpectrum:
    """A binned isotropic power spectrum.

    Attributes
    ----------
    k : [B] mean |k| of the Fourier modes in each bin, 1/<pixel unit> (NaN for an empty user bin).
    power : [N, C, B] auto spectra, or [N, C, C, B] cross spectra, <field unit>^2 <pixel unit>^d
        (dimensionless when ``dimensionless``: 3D k^3 P / (2 pi^2), 2D k^2 P / (2 pi)).
    modes : [B] number of Fourier modes per bin, both halves of the complex plane counted.
    edges : [B + 1] bin edges in 1/<pixel unit>.
    dimensionless : whether ``power`` is the dimensionless form.
    """

    k: np.ndarray
    power: np.ndarray
    modes: np.ndarray
    dimensionless: bool
    edges: np.ndarray | None = None


@dataclass
class _Grid:
    """Wavenumbers of the rfft grid of a periodic box, flattened to [M] modes."""

    axes: list[torch.Tensor]  # per spatial axis, k_i at every mode [M]
    kmag: torch.Tensor  # [M]
    multiplicity: torch.Tensor  # [M]: 2 where the rfft half-plane stands for a mode and its conjugate
    volume: float
    npix: int
    cell: float


def _grid(shape: tuple[int, ...], pixel_size: float, device: torch.device) -> _Grid:
    freqs = [torch.fft.fftfreq(n, d=pixel_size, dtype=torch.float64, device=device) for n in shape[:-1]]
    freqs.append(torch.fft.rfftfreq(shape[-1], d=pixel_size, dtype=torch.float64, device=device))
    axes = [2 * math.pi * a.reshape(-1) for a in torch.meshgrid(*freqs, indexing="ij")]
    kmag = torch.sqrt(sum(a**2 for a in axes))
    last = torch.arange(shape[-1] // 2 + 1, device=device).expand(*[len(f) for f in freqs]).reshape(-1)
    multiplicity = torch.where((last > 0) & (2 * last != shape[-1]), 2.0, 1.0).to(torch.float64)
    npix = math.prod(shape)
    return _Grid(axes, kmag, multiplicity, npix * pixel_size ** len(shape), npix, pixel_size)


def _edges(bins, log_bins: bool, shape: tuple[int, ...], pixel_size: float) -> tuple[np.ndarray, bool]:
    """Bin edges (1/<pixel unit>) and whether they were chosen here (then empty bins are dropped)."""
    if bins is not None and np.ndim(bins) == 1:
        edges = np.asarray(bins, dtype=np.float64)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0) or not np.isfinite(edges).all():
            raise DataError(f"power spectrum: bin edges must be finite and increasing, got {edges}")
        return edges, False
    n_min = min(shape)
    kf = 2 * np.pi / (n_min * pixel_size)
    top = (n_min // 2 + 0.5) * kf  # the last bin is centred on the Nyquist frequency of the shortest side
    if bins is None and not log_bins:
        return kf * (np.arange(n_min // 2 + 1) + 0.5), True
    count = 20 if bins is None else int(bins)
    if count < 1:
        raise DataError(f"power spectrum: need at least one bin, got bins={bins}")
    if log_bins:
        return np.geomspace(kf * (1 - 1e-9), top, count + 1), True
    return np.linspace(0.5 * kf, top, count + 1), True


def _shot(shot_noise, x: torch.Tensor, grid: _Grid) -> torch.Tensor | None:
    """Shot-noise power [N, C] (or broadcastable) in the units of P."""
    if shot_noise is None:
        return None
    if isinstance(shot_noise, str):
        if shot_noise != "poisson":
            raise DataError(f"power spectrum: shot_noise must be a number, an array or 'poisson', got {shot_noise!r}")
        if bool((x < 0).any()):
            raise DataError("power spectrum: shot_noise='poisson' needs counts, but the maps have negative values")
        # White Poisson noise of counts: variance = mean count per cell, so P_shot = mean * cell volume.
        return x.flatten(2).mean(-1) * grid.cell ** (x.ndim - 2)
    shot = torch.as_tensor(np.asarray(shot_noise, dtype=np.float64), device=x.device)
    if shot.ndim > 2 or not bool(torch.isfinite(shot).all()):
        raise DataError(f"power spectrum: shot_noise must be finite, a scalar, [C] or [N, C]; got shape {shot.shape}")
    return shot


def _bin_weights(grid: _Grid, edges: np.ndarray):
    """Per-mode bin index [M] (``n_bins`` = overflow bin for modes outside the edges), averaging weight [M]
    (multiplicity / modes in its bin), modes per bin [n_bins] and mean |k| per bin [n_bins]."""
    idx = torch.bucketize(grid.kmag, torch.as_tensor(edges, device=grid.kmag.device), right=True) - 1
    # A mode exactly on the top edge belongs to the last bin (numpy.histogram's convention).
    idx = torch.where(grid.kmag == float(edges[-1]), len(edges) - 2, idx)
    n_bins = len(edges) - 1
    # Modes outside the edges go to an overflow bin that is cut off: no masked copy of the [..., M] power.
    idx = torch.where((idx >= 0) & (idx < n_bins), idx, n_bins)
    modes = torch.zeros(n_bins + 1, dtype=torch.float64, device=idx.device).index_add_(0, idx, grid.multiplicity)
    ksum = torch.zeros_like(modes).index_add_(0, idx, grid.multiplicity * grid.kmag)
    weights = grid.multiplicity / modes[idx].clamp(min=1)
    return idx, weights, modes[:n_bins], ksum[:n_bins] / modes[:n_bins]


def _spectra(maps, pixel_size, bins, log_bins, deconvolve_cic, shot_noise, dimensionless, cross: bool):
    if not pixel_size > 0:
        raise DataError(f"power spectrum: pixel_size must be > 0, got {pixel_size}")
    x = as_tensor(maps, batch_ndim(maps), check_finite=False)
    shape, d = tuple(x.shape[2:]), x.ndim - 2
    grid = _grid(shape, float(pixel_size), x.device)
    edges, auto = _edges(bins, log_bins, shape, float(pixel_size))
    idx, weights, modes, k = _bin_weights(grid, edges)
    # Every per-mode factor is folded into the binning weights, since binning is linear: the normalisation,
    # the CIC deconvolution (window prod_i sinc^2(k_i cell / 2), squared in the power) and k^d for Delta^2.
    norm = grid.volume / grid.npix**2
    gain = torch.full_like(grid.kmag, norm)
    if deconvolve_cic:
        gain /= math.prod(torch.sinc(a * grid.cell / (2 * math.pi)) ** 4 for a in grid.axes)
    if dimensionless:
        gain *= grid.kmag**d / (2 * math.pi**2 if d == 3 else 2 * math.pi)
    n_bins, (n, c) = len(edges) - 1, x.shape[:2]
    power = torch.zeros(n, c, *((c,) if cross else ()), n_bins + 1, dtype=x.dtype, device=x.device)
    mode_weights = (weights * gain).to(x.dtype)
    item = c * (c if cross else 1) * len(idx) * x.element_size() * 2  # bytes of one map's complex modes
    # On CPU, maps go through in cache-sized chunks: the FFT, |F|^2 and the binning of a chunk stay in cache.
    for part in chunks(n, item, CACHE_BYTES if x.device.type == "cpu" else n * item):
        f = fft("rfftn", x[part], tuple(range(2, x.ndim))).flatten(2)  # [n, C, M]
        if not bool(torch.isfinite(f[..., 0]).all()):  # the k = 0 mode sums every pixel: NaN/inf show up there
            raise DataError("power spectrum: maps contain NaN or inf")
        # [n, C, C, M] Re(delta_a delta_b^*) or [n, C, M] |delta_k|^2, from the real and imaginary parts in place.
        re, im = f.real, f.imag
        p = (re[:, :, None] * re[:, None]).addcmul_(im[:, :, None], im[:, None]) if cross else \
            re.square().addcmul_(im, im)
        power[part].index_add_(p.ndim - 1, idx, p.mul_(mode_weights))
    power = power[..., :n_bins].to(torch.float64)
    shot = _shot(shot_noise, x, grid)
    if shot is not None:
        # White shot noise, or for CIC-painted particles prod_i (1 - 2/3 sin^2(k_i cell / 2)) (Jing 2005).
        profile = (math.prod(1 - 2 / 3 * torch.sin(a * grid.cell / 2) ** 2 for a in grid.axes) if deconvolve_cic
                   else torch.ones_like(gain))
        noise = torch.zeros(n_bins + 1, dtype=torch.float64, device=x.device).index_add_(
            0, idx, profile * weights * gain / norm)[:n_bins]  # shot noise is in units of P
        shot = shot.to(torch.float64).expand(x.shape[:2])
        power -= (torch.diag_embed(shot) if cross else shot)[..., None] * noise
    keep = modes > 0 if auto else torch.ones_like(modes, dtype=torch.bool)
    power = torch.where(modes > 0, power, torch.nan)
    k, power, modes = k[keep].cpu().numpy(), power[..., keep].cpu().numpy(), modes[keep].cpu().numpy()
    keep = keep.cpu().numpy()
    if auto:
        # Keep the edges of the kept bins; dropped bins are empty by construction, so no mode changes bins.
        edges = np.concatenate([edges[:-1][keep], edges[1:][keep][-1:]]) if keep.any() else edges[:1]
    return PowerSpectrum(k, power, modes, bool(dimensionless), edges)


def power_spectrum(maps, pixel_size: float = 1.0, bins=None, log_bins: bool = False, deconvolve_cic: bool = False,
                   shot_noise=None, dimensionless: bool = False) -> PowerSpectrum:
    """Isotropic auto power spectrum of periodic 2D maps or 3D boxes, batched over maps and channels.

    Parameters
    ----------
    maps : [N, C, H, W] maps or [N, C, D, H, W] boxes (NumPy or torch; torch stays on its device), or one [H, W] map.
    pixel_size : side of a pixel in physical units (Mpc/h, arcmin, ...); sets k and the normalisation of P.
    bins : None (linear bins one fundamental k_f = 2 pi / L wide, centred on multiples of k_f up to the Nyquist
        frequency of the shortest side; 20 bins if ``log_bins``), an int number of bins over the same range, or an
        array of edges in 1/<pixel unit>. Empty bins are dropped when the bins are chosen here; with explicit edges
        they are kept with NaN k and power and zero modes.
    log_bins : logarithmically spaced bins (when ``bins`` is None or an int).
    deconvolve_cic : divide by the squared cloud-in-cell window prod_i sinc^4(k_i pixel / 2) (maps painted by CIC).
    shot_noise : None; a number, [C] or [N, C] array subtracted from P (units of P); or ``"poisson"`` for maps of
        counts: P_shot = mean count per pixel * pixel area/volume. With ``deconvolve_cic`` the shot noise is
        scaled by the CIC aliasing factor prod_i (1 - 2/3 sin^2(k_i pixel / 2)) before the division.
    dimensionless : return Delta^2(k) = k^3 P / (2 pi^2) in 3D, k^2 P / (2 pi) in 2D (applied per mode).

    Returns
    -------
    PowerSpectrum with ``power`` [N, C, B].
    """
    return _spectra(maps, pixel_size, bins, log_bins, deconvolve_cic, shot_noise, dimensionless, cross=False)


def cross_spectrum(maps, pixel_size: float = 1.0, bins=None, log_bins: bool = False, deconvolve_cic: bool = False,
                   shot_noise=None, dimensionless: bool = False) -> PowerSpectrum:
    """All auto and cross spectra between the channels of each map: ``power`` [N, C, C, B], real part of
    ``V delta_a delta_b^* / N_pix^2``; same options as `power_spectrum` (shot noise only on the diagonal)."""
    return _spectra(maps, pixel_size, bins, log_bins, deconvolve_cic, shot_noise, dimensionless, cross=True)


def correlation_coefficient(maps, pixel_size: float = 1.0, bins=None, log_bins: bool = False,
                            deconvolve_cic: bool = False, shot_noise=None) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation coefficient r(k) = P_ab / sqrt(P_aa P_bb) between channels, per map.

    Returns k [B] (1/<pixel unit>) and r [N, C, C, B] (1 on the diagonal, NaN where an auto spectrum is 0).
    """
    spectra = cross_spectrum(maps, pixel_size, bins, log_bins, deconvolve_cic, shot_noise)
    auto = np.diagonal(spectra.power, axis1=1, axis2=2)  # [N, B, C]
    auto = np.moveaxis(auto, -1, 1)  # [N, C, B]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = spectra.power / np.sqrt(auto[:, :, None] * auto[:, None])
    return spectra.k, r


def power_image(maps, pixel_size: float = 1.0) -> np.ndarray:
    """2D power image: ``V |F(k)|^2 / N_pix^2`` on the full FFT grid, fftshifted so k = 0 is at the centre.

    ``maps`` [N, C, H, W] or [H, W]; returns [N, C, H, W] in <field unit>^2 <pixel unit>^2.
    """
    x = as_tensor(maps, 4)
    area = x.shape[-1] * x.shape[-2] * float(pixel_size) ** 2
    f = torch.fft.fft2(x)
    image = f.real.square().addcmul_(f.imag, f.imag) * (area / (x.shape[-1] * x.shape[-2]) ** 2)
    return torch.fft.fftshift(image, dim=(-2, -1)).cpu().numpy()


def welch_power(maps, pixel_size: float = 1.0, nperseg: int | None = None,
                axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """1D Welch power spectrum along one image axis, averaged over the other (compatibility estimator).

    Uses ``scipy.signal.welch(..., fs=1 / pixel_size, nperseg=nperseg)`` on every row (``axis=-1``) or column
    (``axis=-2``) of every map, then averages over the rows/columns: the estimator of the matter-field report.

    Returns
    -------
    k : [F] angular wavenumbers 2 pi f in 1/<pixel unit>.
    power : [N, C, F] SciPy's one-sided spectral density, <field unit>^2 <pixel unit> (per unit cycle frequency).
    """
    x = as_tensor(maps, 4).cpu().numpy()
    if axis not in (-1, -2, 2, 3):
        raise DataError(f"welch_power: axis must be -1 (along rows) or -2 (along columns), got {axis}")
    axis = axis - 4 if axis >= 0 else axis
    freq, density = scipy.signal.welch(x, fs=1.0 / float(pixel_size), nperseg=nperseg, axis=axis)
    density = density.mean(axis=-2 if axis == -1 else -1)
    return 2 * np.pi * freq, density
