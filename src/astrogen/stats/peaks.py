"""Peak statistics: 8-neighbour local maxima, peak counts versus height, stacked profiles, marginal sums.

Peaks are pixels strictly higher than their 8 neighbours. With ``beam_fwhm`` the maps are first smoothed
with a Gaussian beam of that full width at half maximum (the beam-matched filter): on noisy maps raw
maxima are dominated by noise spikes, and stacking around them biases the central pixel high (the
microwave-sky report's fix is to locate peaks on the beam-smoothed map and stack the original map there).
All functions work on the whole ``[N, C, H, W]`` stack at once (one compiled pass for the maxima, one batched FFT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros
from scipy import fft as sp_fft
from scipy import ndimage

from astrogen.errors import DataError
from astrogen.stats._binning import bin_of
from astrogen.stats._common import as_maps, not_finite

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


@dataclass
class PeakCounts:
    """Peak counts per map versus height ``nu = value / sigma``.

    Attributes
    ----------
    nu : np.ndarray
        ``[B]`` bin centres, in units of ``sigma``.
    edges : np.ndarray
        ``[B + 1]`` bin edges, in units of ``sigma``.
    counts : np.ndarray
        ``[N, C, B]`` number of peaks per map and bin (peaks outside the edges are not counted).
    sigma : np.ndarray
        ``[C]`` the field units per unit of ``nu`` that were used (pass it on to count another set).
    """

    nu: np.ndarray
    edges: np.ndarray
    counts: np.ndarray
    sigma: np.ndarray


def smooth_beam(maps, beam_fwhm: float, pixel_size: float = 1.0, periodic: bool = False) -> np.ndarray:
    """Maps convolved with a circular Gaussian beam of full width at half maximum ``beam_fwhm``.

    Parameters
    ----------
    maps : array ``[N, C, H, W]`` or ``[H, W]``
    beam_fwhm : float
        Beam FWHM in the units of ``pixel_size``.
    pixel_size : float
        Side of a pixel in physical units.
    periodic : bool
        True: exact periodic convolution by one batched FFT; False: ``scipy.ndimage.gaussian_filter``
        with reflecting edges.
    """
    x = as_maps(maps)
    if not beam_fwhm > 0 or not pixel_size > 0:
        raise DataError(f"beam_fwhm and pixel_size must be positive, got {beam_fwhm} and {pixel_size}")
    sigma_pix = beam_fwhm * FWHM_TO_SIGMA / pixel_size
    if not periodic:
        return ndimage.gaussian_filter(x, sigma_pix, axes=(-2, -1))
    h, w = x.shape[-2:]
    ky = 2 * np.pi * np.fft.fftfreq(h)[:, None]
    kx = 2 * np.pi * np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-0.5 * sigma_pix**2 * (kx**2 + ky**2)).astype(x.dtype)
    return sp_fft.irfft2(sp_fft.rfft2(x) * kernel, s=(h, w))


@njit(cache=True, nogil=True, fastmath=False)
def _above(a, b):
    """max(a, b) as one select (vectorisable; NaN only in maps that are rejected anyway)."""
    return a if a > b else b


@njit(cache=True, nogil=True, fastmath=False)
def _framed(x, m, periodic, frame):
    """Map ``m`` of ``x`` [M, H, W] copied into ``frame`` [H + 2, W + 2] inside a border of its wrapped edges, or
    of -inf (in a map 1 or 2 pixels wide a wrapped neighbour repeats, or is the pixel itself); True if all its
    pixels are finite (checked in the same pass)."""
    h, w = x.shape[1], x.shape[2]
    bad = np.uint8(0)
    for i in range(h):
        for j in range(w):
            v = x[m, i, j]
            frame[i + 1, j + 1] = v
            bad |= not np.abs(v) < np.inf
    for i in range(1, h + 1):
        frame[i, 0] = frame[i, w] if periodic else -np.inf
        frame[i, w + 1] = frame[i, 1] if periodic else -np.inf
    for j in range(w + 2):
        frame[0, j] = frame[h, j] if periodic else -np.inf
        frame[h + 1, j] = frame[1, j] if periodic else -np.inf
    return bad == 0


@njit(cache=True, nogil=True, fastmath=False)
def _flag_peaks(top, mid, bottom, flags):
    """``flags[k]`` (uint8): ``mid[k + 1]`` strictly above its 8 neighbours, where ``top``, ``mid`` and ``bottom``
    are the flat frame from its rows 0, 1 and 2 on. One branch-free loop over contiguous 1-D arrays: SIMD."""
    for k in range(flags.size):
        up = _above(_above(top[k], top[k + 1]), top[k + 2])
        down = _above(_above(bottom[k], bottom[k + 1]), bottom[k + 2])
        flags[k] = mid[k + 1] > _above(_above(up, down), _above(mid[k], mid[k + 2]))


@njit(cache=True, nogil=True, fastmath=False)
def _scan(x, m, periodic, buffers):
    """Peak flags of map ``m`` of ``x`` [M, H, W] in ``flags`` [H (W + 2)] (row-major over the frame's columns 1..W + 2,
    the last two of each row 0) and the map in the frame ``buffers[0]``; True if the map is finite."""
    frame, flags = buffers
    h, w = x.shape[1], x.shape[2]
    span, n = w + 2, h * (w + 2)
    finite = _framed(x, m, periodic, frame[: (h + 2) * span].reshape(h + 2, span))
    _flag_peaks(frame[: n + 2], frame[span : span + n + 2], frame[2 * span : 2 * span + n + 2], flags[:n])
    for i in range(h):
        flags[i * span + w] = flags[i * span + w + 1] = 0
    return finite


@njit(cache=True, nogil=True, fastmath=False)
def _buffers(x):
    """(flat frame, flags) for `_scan` of the maps ``x`` [M, H, W]; the flags padded with zeros to whole 64s."""
    h, w = x.shape[1], x.shape[2]
    n = h * (w + 2)
    return np.empty((h + 2) * (w + 2) + 2, x.dtype), np.zeros((n + 63) // 64 * 64, np.uint8)


@njit(cache=True, nogil=True, fastmath=False)
def _peak_mask(x, periodic):
    """(bool mask [M, H, W] of the pixels of the maps ``x`` [M, H, W] strictly above their 8 neighbours, whether
    all maps are finite)."""
    h, w = x.shape[1], x.shape[2]
    mask = np.empty(x.shape, np.bool_)
    buffers = _buffers(x)
    flags = buffers[1][: h * (w + 2)].reshape(h, w + 2)
    finite = True
    for m in range(x.shape[0]):
        finite &= _scan(x, m, periodic, buffers)
        for i in range(h):
            for j in range(w):
                mask[m, i, j] = flags[i, j]
    return mask, finite


_BYTES_TO_BITS = np.uint64(0x0102040810204080)  # (8 bytes of 0 or 1) * this >> 56: their 8 bits, in order


@njit(cache=True, nogil=True, fastmath=False)
def _flag_bits(words, t):
    """The 64 flags (bytes 0 or 1) in ``words[8 t : 8 t + 8]`` (uint64) as the bits of one uint64, flag k bit k."""
    bits = np.uint64(0)
    for q in range(8):
        bits |= ((words[8 * t + q] * _BYTES_TO_BITS) >> np.uint64(56)) << np.uint64(8 * q)
    return bits


@njit(cache=True, nogil=True, fastmath=False)
def _peak_histogram(x, periodic, sigma, edges):
    """(peaks per map and bin of nu = value / sigma, [M, B] int64; whether all maps are finite) of the maps ``x``
    [M, H, W] (map m of channel m % C of ``sigma`` [C]); bins ``edges`` [B + 1] as np.histogram (last bin
    closed), peaks outside not counted. The flags are visited 64 at a time, set bits only."""
    b, span = edges.size - 1, x.shape[2] + 2
    counts = np.zeros((x.shape[0], b), np.int64)
    buffers = _buffers(x)
    centre, words = buffers[0][span + 1 :], buffers[1].view(np.uint64)
    per_unit = b / (edges[b] - edges[0])
    finite = True
    for m in range(x.shape[0]):
        s = sigma[m % sigma.size]
        finite &= _scan(x, m, periodic, buffers)
        for t in range(words.size // 8):
            bits = _flag_bits(words, t)
            while bits:
                k = bin_of(centre[64 * t + trailing_zeros(bits)] / s, edges, per_unit)
                bits &= bits - np.uint64(1)
                if 0 <= k < b:
                    counts[m, k] += 1
    return counts, finite


def _local_maxima(x: np.ndarray, periodic: bool) -> np.ndarray:
    """Bool mask of pixels strictly above all 8 neighbours (wrapped, or -inf outside the map): one compiled pass
    over the maps in their own precision (the comparisons are exact) that also rejects NaN and inf."""
    h, w = x.shape[-2:]
    mask, finite = _peak_mask(np.ascontiguousarray(x).reshape(-1, h, w), periodic)
    if not finite:
        raise not_finite()
    return mask.reshape(x.shape)


def _analysed(maps, beam_fwhm, pixel_size, periodic, check_finite=False) -> tuple[np.ndarray, np.ndarray]:
    """(original maps, maps in which peaks are searched: beam-smoothed when ``beam_fwhm`` is given). NaN and inf are
    rejected here before a smoothing or with ``check_finite``, else by the peak kernels in their own pass."""
    x = as_maps(maps, check_finite=check_finite or beam_fwhm is not None)
    return x, (x if beam_fwhm is None else smooth_beam(x, beam_fwhm, pixel_size, periodic))


def _channel_sigma(x: np.ndarray, sigma) -> np.ndarray:
    """``[C]`` sigma: the given value(s) broadcast, or the pixel std per channel over the whole set."""
    c = x.shape[1]
    if sigma is None:
        s = x.std(axis=(0, 2, 3), dtype=np.float64)
    else:
        s = np.asarray(sigma, dtype=np.float64)
        if s.size not in (1, c):
            raise DataError(f"sigma must be a scalar or have one value per channel ({c}), got shape {s.shape}")
        s = np.broadcast_to(s.ravel(), (c,))
    if not (np.isfinite(s) & (s > 0)).all():
        raise DataError(f"sigma must be positive and finite per channel, got {s} (constant maps?)")
    return np.array(s, dtype=np.float64)


def find_peaks(maps, beam_fwhm: float | None = None, pixel_size: float = 1.0, periodic: bool = False) -> np.ndarray:
    """Bool mask ``[N, C, H, W]`` of 8-neighbour local maxima.

    Parameters
    ----------
    maps : array ``[N, C, H, W]`` or ``[H, W]`` (NumPy or torch)
    beam_fwhm : float, optional
        If given, peaks are searched in the maps smoothed with a Gaussian beam of this FWHM
        (units of ``pixel_size``): the beam-matched filter that suppresses noise peaks.
    pixel_size : float
        Side of a pixel in physical units.
    periodic : bool
        Wrap neighbours (and the smoothing) around the edges; otherwise pixels outside the map count as
        -inf, so an edge pixel is a peak when it beats its in-map neighbours.
    """
    return _local_maxima(_analysed(maps, beam_fwhm, pixel_size, periodic)[1], periodic)


def peak_counts(maps, nu_edges=None, sigma=None, beam_fwhm: float | None = None, pixel_size: float = 1.0,
                periodic: bool = False) -> PeakCounts:
    """Number of peaks per map in bins of height ``nu = value / sigma``.

    Parameters
    ----------
    maps : array ``[N, C, H, W]`` or ``[H, W]``
    nu_edges : array ``[B + 1]``, optional
        Bin edges in units of sigma; default ``np.linspace(-2, 6, 17)``.
    sigma : float or array ``[C]``, optional
        Field units per unit of nu. Default: per-channel pixel std of the analysed maps (after the beam
        smoothing, if any) over the whole input set. Pass the real set's ``PeakCounts.sigma`` when
        counting a generated set, so both are binned on the same scale.
    beam_fwhm, pixel_size, periodic
        As in `find_peaks`; the peak height is read from the smoothed map when a beam is given.
    """
    y = _analysed(maps, beam_fwhm, pixel_size, periodic, check_finite=sigma is None)[1]  # the std comes first
    edges = np.linspace(-2, 6, 17) if nu_edges is None else np.asarray(nu_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not (np.diff(edges) > 0).all():
        raise DataError(f"nu_edges must be increasing with at least 2 values, got {edges}")
    s = _channel_sigma(y, sigma)
    h, w = y.shape[-2:]
    counts, finite = _peak_histogram(np.ascontiguousarray(y).reshape(-1, h, w), periodic, s, edges)  # one pass
    if not finite:
        raise not_finite()
    counts = counts.reshape(*y.shape[:2], -1).astype(np.float64)
    return PeakCounts(nu=0.5 * (edges[1:] + edges[:-1]), edges=edges, counts=counts, sigma=s)


def stacked_profile(maps, size: int = 21, threshold_nu: float | None = None, sigma=None,
                    beam_fwhm: float | None = None, pixel_size: float = 1.0,
                    periodic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ``size x size`` cutout of the maps centred on their peaks, and its radial profile.

    Peaks are found as in `find_peaks` (on the beam-smoothed maps when ``beam_fwhm`` is given) but the
    cutouts are taken from the original maps. The sum of all cutouts is the cross-correlation of the peak
    mask with the map, computed for the whole set by one batched FFT. Without ``periodic``, peaks closer
    than ``size // 2`` pixels to an edge are skipped (their cutout would leave the map).

    Parameters
    ----------
    maps : array ``[N, C, H, W]`` or ``[H, W]``
    size : int
        Odd cutout side in pixels, at most the map side.
    threshold_nu : float, optional
        Keep only peaks with ``value / sigma >= threshold_nu`` (value read where peaks are searched).
    sigma : float or array ``[C]``, optional
        As in `peak_counts`.
    beam_fwhm, pixel_size, periodic
        As in `find_peaks`.

    Returns
    -------
    stack : np.ndarray ``[C, size, size]``
        Mean cutout per channel (field units; NaN for a channel without peaks).
    r : np.ndarray ``[R]``
        Radii ``0, 1, ..., size // 2`` pixels times ``pixel_size``.
    profile : np.ndarray ``[C, R]``
        Mean of the stack over pixels whose distance from the centre rounds to each radius.
    """
    total, n_peaks = peak_cutout_sums(maps, size, threshold_nu, sigma, beam_fwhm, pixel_size, periodic)
    return profile_of_sums(total, n_peaks, pixel_size)


