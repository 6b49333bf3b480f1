"""Galaxy morphology per stamp and band: ellipticity, size, isophotal area and Sersic index.

For every ``[H, W]`` stamp (each map and channel) the background level and noise are sigma-clipped
statistics of the stamp; sources are pixels ``threshold_sigma`` noise levels above the background
(``photutils.segmentation.detect_sources``), and the measured source is the segment under the central
pixel, or the brightest segment when the centre is empty. ``photutils.segmentation.SourceCatalog`` gives the
moment-based ellipticity ``1 - b/a``, the semi-major axis (1-sigma second-moment size) and the isophotal
area of that segment; an ``astropy.modeling`` ``Sersic2D`` fit (``TRFLSQFitter``, bounded) to the
background-subtracted stamp gives the Sersic index, the half-light radius along the major axis and the
ellipticity of the profile.

All of these describe the light as observed, i.e. blurred by the PSF: on the ``galaxies`` simulator's i band
(Kolmogorov seeing of 3.45 pixels, resolved galaxies with half-light radius >= 0.3 arcsec) the plain fit's Sersic
index is biased by -0.3 (median; -2.8 for n > 2.5), the moment and fitted ellipticities by -0.07 and -0.09
(tests/stats/test_morphology.py measures it on 14 galaxies). Given the PSF (``psf``: an image, or `psf_image` /
`psf_from_meta`), the fit is forward-modelled instead (`PSFSersic2D`): the Sersic profile is convolved with the
PSF and the pixel before it is compared with the stamp, so ``sersic_n``, ``half_light_radius`` and
``sersic_ellipticity`` are those of the galaxy before seeing (median biases +0.01, +0.2% and 0.000 there); the
moment quantities stay as observed.

photutils works one object at a time, so this is the one statistic with a Python loop over stamps (it is
excluded from the scorecard's speed target). Failures are flagged, never dropped: ``failed[n, c]`` is True
and ``reason[n][c]`` says why; quantities that could not be measured are NaN (a failed Sersic fit keeps the
catalogue quantities of a detected source).

References
----------
Sersic 1963, BAAA 6, 41 (the profile); Graham & Driver 2005, PASA 22, 118 (arXiv:astro-ph/0503176; b_n, flux);
Peng et al. 2002, AJ 124, 266 (arXiv:astro-ph/0204182; GALFIT, PSF-convolved fits with an oversampled centre).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.modeling import fitting, models
from astropy.stats import sigma_clipped_stats
from photutils.segmentation import SourceCatalog, detect_sources
from photutils.utils.exceptions import NoDetectionsWarning
from scipy.signal import fftconvolve
from scipy.special import gamma, gammaincinv

from astrogen.errors import DataError
from astrogen.stats._common import as_maps

SERSIC_N_BOUNDS = (0.3, 8.0)
SUBPIXELS = 2


class PixelSersic2D(models.Sersic2D):
    """``Sersic2D`` averaged over 2 x 2 sub-pixel positions: the pixel-integrated surface brightness.

    Point sampling overestimates the central pixel of a cuspy profile and biases fitted indices and radii
    low for n >~ 2; averaging within each pixel removes most of that bias.
    """

    @classmethod
    def evaluate(cls, x, y, *params):
        """Mean of the Sersic surface brightness over sub-pixel offsets of ``x, y`` (pixels)."""
        offsets = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS - 0.5
        point = super().evaluate
        return np.mean([point(x + dx, y + dy, *params) for dy in offsets for dx in offsets], axis=0)


def _cell_means(function, x, y, sub: int, step: float) -> np.ndarray:
    """Mean of ``function(x, y)`` over ``sub`` x ``sub`` midpoints of the square cells of side ``step`` centred on
    ``x, y`` (broadcast arrays)."""
    offsets = ((np.arange(sub) + 0.5) / sub - 0.5) * step
    return function(x[..., None, None] + offsets, y[..., None, None] + offsets[:, None]).mean(axis=(-2, -1))


class PSFSersic2D(PixelSersic2D):
    """`PixelSersic2D` convolved with a PSF image: the forward model of a seeing-blurred galaxy.

    The observed image is M(x_i) = (S * P * box)(x_i), S the Sersic profile, P the PSF, box the pixel. The discrete
    convolution of pixel integrals a_j = (S * box)(x_j) with PSF samples P(x_j) gives it exactly only where both
    transforms vanish beyond the pixel Nyquist frequency; P does (a Kolmogorov PSF of FWHM 3.5 pixels keeps 1e-4 of
    its transform there), the cusp of S does not, and its aliased power (for n = 4 up to 1% of the peak, 4-16% with
    the 2 x 2 sub-pixel integral of `PixelSersic2D`) biases fitted indices high. So S is split by a round Gaussian
    window W (sigma ``CORE_WINDOW`` pixels) centred on the profile: (1 - W) S is smooth and takes the discrete
    convolution (padded by half the PSF, so light scattered into the stamp is modelled); the core W S is integrated
    on cells ``CORE_OVERSAMPLING`` times finer (the 3 x 3 around the cusp ``CUSP_SUBSAMPLING``^2 times more) on a grid
    centred on the profile, convolved with P * box sampled on that grid (Fourier interpolation of the band-limited
    PSF image, shifted by the centre's sub-pixel offset), and read at the pixel centres. Against GalSim
    (Sersic * Gaussian of FWHM 4 pixels, drawn with tight accuracy) the model is within 4e-3 of the peak for
    n = 1 and 4, r_e = 1-5 pixels, centred on a pixel corner or not (tests/stats/test_morphology.py); the plain
    discrete convolution is off by up to 0.45 when the cusp falls near a pixel centre. GALFIT likewise oversamples
    the centre of its models (Peng et al. 2002, AJ 124, 266, arXiv:astro-ph/0204182).

    Parameters
    ----------
    psf : array [h, w], odd sides
        The PSF sampled at pixel centres (no pixel convolution), unit sum, centred on pixel (h // 2, w // 2).
    """

    CORE_WINDOW = 1.25  # pixels
    CORE_HALF_WIDTH = 5  # pixels: W < 4e-4 beyond
    CORE_OVERSAMPLING = 5  # odd, so the fine grid has a cell centred on the profile
    CUSP_SUBSAMPLING = 16

    def __init__(self, *args, psf: np.ndarray, **kwargs):
        super().__init__(*args, **kwargs)
        self.psf = psf
        s, (ph, pw) = self.CORE_OVERSAMPLING, psf.shape
        fy, fx = np.fft.fftfreq(ph), np.fft.fftfreq(pw)  # cycles per pixel
        spectrum = np.fft.fft2(np.fft.ifftshift(psf)) * np.sinc(fy)[:, None] * np.sinc(fx)  # PSF * pixel box
        self._fine_spectrum = np.zeros((ph * s, pw * s), dtype=np.complex128)  # zero beyond the PSF's Nyquist
        rows, cols = np.rint(fy * ph).astype(np.int64) % (ph * s), np.rint(fx * pw).astype(np.int64) % (pw * s)
        self._fine_spectrum[np.ix_(rows, cols)] = spectrum * s**2
        self._fine_freq = (np.fft.fftfreq(ph * s, d=1.0 / s)[:, None], np.fft.fftfreq(pw * s, d=1.0 / s)[None, :])

    def evaluate(self, x, y, *params):
        """The PSF-convolved, pixel-integrated profile on the pixel grid ``x, y`` (``[H, W]`` from np.mgrid)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        (h, w), (ph, pw) = x.shape, self.psf.shape
        s, half, sigma = self.CORE_OVERSAMPLING, self.CORE_HALF_WIDTH, self.CORE_WINDOW
        cx, cy = (float(np.ravel(v)[0]) for v in params[3:5])  # x_0, y_0

        def window(u, v):
            return np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * sigma**2))

        def sersic(u, v):
            return models.Sersic2D.evaluate(u, v, *params)

        yy, xx = np.mgrid[0: h + ph - 1, 0: w + pw - 1]
        xx, yy = xx + x[0, 0] - pw // 2, yy + y[0, 0] - ph // 2
        outer = _cell_means(lambda u, v: (1 - window(u, v)) * sersic(u, v), xx, yy, SUBPIXELS, 1.0)
        image = fftconvolve(outer, self.psf, mode="valid")
        # the core, on cells of 1 / s pixel centred on (cx, cy)
        fine = np.arange(-half * s, half * s + 1) / s
        core = _cell_means(lambda u, v: window(u, v) * sersic(u, v), cx + fine[None, :], cy + fine[:, None], 2, 1 / s)
        c = half * s
        cusp = (slice(c - 1, c + 2), slice(c - 1, c + 2))
        core[cusp] = _cell_means(lambda u, v: window(u, v) * sersic(u, v), cx + fine[None, c - 1: c + 2],
                                 cy + fine[c - 1: c + 2, None], self.CUSP_SUBSAMPLING, 1 / s)
        # (P * box)(t - m / s - d), d = centre - nearest pixel centre: the kernel from fine cell m to pixel t
        px, py = round(cx - x[0, 0]) + x[0, 0], round(cy - y[0, 0]) + y[0, 0]
        fy, fx = self._fine_freq
        shift = np.exp(-2j * np.pi * fy * (cy - py)) * np.exp(-2j * np.pi * fx * (cx - px))  # separable: cheap
        kernel = np.fft.ifft2(self._fine_spectrum * shift).real
        kernel = np.fft.fftshift(kernel)[(ph * s) // 2 - (ph // 2) * s: (ph * s) // 2 + (ph // 2) * s + 1,
                                         (pw * s) // 2 - (pw // 2) * s: (pw * s) // 2 + (pw // 2) * s + 1]
        blurred = fftconvolve(core / s**2, kernel, mode="full")[::s, ::s]  # at pixels (py, px) + (-ky..ky, -kx..kx)
        ky, kx = half + ph // 2, half + pw // 2
        rows = np.arange(-ky, ky + 1) + int(py - y[0, 0])
        cols = np.arange(-kx, kx + 1) + int(px - x[0, 0])
        keep_r, keep_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
        image[np.ix_(rows[keep_r], cols[keep_c])] += blurred[np.ix_(keep_r, keep_c)]
        return image


def psf_image(fwhm_pixels: float, profile: str = "kolmogorov", size: int | None = None,
              moffat_beta: float = 3.5) -> np.ndarray:
    """A round PSF sampled at pixel centres (no pixel convolution), unit sum, for ``morphology(psf=...)``.

    Parameters
    ----------
    fwhm_pixels : float
        Full width at half maximum, pixels (0: a delta function, no blurring).
    profile : str
        ``"kolmogorov"`` (atmospheric seeing, as in the ``galaxies`` simulator), ``"gaussian"`` or ``"moffat"``.
    size : int, optional
        Odd side of the image, pixels; default the odd integer >= 8 FWHM + 1 (at least 3).
    moffat_beta : float
        Moffat index beta (Moffat 1969, A&A 3, 455) when ``profile="moffat"``.

    Returns
    -------
    np.ndarray
        ``[size, size]``, centred on pixel (size // 2, size // 2).
    """
    import galsim

    makers = {"kolmogorov": lambda f: galsim.Kolmogorov(fwhm=f), "gaussian": lambda f: galsim.Gaussian(fwhm=f),
              "moffat": lambda f: galsim.Moffat(beta=moffat_beta, fwhm=f)}
    if profile not in makers:
        raise DataError(f"profile must be one of {sorted(makers)}, got {profile!r}")
    if not (np.isfinite(fwhm_pixels) and fwhm_pixels >= 0):
        raise DataError(f"fwhm_pixels must be finite and >= 0, got {fwhm_pixels}")
    if size is None:
        size = max(3, int(np.ceil(8 * fwhm_pixels)) // 2 * 2 + 1)
    if size < 1 or size % 2 == 0:
        raise DataError(f"size must be a positive odd integer, got {size}")
    if fwhm_pixels == 0:
        image = np.zeros((size, size))
        image[size // 2, size // 2] = 1.0
        return image
    image = makers[profile](fwhm_pixels).drawImage(nx=size, ny=size, scale=1.0, method="no_pixel").array
    return image / image.sum()


def psf_from_meta(meta, size: int | None = None) -> np.ndarray:
    """The per-band PSF images ``[C, size, size]`` of a FieldSet made by the ``galaxies`` simulator.

    The simulator records its configuration in ``meta.config``: a Kolmogorov PSF of FWHM
    ``seeing_fwhm_arcsec[c]`` (arcsec) per band, on pixels of ``meta.pixel_size`` arcsec.

    Parameters
    ----------
    meta : FieldMeta (``FieldSet.meta``) of a ``galaxies`` set.
    size : odd image side, pixels; default the odd integer >= 8 FWHM + 1 of the widest band.
    """
    config = getattr(meta, "config", None) or {}
    fwhm = config.get("seeing_fwhm_arcsec")
    if fwhm is None or not getattr(meta, "pixel_size", None) or getattr(meta, "pixel_unit", None) != "arcsec":
        raise DataError("the FieldSet records no PSF (it was not made by the galaxies simulator): pass psf images "
                        "to morphology() instead, e.g. from psf_image()")
    fwhm_pixels = np.asarray(fwhm, dtype=np.float64) / meta.pixel_size
    if len(fwhm_pixels) != len(meta.channels):
        raise DataError(f"{len(fwhm_pixels)} seeing FWHMs for {len(meta.channels)} channels in the FieldSet metadata")
    if size is None:
        size = max(3, int(np.ceil(8 * fwhm_pixels.max())) // 2 * 2 + 1)
    return np.stack([psf_image(f, "kolmogorov", size) for f in fwhm_pixels])


def _check_psf(psf, channels: int) -> list[np.ndarray | None] | None:
    """``psf`` ([h, w] or [C, h, w]) as C unit-sum float64 images (None for a delta function: no blurring), or
    None."""
    if psf is None:
        return None
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim == 2:
        psf = np.broadcast_to(psf, (channels, *psf.shape))
    if psf.ndim != 3 or psf.shape[0] != channels:
        raise DataError(f"psf must be [h, w] or [C={channels}, h, w] images, got shape {psf.shape}")
    if psf.shape[1] % 2 == 0 or psf.shape[2] % 2 == 0:
        raise DataError(f"psf images must have odd sides (centred on the middle pixel), got {psf.shape[1:]}")
    total = psf.sum(axis=(1, 2))
    if not np.all(np.isfinite(psf)) or not np.all(total > 0):
        raise DataError("psf images must be finite with a positive sum")
    psf = psf / total[:, None, None]
    centre = (slice(None), psf.shape[1] // 2, psf.shape[2] // 2)
    delta = (np.count_nonzero(psf, axis=(1, 2)) == 1) & (psf[centre] == 1.0)  # e.g. a band with seeing 0
    return [None if d else p for d, p in zip(delta, psf)]


@dataclass
class Morphology:
    """Per-stamp morphology, ``[N, C]`` arrays (NaN where the measurement failed).

    Attributes
    ----------
    ellipticity : np.ndarray
        ``1 - b/a`` from the second moments of the isophotal segment.
    semi_major_axis : np.ndarray
        1-sigma second-moment semi-major axis, pixel units times ``pixel_size``.
    area : np.ndarray
        Isophotal area of the segment, pixels times ``pixel_size^2``.
    sersic_n : np.ndarray
        Sersic index of the fit.
    half_light_radius : np.ndarray
        Sersic effective radius along the major axis, pixel units times ``pixel_size``.
    failed : np.ndarray
        Bool; True where any measurement failed.
    reason : list
        ``reason[n][c]``: empty string, or why the measurement failed.
    sersic_ellipticity : np.ndarray
        ``1 - b/a`` of the Sersic fit (before seeing when the fit was given the PSF).
    """

    ellipticity: np.ndarray
    semi_major_axis: np.ndarray
    area: np.ndarray
    sersic_n: np.ndarray
    half_light_radius: np.ndarray
    failed: np.ndarray
    reason: list
    sersic_ellipticity: np.ndarray | None = None


def _sersic_fit(image: np.ndarray, x0: float, y0: float, ellip: float, theta: float, r_half: float,
                flux: float, psf: np.ndarray | None = None) -> tuple[float, float, float, str]:
    """Fit ``Sersic2D`` (convolved with ``psf`` if given) to a background-subtracted stamp; returns
    (n, r_eff in pixels, ellipticity, failure reason)."""
    h, w = image.shape
    q = max(1.0 - ellip, 0.05)
    n0 = 2.0
    b = gammaincinv(2 * n0, 0.5)
    r0 = max(r_half / np.sqrt(q), 0.5)  # circularised half-flux radius -> semi-major effective radius
    # surface brightness at r_eff that gives the segment flux for the initial n
    amplitude = flux * b ** (2 * n0) / (2 * np.pi * n0 * np.exp(b) * gamma(2 * n0) * r0**2 * q)
    kind, extra = (PixelSersic2D, {}) if psf is None else (PSFSersic2D, {"psf": psf})
    model = kind(amplitude=max(amplitude, 1e-12), r_eff=r0, n=n0, x_0=x0, y_0=y0,
                 ellip=min(ellip, 0.9), theta=theta,
                 bounds={"amplitude": (0, None), "r_eff": (0.3, 4.0 * max(h, w)), "n": SERSIC_N_BOUNDS,
                         "x_0": (-0.5, w - 0.5), "y_0": (-0.5, h - 0.5), "ellip": (0.0, 0.95)}, **extra)
    # a free constant: the sigma-clipped median includes the wings of extended galaxies, and subtracting it
    # alone truncates them (fitted n and r_eff then come out low)
    model = model + models.Const2D(amplitude=0.0)
    yy, xx = np.mgrid[0:h, 0:w]
    fitter = fitting.TRFLSQFitter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings are judged from the result below
            fit = fitter(model, xx, yy, image, maxiter=200)
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
        return np.nan, np.nan, np.nan, f"sersic fit failed: {err}"
    n, r_eff, e = float(fit[0].n.value), float(fit[0].r_eff.value), float(fit[0].ellip.value)
    if not (np.isfinite(n) and np.isfinite(r_eff) and np.isfinite(e)):
        return np.nan, np.nan, np.nan, "sersic fit failed: non-finite parameters"
    if np.isclose(n, SERSIC_N_BOUNDS, rtol=1e-3).any():
        return np.nan, np.nan, np.nan, f"sersic fit failed: index {n:.3g} at its bound"
    return n, r_eff, e, ""


def _measure(stamp: np.ndarray, threshold_sigma: float, npixels: int, fit_sersic: bool,
             psf: np.ndarray | None = None) -> tuple[list, str]:
    """[ellipticity, semi-major axis, area, n, r_eff, Sersic ellipticity] in pixel units for one stamp, and a
    failure reason."""
    values = [np.nan] * 6
    _, median, std = sigma_clipped_stats(stamp, sigma=3.0)
    data = stamp - median
    if not std > 0:
        return values, "no background noise to set the detection threshold (constant background)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # reported through ``reason`` instead
        segm = detect_sources(data, threshold_sigma * std, n_pixels=npixels)
    if segm is None:
        return values, f"no source {threshold_sigma} sigma above the background"
    h, w = stamp.shape
    label = int(segm.data[h // 2, w // 2])
    catalog = SourceCatalog(data, segm)
    if label == 0:  # nothing under the centre: the brightest source
        label = int(catalog.labels[np.argmax(catalog.segment_flux)])
    source = catalog.select_label(label)
    ellip = float(source.ellipticity.value)
    values[:3] = [ellip, float(source.semimajor_axis.value), float(source.area.value)]
    if not fit_sersic:
        return values, ""
    n, r_eff, e, reason = _sersic_fit(data, float(source.x_centroid), float(source.y_centroid), ellip,
                                      float(source.orientation.to_value("rad")),
                                      float(source.flux_radius(0.5).value), float(source.segment_flux), psf)
    values[3:] = [n, r_eff, e]
    return values, reason


def morphology(maps, pixel_size: float = 1.0, threshold_sigma: float = 3.0, fit_sersic: bool = True,
               npixels: int = 5, psf=None) -> Morphology:
    """Morphology of the central (or brightest) source of every stamp and band.

    Parameters
    ----------
    maps : array ``[N, C, H, W]`` or ``[H, W]`` (NumPy or torch)
        Galaxy stamps, one band per channel.
    pixel_size : float
        Side of a pixel in physical units (e.g. arcsec); sizes and areas are scaled by it.
    threshold_sigma : float
        Detection threshold in units of the sigma-clipped background noise of the stamp.
    fit_sersic : bool
        Fit a Sersic profile (``sersic_n``, ``half_light_radius`` and ``sersic_ellipticity`` are NaN otherwise).
    npixels : int
        Minimum number of connected pixels of a source.
    psf : array ``[h, w]`` or ``[C, h, w]``, optional
        The PSF of every band (or one for all), sampled at pixel centres without pixel convolution, odd sides,
        centred on the middle pixel, Nyquist-sampled (FWHM >~ 2 pixels); normalised here. Given, the Sersic model
        is convolved with it before the fit (`PSFSersic2D`), so ``sersic_n``, ``half_light_radius`` and
        ``sersic_ellipticity`` describe the galaxy before seeing (a delta-function image means no PSF: plain fit).
        Make it with `psf_image` (Kolmogorov, Gaussian or Moffat FWHM in pixels) or, for a FieldSet made by the
        ``galaxies`` simulator, `psf_from_meta` (its recorded seeing). A PSF image that already includes the
        pixel counts the pixel twice (sizes then come out slightly small). Default None: the plain fit of the
        observed light.
    """
    x = as_maps(maps, float64=True)
    if not pixel_size > 0 or not threshold_sigma > 0 or npixels < 1:
        raise DataError(f"pixel_size and threshold_sigma must be positive and npixels >= 1, got "
                        f"{pixel_size}, {threshold_sigma}, {npixels}")
    n, c = x.shape[:2]
    psfs = _check_psf(psf, c) or [None] * c
    values = np.full((n, c, 6), np.nan)
    reason = [["" for _ in range(c)] for _ in range(n)]
    for i in range(n):  # per-object photutils calls: no batched form exists
        for j in range(c):
            values[i, j], reason[i][j] = _measure(x[i, j], threshold_sigma, npixels, fit_sersic, psfs[j])
    scale = np.array([1.0, pixel_size, pixel_size**2, 1.0, pixel_size, 1.0])
    values *= scale
    failed = np.array([[bool(r) for r in row] for row in reason], dtype=bool).reshape(n, c)
    return Morphology(ellipticity=values[..., 0], semi_major_axis=values[..., 1], area=values[..., 2],
                      sersic_n=values[..., 3], half_light_radius=values[..., 4], failed=failed, reason=reason,
                      sersic_ellipticity=values[..., 5])