def _peaks_to_stack(maps, size, threshold_nu, sigma, beam_fwhm, pixel_size, periodic):
    """``(maps [N, C, H, W], peak mask, half)``: the peaks whose ``size x size`` cutouts are stacked."""
    x, y = _analysed(maps, beam_fwhm, pixel_size, periodic)
    h, w = x.shape[-2:]
    if size % 2 != 1 or size > min(h, w):
        raise DataError(f"cutout size must be odd and at most the map side {min(h, w)}, got {size}")
    half = size // 2
    mask = _local_maxima(y, periodic)
    if threshold_nu is not None:
        mask &= y >= threshold_nu * _channel_sigma(y, sigma)[None, :, None, None]
    if not periodic:
        border = np.zeros((h, w), dtype=bool)
        border[half : h - half, half : w - half] = True
        mask &= border
    return x, mask, half


def _cutouts(spectrum: np.ndarray, shape: tuple[int, int], half: int) -> np.ndarray:
    """Offsets -half..half of the circular cross-correlation whose rfft2 is ``spectrum``: [..., size, size]."""
    h, w = shape
    corr = sp_fft.irfft2(spectrum, s=(h, w))
    offsets = np.arange(-half, half + 1)
    return corr[..., offsets[:, None] % h, offsets[None, :] % w]


def _ring_means(half: int) -> np.ndarray:
    """[size^2, R] matrix averaging a flattened ``size x size`` cutout over rings of rounded radius 0..half."""
    offsets = np.arange(-half, half + 1)
    ring = np.rint(np.hypot(offsets[:, None], offsets[None, :])).astype(int).ravel()
    onehot = (ring[:, None] == np.arange(half + 1)[None, :]).astype(np.float64)
    return onehot / onehot.sum(axis=0)


def peak_cutout_sums(maps, size: int = 21, threshold_nu: float | None = None, sigma=None,
                     beam_fwhm: float | None = None, pixel_size: float = 1.0,
                     periodic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The additive part of `stacked_profile`: sum of the cutouts ``[C, size, size]`` (field units) and number
    of peaks ``[C]``. Sum both over the batches of a large set, then call `profile_of_sums`; give ``sigma``
    with ``threshold_nu`` so that every batch uses the same scale. Parameters as in `stacked_profile`."""
    x, mask, half = _peaks_to_stack(maps, size, threshold_nu, sigma, beam_fwhm, pixel_size, periodic)
    # sum of cutouts[dy, dx] = sum_peaks x[i + dy, j + dx]: a circular cross-correlation, summed over maps
    # in Fourier space; without wrap, skipping border peaks keeps every offset inside the map (exact).
    spectrum = (np.conj(sp_fft.rfft2(mask)) * sp_fft.rfft2(x)).sum(axis=0)
    return _cutouts(spectrum, x.shape[-2:], half), mask.sum(axis=(0, 2, 3)).astype(np.float64)


def peak_profiles(maps, size: int = 21, threshold_nu: float | None = None, sigma=None,
                  beam_fwhm: float | None = None, pixel_size: float = 1.0,
                  periodic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-map stacked peak profile: the radial profile of each map's mean cutout around its own peaks.

    The per-map version of `stacked_profile` (same peaks, cutouts and rings), for scoring sets map by map.

    Returns
    -------
    r : np.ndarray ``[R]``
        Radii ``0, 1, ..., size // 2`` pixels times ``pixel_size``.
    profiles : np.ndarray ``[N, C, R]``
        Ring means of each map's mean cutout (field units); zero for a map without peaks.
    n_peaks : np.ndarray ``[N, C]``
        Peaks stacked in each map.
    """
    x, mask, half = _peaks_to_stack(maps, size, threshold_nu, sigma, beam_fwhm, pixel_size, periodic)
    cutouts = _cutouts(np.conj(sp_fft.rfft2(mask)) * sp_fft.rfft2(x), x.shape[-2:], half)
    n_peaks = mask.sum(axis=(2, 3)).astype(np.float64)
    profiles = cutouts.reshape(*cutouts.shape[:2], -1) @ _ring_means(half) / np.maximum(n_peaks, 1)[..., None]
    return np.arange(half + 1) * float(pixel_size), profiles, n_peaks


def profile_of_sums(total: np.ndarray, n_peaks: np.ndarray,
                    pixel_size: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stack, r, profile)`` of `stacked_profile` from the cutout sums ``[C, size, size]`` and peak numbers
    ``[C]`` of `peak_cutout_sums`."""
    half = total.shape[-1] // 2
    with np.errstate(invalid="ignore", divide="ignore"):
        stack = total / n_peaks[:, None, None]
    profile = stack.reshape(stack.shape[0], -1) @ _ring_means(half)
    return stack, np.arange(half + 1) * float(pixel_size), profile


def marginal_sums(maps) -> tuple[np.ndarray, np.ndarray]:
    """Row sums ``[N, C, H]`` (sum over columns) and column sums ``[N, C, W]`` (sum over rows), field units."""
    x = as_maps(maps)
    return x.sum(axis=-1), x.sum(axis=-2)
