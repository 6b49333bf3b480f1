"""Fermi-like gamma-ray counts around the Galactic Center: diffuse templates, point sources, PSF, Poisson.

Training data for estimating the dark-matter amplitude and the point-source populations, for segmenting
point sources and for denoising (the gamma-ray report). One energy channel, ``size`` x ``size`` pixels
(default 64) over a ``region_deg`` x ``region_deg`` square (default 40 x 40 degrees) centred on the GC.

**Geometry.** Plate carree (CAR) in Galactic coordinates: pixel (row i, column j) has its centre at
``x = -R/2 + (j + 1/2) p``, ``y = R/2 - (i + 1/2) p`` (R = region_deg, p = R / size, degrees), with
longitude ``l = -x`` (east to the left, as on the sky) and latitude ``b = y`` (north up). Templates are
integrated over each pixel on a ``supersample`` x ``supersample`` sub-grid weighted by the pixel solid
angle (proportional to cos b), on cells of 1/2 to 1/4 pixel where the PSF is not much wider than a
pixel or the sky is rotated (the PSF then acts at cell resolution); the dm cusp in the cells within two
cells of the GC is integrated exactly (`radial_cell_means`). The default templates agree to 1% (dm
peak; 0.1% without PSF) and 0.5% (gas) with ones built on grids of 8 cells per pixel, 16 x 16 sub-cells.
The GC sits at the image centre (a pixel corner for even ``size``).

**Expected counts** of image n (all in counts at the configured exposure)::

    mu_n = exposure * [ sum_k A_k,n T_k + PSF * PS_n ],     k in (dm, pi0, ic, bubbles),

and the stored image is ``counts_n ~ Poisson(mu_n)``. Each diffuse template T_k is blurred by the PSF
(on a grid extended beyond the region, so emission from just outside scatters in) and normalised so
that at amplitude 1 and exposure 1 the unrotated image holds exactly ``<k>_counts`` expected counts.

Templates (all shapes computed once in ``__init__``):

* **dm** (``A_dm`` ~ U[a_dm], default U[0, 1]): annihilation, J(psi) = int_0^100 kpc rho^2(r(s)) ds with
  the generalised NFW profile rho ~ (r/r_s)^-gamma (1 + r/r_s)^(gamma - 3) (gamma = ``dm_gamma`` 1.2,
  r_s = ``dm_scale_radius_kpc`` 20 kpc), r^2 = s^2 + R_sun^2 - 2 s R_sun cos psi, cos psi = cos l cos b,
  R_sun = ``sun_distance_kpc`` 8.5 kpc; tabulated on a log grid of psi (Simpson's rule in
  u = asinh(x / impact parameter), which resolves the r^-2 gamma cusp) and interpolated log-log.
* **pi0** (gas, ``A_pi0`` ~ U[a_pi0], default U[0.5, 1.5]): exp(-|b| / gas_scale_b_deg) /
  (1 + (l / gas_scale_l_deg)^2) x exp(sigma g - sigma^2 / 2): a thin disk (2 deg) extended in l (30 deg),
  modulated by a fixed lognormal clump field (g a unit-variance Gaussian random field with Gaussian
  correlation of ``gas_clump_deg`` 1 deg, sigma = ``gas_clump_sigma`` 0.5, drawn from ``gas_seed`` as
  256 random Fourier modes, so the clumps sit at the same (l, b) whatever the size, region or rotation).
* **ic** (inverse Compton, ``A_ic`` ~ U[a_ic], default U[0.5, 1.5]): 1 / (1 + (l / ic_scale_l_deg)^2) /
  (1 + (b / ic_scale_b_deg)^2), broad and smooth (30 deg in l, 8 deg in b: wider in b than the gas). With
  ``ic_profile: exponential``, exp(-|l| / ic_scale_l_deg - |b| / ic_scale_b_deg) instead: the same scales, the
  same expected counts at amplitude 1, but peaked at the GC where the Lorentzian is flat (its half maximum at
  0.69 of the scale instead of 1), so part of the IC emission looks like the dm cusp: at the defaults the
  central 10 x 10 deg hold 16.1% of the IC counts instead of 13.3%, the brightest pixel 1.47 times as many.
* **bubbles** (``A_bubbles`` ~ U[a_bubbles], default U[0.5, 1.5]): two flat lobes, circles in the (l, b)
  plane of radius ``bubble_radius_deg`` 15 deg centred at b = +-``bubble_center_b_deg`` 16 deg, with
  logistic edges of width ``bubble_edge_deg`` 1 deg: 1 / (1 + exp((d - radius) / edge)) per lobe.

Point sources (PS), fluxes in expected counts at exposure 1, each deposited at the centre of its pixel:

* **disk**: ``n_ps_disk`` ~ U{n_ps_disk} (default 1000..4000, integers, inclusive) sources in the image,
  pixel drawn with probability proportional to the line-of-sight integral of a thin disk
  exp(-R / disk_scale_radius_kpc) exp(-|z| / disk_scale_height_kpc) (5 kpc, 0.3 kpc) over the pixel;
  fluxes from the broken power law dN/dS ~ (S / S_b)^-disk_index_below for disk_flux_min <= S < S_b,
  (S / S_b)^-disk_index_above for S_b <= S <= disk_flux_max (defaults 1, 10, 1000 counts; 1.5, 2.5).
* **gc**: ``n_ps_gc`` ~ U{n_ps_gc} (default 200..800) sources whose sky density follows the dm template
  (number density ~ rho_gNFW^2, integrated along the line of sight); fluxes from dN/dS ~ S^-gc_index on
  [gc_flux_min, gc_flux_max] (default 2.0 on [1, 100] counts).

Both sky densities are line-of-sight integrals of the number density (the "flux template" convention of
non-Poissonian template fitting), i.e. without the s^2 volume factor: fluxes are drawn as observed
counts, not luminosities. Only sources inside the image are simulated.

**PSF**: a Gaussian of FWHM ``psf_fwhm_deg`` (default 1 deg; 0 switches it off), integrated over pixels,
applied as separable matrix products along rows and columns with zero padding (the sky is not periodic;
equal to a zero-padded FFT convolution and faster at these sizes). Point-source flux blurred beyond the
image edge is lost. **Rotation** (``rotate``): the image plane is rotated counter-clockwise (as displayed,
north up) by angle ~ U[0, 360) degrees about the GC before the Poisson draw: the blurred diffuse templates
and the source densities are then computed on a grid of cells extended to cover every rotation,
resampled bilinearly at 2 x 2 rotated points per pixel and averaged; sources are drawn from the
rotated densities, so the mask rotates with the sky. Template normalisations refer to the unrotated image
(rotated totals differ by the edge content). It is a rotation of the flat CAR image, not of the sphere:
near the corners the dm template (round on the sphere) differs from its rotated copy by up to 8%, and
the bilinear resampling smooths the central dm cusp by up to 2%.

Stored: ``images`` [N, 1, H, W] counts (float32 holding integers); with ``return_components`` the
images have six channels ``counts, dm, pi0, ic, bubbles, ps``, the last five the expected counts of
each component after the PSF (they sum to the Poisson mean). ``masks`` [N, 1, H, W]: expected
point-source counts after the PSF (disk + gc), the segmentation target. ``params``: ``A_dm, A_pi0, A_ic,
A_bubbles`` (dimensionless), ``n_ps_disk, n_ps_gc`` (sources in the image), ``angle`` (deg, 0 unless
``rotate``), and the **flux fractions** ``frac_dm, frac_pi0, frac_ic, frac_bubbles, frac_ps_disk, frac_ps_gc``
(dimensionless; List et al. 2020, arXiv:2006.12504): f_k = mu_k / sum_j mu_j with mu_k the expected counts
of component k in the image after the PSF (the sum over pixels of its share of mu_n: A_k x the template's sum,
``A_k <k>_counts exposure`` unrotated; for the point sources, their fluxes times the share the PSF keeps
inside the image). They sum to 1 (0 for an image without expected counts).

**Mis-specification** (Caron et al. 2023, arXiv:2211.09796: the inferred Galactic Center excess moves with the
diffuse model): train on the default sky and evaluate on a set simulated with another diffuse model, e.g.
``ic_profile: exponential`` (another IC shape), another ``gas_seed`` (another clump field of the gas, same
statistics) or other ``gas_scale_b_deg`` / ``gas_scale_l_deg`` (a thicker or shorter gas disk). Every
template is normalised to its configured counts, so these switches move counts within the image, not in total.

Speed: a block (128 images at 64 x 64, fewer for larger images) is simulated at once: every source of
the block is placed with one ``searchsorted`` and deposited with one ``bincount``; drawing the Poisson
counts dominates the time (about 1,400 images/s of 64 x 64 on one CPU thread); with rotation about 250 (the
four diffuse components are resampled one by one, for the flux fractions: 0.6 x the speed of resampling their sum).

Limits: CAR geometry treats (l, b) as flat coordinates for the lobes and the PSF (fine for |b| < 30 deg);
the template shapes are parametric stand-ins for the Fermi diffuse model, not fits to data; one energy
bin; uniform exposure; sources sit at pixel centres.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from scipy import integrate, special

from astrogen.config import StrictModel
from astrogen.data.fieldset import Batch, FieldMeta
from astrogen.sims.base import SimSpec, Simulator

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))
TEMPLATES = ("dm", "pi0", "ic", "bubbles")
CHANNELS = ("counts", *TEMPLATES, "ps")
COMPONENTS = (*TEMPLATES, "ps_disk", "ps_gc")  # the six emission components of the flux fractions
FRACTIONS = tuple(f"frac_{k}" for k in COMPONENTS)
PARAMS = ("A_dm", "A_pi0", "A_ic", "A_bubbles", "n_ps_disk", "n_ps_gc", "angle", *FRACTIONS)
LOS_MAX_KPC = 100.0  # line-of-sight integration limit of the dark-matter template
GAS_MODES = 256  # random Fourier modes of the gas clump field
MAX_CELLS_PER_PIXEL = 4  # finest template grid, cells per pixel side
ROTATION_SAMPLES = 2  # resampling points per pixel side for rotated skies


class GalacticCenterConfig(StrictModel):
    """Configuration of the Galactic Center gamma-ray simulator (see the module docstring for the models).

    Ranges ``[low, high]`` are uniform priors (integer and inclusive for point-source numbers); counts and
    fluxes are expected photon counts at exposure 1.
    """

    size: int = Field(64, ge=8, le=1024, description="image side, pixels")
    region_deg: float = Field(40.0, gt=0, le=60, description="side of the square region, degrees")
    psf_fwhm_deg: float = Field(1.0, ge=0, le=20, description="Gaussian PSF full width at half maximum, deg")
    exposure: float = Field(1.0, gt=0, description="multiplies every expected count (relative exposure)")
    rotate: bool = Field(False, description="rotate each sky by a random angle about the GC")
    return_components: bool = Field(False, description="store the five expected-count components as channels")
    supersample: int = Field(4, ge=1, le=16, description="sub-pixels per side when integrating the templates")
    a_dm: tuple[float, float] = Field((0.0, 1.0), description="prior range of A_dm")
    a_pi0: tuple[float, float] = Field((0.5, 1.5), description="prior range of A_pi0")
    a_ic: tuple[float, float] = Field((0.5, 1.5), description="prior range of A_ic")
    a_bubbles: tuple[float, float] = Field((0.5, 1.5), description="prior range of A_bubbles")
    n_ps_disk: tuple[int, int] = Field((1000, 4000), description="range of disk point sources per image")
    n_ps_gc: tuple[int, int] = Field((200, 800), description="range of GC point sources per image")
    dm_counts: float = Field(5000.0, ge=0, description="expected dm counts per image at A_dm = 1")
    pi0_counts: float = Field(50000.0, ge=0, description="expected pi0 counts per image at A_pi0 = 1")
    ic_counts: float = Field(20000.0, ge=0, description="expected ic counts per image at A_ic = 1")
    bubbles_counts: float = Field(5000.0, ge=0, description="expected bubble counts per image at A_bubbles = 1")
    dm_gamma: float = Field(1.2, ge=0, lt=1.5, description="inner slope of the generalised NFW profile")
    dm_scale_radius_kpc: float = Field(20.0, gt=0, description="gNFW scale radius, kpc")
    sun_distance_kpc: float = Field(8.5, gt=0, le=50, description="distance of the Sun from the GC, kpc")
    gas_scale_b_deg: float = Field(2.0, gt=0, description="exponential latitude scale of the gas, deg")
    gas_scale_l_deg: float = Field(30.0, gt=0, description="Lorentzian longitude scale of the gas, deg")
    gas_clump_deg: float = Field(1.0, gt=0, description="correlation length of the gas clumps, deg")
    gas_clump_sigma: float = Field(0.5, ge=0, description="log-amplitude of the gas clumps")
    gas_seed: int = Field(0, ge=0, description="seed of the fixed gas clump field")
    ic_scale_b_deg: float = Field(8.0, gt=0, description="latitude scale of inverse Compton, deg")
    ic_scale_l_deg: float = Field(30.0, gt=0, description="longitude scale of inverse Compton, deg")
    ic_profile: Literal["lorentzian", "exponential"] = Field(
        "lorentzian", description="inverse-Compton shape in l and b with the ic scales (a mis-specification switch)")
    bubble_radius_deg: float = Field(15.0, gt=0, description="radius of each Fermi-bubble lobe, deg")
    bubble_center_b_deg: float = Field(16.0, ge=0, description="latitude of the lobe centres, deg")
    bubble_edge_deg: float = Field(1.0, gt=0, description="width of the logistic lobe edges, deg")
    disk_scale_radius_kpc: float = Field(5.0, gt=0, description="radial scale of the disk sources, kpc")
    disk_scale_height_kpc: float = Field(0.3, gt=0, description="vertical scale of the disk sources, kpc")
    disk_flux_min: float = Field(1.0, gt=0, description="faintest disk source, counts")
    disk_flux_break: float = Field(10.0, gt=0, description="break of the disk flux distribution, counts")
    disk_flux_max: float = Field(1000.0, gt=0, description="brightest disk source, counts")
    disk_index_below: float = Field(1.5, description="dN/dS slope of disk sources below the break")
    disk_index_above: float = Field(2.5, description="dN/dS slope of disk sources above the break")
    gc_flux_min: float = Field(1.0, gt=0, description="faintest GC source, counts")
    gc_flux_max: float = Field(100.0, gt=0, description="brightest GC source, counts")
    gc_index: float = Field(2.0, description="dN/dS slope of GC sources")

    @model_validator(mode="after")
    def _check(self):
        for key in ("a_dm", "a_pi0", "a_ic", "a_bubbles", "n_ps_disk", "n_ps_gc"):
            low, high = getattr(self, key)
            if not 0 <= low <= high:
                raise ValueError(f"{key} must be a range [low, high] with 0 <= low <= high")
        if not self.disk_flux_min < self.disk_flux_break < self.disk_flux_max:
            raise ValueError("need disk_flux_min < disk_flux_break < disk_flux_max")
        if self.gc_flux_min >= self.gc_flux_max:
            raise ValueError("gc_flux_min must be below gc_flux_max")
        return self


def flux_fractions(counts) -> dict[str, np.ndarray]:
    """Flux fractions ``{frac_dm, frac_pi0, frac_ic, frac_bubbles, frac_ps_disk, frac_ps_gc: [n]}`` from the
    expected counts in the image of each component, ``counts`` ``[n, 6]`` in `COMPONENTS` order:
    f_k = mu_k / sum_j mu_j (they sum to 1); 0 for an image without expected counts."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return dict(zip(FRACTIONS, fractions.T))


def angle_from_gc(lon_deg, lat_deg) -> np.ndarray:
    """Angle psi (deg) between (l, b) (deg) and the GC: sin^2(psi/2) = sin^2(b/2) + cos b sin^2(l/2)
    (the cos psi = cos l cos b relation in a form accurate at small angles)."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.degrees(2 * np.arcsin(np.sqrt(np.sin(lat / 2) ** 2 + np.cos(lat) * np.sin(lon / 2) ** 2)))


def gnfw_los_integral(psi_deg, gamma: float = 1.2, scale_radius_kpc: float = 20.0,
                      sun_distance_kpc: float = 8.5, n_nodes: int = 4001) -> np.ndarray:
    """J(psi) = int_0^100 kpc rho^2 ds of rho = (r/r_s)^-gamma (1 + r/r_s)^(gamma-3), in kpc, at angles
    ``psi_deg`` (> 0, degrees) from the GC; Simpson's rule in u = asinh(x / d), x the distance along the
    line of sight from the point of closest approach, d = R_sun sin psi the impact parameter."""
    psi = np.radians(np.asarray(psi_deg, dtype=np.float64))[..., None]
    d = sun_distance_kpc * np.sin(psi)
    x0 = sun_distance_kpc * np.cos(psi)  # distance to the closest approach
    t = np.linspace(0.0, 1.0, n_nodes)
    u_low, u_high = np.arcsinh(-x0 / d), np.arcsinh((LOS_MAX_KPC - x0) / d)
    u = u_low + t * (u_high - u_low)
    r = d * np.cosh(u) / scale_radius_kpc
    rho2 = r ** (-2 * gamma) * (1 + r) ** (2 * gamma - 6)
    return integrate.simpson(rho2 * d * np.cosh(u), x=u, axis=-1)


def radial_cell_means(edges_deg, psi_deg, j, inner_slope: float, n_nodes: int = 48) -> np.ndarray:
    """Means of a radial profile J(psi) over the square cells between ``edges_deg`` [k + 1] (monotonic,
    same on both axes, flat sky: psi = hypot(x, y)) -> [k, k]; exact for a cusp J ~ psi^inner_slope
    (inner_slope > -2) below the first tabulated angle.

    With G(R) = int_0^R J(r) r dr (tabulated from ``psi_deg``, ``j``), the quadrant integral
    F(x, y) = int_0^{x, y} J dx dy = int_0^atan(y/x) G(x / cos t) dt + int_atan(y/x)^(pi/2) G(y / sin t) dt
    (Gauss-Legendre in t) is smooth even at a cusp; cells follow by inclusion-exclusion of their corners.
    """
    e = inner_slope + 2.0
    g0 = j[0] * psi_deg[0] ** 2 / e  # the power-law cusp inside the first tabulated angle
    g = g0 + integrate.cumulative_trapezoid(j * psi_deg**2, np.log(psi_deg), initial=0.0)

    def cumulative(r):
        inner = g0 * (np.minimum(r, psi_deg[0]) / psi_deg[0]) ** e
        outer = np.exp(np.interp(np.log(np.maximum(r, psi_deg[0])), np.log(psi_deg), np.log(g)))
        return np.where(r < psi_deg[0], inner, outer)

    edges = np.asarray(edges_deg, dtype=np.float64)
    x, y = np.abs(edges)[None, :, None], np.abs(edges)[:, None, None]
    theta = np.arctan2(y, x)
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    t_low, t_high = theta * (nodes + 1) / 2, theta + (np.pi / 2 - theta) * (nodes + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):  # x = 0 or y = 0: a zero-width interval
        low = np.nan_to_num(cumulative(x / np.cos(t_low)))
        high = np.nan_to_num(cumulative(y / np.sin(t_high)))
    quadrant = (theta[..., 0] * (low @ weights) + (np.pi / 2 - theta[..., 0]) * (high @ weights)) / 2
    signed = np.sign(edges)[None, :] * np.sign(edges)[:, None] * quadrant
    cells = signed[1:, 1:] - signed[:-1, 1:] - signed[1:, :-1] + signed[:-1, :-1]
    return cells / np.outer(np.diff(edges), np.diff(edges))


def power_law_quantile(u, low: float, high: float, index: float) -> np.ndarray:
    """Inverse CDF of dN/dS ~ S^-index on [low, high] at probabilities ``u`` in [0, 1]."""
    u = np.clip(u, 0.0, 1.0)
    if np.isclose(index, 1.0):
        return low * (high / low) ** u
    e = 1.0 - index
    return (low**e + u * (high**e - low**e)) ** (1.0 / e)


def _power_law_integral(low: float, high: float, index: float, pivot: float) -> float:
    """int_low^high (S / pivot)^-index dS."""
    if np.isclose(index, 1.0):
        return pivot * np.log(high / low)
    e = 1.0 - index
    return pivot**index * (high**e - low**e) / e


def broken_power_law_quantile(u, low: float, brk: float, high: float, index_below: float,
                              index_above: float) -> np.ndarray:
    """Inverse CDF of the continuous broken power law dN/dS ~ (S / brk)^-index_below on [low, brk),
    (S / brk)^-index_above on [brk, high], at probabilities ``u`` in [0, 1]."""
    w_below = _power_law_integral(low, brk, index_below, brk)
    p_below = w_below / (w_below + _power_law_integral(brk, high, index_above, brk))
    u = np.asarray(u, dtype=np.float64)
    return np.where(u < p_below, power_law_quantile(u / p_below, low, brk, index_below),
                    power_law_quantile((u - p_below) / (1 - p_below), brk, high, index_above))


def gaussian_psf_matrix(n: int, pixel_deg: float, fwhm_deg: float) -> np.ndarray:
    """[n, n] matrix K with K[i, k] the fraction of a Gaussian (FWHM ``fwhm_deg``) centred on pixel k that
    falls in pixel i (one axis); ``K @ M @ K`` blurs a map M with zero padding. Identity for fwhm 0."""
    if fwhm_deg == 0:
        return np.eye(n)
    sigma = fwhm_deg * FWHM_TO_SIGMA / pixel_deg  # pixels
    offset = (np.arange(n)[:, None] - np.arange(n)[None, :]) / (np.sqrt(2) * sigma)
    half_pixel = 0.5 / (np.sqrt(2) * sigma)
    return 0.5 * (special.erf(offset + half_pixel) - special.erf(offset - half_pixel))


def _sum_blocks(maps: np.ndarray, k: int) -> np.ndarray:
    """Sum k x k blocks of maps [..., n k, n k] -> [..., n, n]."""
    n = maps.shape[-1] // k
    return maps.reshape(*maps.shape[:-2], n, k, n, k).sum(axis=(-3, -1)) if k > 1 else maps


def sample_pixels(rng: np.random.Generator, weights: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``counts[i]`` pixels of image i with probability ~ ``weights`` ([1, P] shared or [n, P] per image).

    Returns flat (image index, pixel index) arrays of length ``counts.sum()``, images in order; one
    ``searchsorted`` on the concatenated per-image CDFs (offset by the image index) does every draw. The
    uniforms are sorted within each image first (the draws are exchangeable), which makes the search
    several times faster.
    """
    image = np.repeat(np.arange(len(counts)), counts)
    cdf = np.cumsum(weights, axis=1)
    cdf = cdf / cdf[:, -1:]
    cdf[:, -1] = 1.0
    keys = np.sort(rng.random(len(image)) + image)  # image + u in [image, image + 1): images stay in order
    if len(cdf) == 1:
        pixel = np.searchsorted(cdf[0], keys - image, side="right")
    else:
        flat = (cdf + np.arange(len(cdf))[:, None]).ravel()
        pixel = np.searchsorted(flat, keys, side="right") - image * cdf.shape[1]
    return image, np.minimum(pixel, cdf.shape[1] - 1)  # guards image + u rounding up to image + 1


class GalacticCenter(Simulator):
    """Fermi-like gamma-ray counts around the Galactic Center (see the module docstring)."""

    name = "galactic_center"
    version = "2"  # 2: flux-fraction params; rotated skies resample the four diffuse components apart
    Config = GalacticCenterConfig
    block_size = 128

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        self.pixel_deg = c.region_deg / c.size
        # 128 images of 64 x 64 per block; fewer for larger images, to bound the block's memory.
        self.block_size = int(np.clip(128 * 64**2 // c.size**2, 1, 128))
        # Templates live on cells finer than the pixels when the PSF is not much wider than a pixel (a
        # pixel-resolution blur would move a cusp's flux by up to half a pixel: ~13% on the dm peak at the
        # defaults) and when rotated skies are resampled from them.
        needed = 4 * self.pixel_deg / c.psf_fwhm_deg if c.psf_fwhm_deg > 0 else 1
        self._fine = int(np.clip(np.ceil(needed), 2 if c.rotate else 1, MAX_CELLS_PER_PIXEL))
        self._cell = self.pixel_deg / self._fine
        psf_margin = 4 * c.psf_fwhm_deg * FWHM_TO_SIGMA
        rotation_margin = (np.sqrt(2) - 1) * c.region_deg / 2 + 2 * self.pixel_deg if c.rotate else 0.0
        self._margin = int(np.ceil((psf_margin + rotation_margin) / self._cell))  # cells
        n_ext = c.size * self._fine + 2 * self._margin
        self.psf = gaussian_psf_matrix(c.size, self.pixel_deg, c.psf_fwhm_deg)
        self._kept = self.psf.sum(axis=0)  # share of a source's flux on pixel k that stays in the image, per axis

        shapes = self._template_shapes(n_ext)
        psf_ext = gaussian_psf_matrix(n_ext, self._cell, c.psf_fwhm_deg)
        blurred = psf_ext @ shapes @ psf_ext
        totals = np.array([getattr(c, f"{k}_counts") for k in TEMPLATES])
        # Unit amplitude: the configured counts in the unrotated image, times the exposure.
        blurred *= (c.exposure * totals / self._crop(blurred).sum(axis=(1, 2)))[:, None, None]
        densities = np.stack([self._disk_density(n_ext), shapes[0]])
        #: Extended cell-grid stack [6, n_ext, n_ext]: the four blurred templates, the disk and gc densities.
        self._extended = np.concatenate([blurred, densities])
        #: Unrotated templates {name: [H, W]}, expected counts per unit amplitude at the configured exposure.
        self.templates = dict(zip(TEMPLATES, self._crop(blurred)))
        self._densities = self._crop(densities)

    def _crop(self, cells: np.ndarray) -> np.ndarray:
        """The image region of extended cell maps [..., n_ext, n_ext], summed into pixels [..., H, W]."""
        inner = slice(self._margin, self._margin + self.config.size * self._fine)
        return _sum_blocks(cells[..., inner, inner], self._fine)

    def _sky_axis(self, n_cells: int, sub: int) -> np.ndarray:
        """Sub-cell centres (deg) along one axis of an n_cells x n_cells grid centred on the GC: the longitudes
        of its columns and the latitudes of its rows (both decrease with the index)."""
        half = n_cells * self._cell / 2
        return half - (np.arange(n_cells * sub) + 0.5) * self._cell / sub

    @staticmethod
    def _cell_sum(values: np.ndarray, b: np.ndarray, sub: int) -> np.ndarray:
        """Sum solid-angle-weighted (cos b) sub-cell ``values`` [..., n sub, n sub] into cells."""
        return _sum_blocks(values * np.cos(np.radians(b))[:, None], sub) / sub**2

    def _template_shapes(self, n_ext: int) -> np.ndarray:
        """Unnormalised, unblurred, cell-integrated dm, pi0, ic, bubbles templates [4, n_ext, n_ext]."""
        c = self.config
        sub = -(-c.supersample // self._fine)  # sub-cells per cell: about ``supersample`` per pixel
        lon = lat = self._sky_axis(n_ext, sub)
        l2, b2 = lon[None, :], lat[:, None]
        # dm: J(psi) is tabulated once in psi and interpolated log-log; the cells within two cells of the GC,
        # where the cusp J ~ psi^(1 - 2 gamma) defeats any sub-grid, are integrated exactly (flat sky).
        table = np.geomspace(1e-4 * self._cell, np.hypot(lon[0], lat[0]) * 1.01, 600)
        j = gnfw_los_integral(table, c.dm_gamma, c.dm_scale_radius_kpc, c.sun_distance_kpc)
        psi = angle_from_gc(l2, b2)
        dm = self._cell_sum(np.exp(np.interp(np.log(np.maximum(psi, table[0])), np.log(table), np.log(j))), lat, sub)
        axis = self._sky_axis(n_ext, 1)
        centre = np.flatnonzero(np.abs(axis) < 2 * self._cell)
        edges = np.append(axis[centre] + self._cell / 2, axis[centre[-1]] - self._cell / 2)
        cusp = radial_cell_means(edges, table, j, 1 - 2 * c.dm_gamma)
        dm[np.ix_(centre, centre)] = cusp * np.cos(np.radians(axis[centre]))[:, None]
        # pi0: thin, l-extended gas disk with a fixed lognormal clump field (random Fourier features,
        # evaluated separably in l and b so the same clumps appear at the same sky position on any grid).
        gas_rng = np.random.default_rng(c.gas_seed)
        k = gas_rng.normal(0.0, 1.0 / c.gas_clump_deg, size=(2, GAS_MODES))
        phase = gas_rng.uniform(0, 2 * np.pi, GAS_MODES)
        along_l = k[0] * lon[:, None] + phase  # [n, modes]
        along_b = k[1] * lat[:, None]
        field = np.sqrt(2.0 / GAS_MODES) * (np.cos(along_b) @ np.cos(along_l).T - np.sin(along_b) @ np.sin(along_l).T)
        s = c.gas_clump_sigma
        clumps = np.exp(s * field - s**2 / 2)
        gas = np.exp(-np.abs(b2) / c.gas_scale_b_deg) / (1 + (l2 / c.gas_scale_l_deg) ** 2) * clumps
        if c.ic_profile == "lorentzian":
            ic = 1 / (1 + (l2 / c.ic_scale_l_deg) ** 2) / (1 + (b2 / c.ic_scale_b_deg) ** 2)
        else:
            ic = np.exp(-np.abs(l2) / c.ic_scale_l_deg - np.abs(b2) / c.ic_scale_b_deg)
        bubbles = sum(1 / (1 + np.exp((np.hypot(l2, b2 - lobe) - c.bubble_radius_deg) / c.bubble_edge_deg))
                      for lobe in (c.bubble_center_b_deg, -c.bubble_center_b_deg))
        return np.concatenate([dm[None], self._cell_sum(np.stack([gas, ic, bubbles]), lat, sub)])

    def _disk_density(self, n_ext: int, n_los: int = 300, max_los_kpc: float = 30.0) -> np.ndarray:
        """Sky density of disk sources [n_ext, n_ext]: int_0^30 kpc exp(-R/R_d - |z|/z_d) ds per cell
        (about 2 x 2 samples per pixel; trapezoid rule over ``n_los`` distances, row by row to bound memory)."""
        c = self.config
        sub = max(1, min(c.supersample, 2) // self._fine)
        lon = lat = np.radians(self._sky_axis(n_ext, sub))
        s = np.linspace(0.0, max_los_kpc, n_los)
        rows = []
        for b in lat:  # one latitude at a time: [n_lon, n_los] arrays
            radius = np.sqrt((s * np.cos(b)) ** 2 + c.sun_distance_kpc**2
                             - 2 * s * c.sun_distance_kpc * np.cos(b) * np.cos(lon)[:, None])
            density = np.exp(-radius / c.disk_scale_radius_kpc - s * abs(np.sin(b)) / c.disk_scale_height_kpc)
            rows.append(integrate.trapezoid(density, s, axis=-1))
        return self._cell_sum(np.array(rows), np.degrees(lat), sub)

    def spec(self) -> SimSpec:
        c = self.config
        channels = list(CHANNELS) if c.return_components else ["counts"]
        return SimSpec(
            sample_shape=(len(channels), c.size, c.size),
            meta=FieldMeta(channels=channels, units="counts", pixel_size=self.pixel_deg, pixel_unit="deg",
                           box_size=[c.region_deg, c.region_deg], periodic=False),
            param_names=list(PARAMS),
            param_units={"A_dm": "dimensionless", "A_pi0": "dimensionless", "A_ic": "dimensionless",
                         "A_bubbles": "dimensionless", "n_ps_disk": "count", "n_ps_gc": "count", "angle": "deg",
                         **dict.fromkeys(FRACTIONS, "dimensionless")},
            mask_shape=(1, c.size, c.size),
        )

    def _rotated(self, cells: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
        """Extended cell maps [1 or n, C, n_ext, n_ext] resampled (bilinear) at 2 x 2 points per pixel of skies
        rotated by ``angle_deg`` [n], image(p) = sky(R(-angle) p), and integrated over pixels: [n, C, H, W]
        (float32 arithmetic, for speed)."""
        c = self.config
        half, half_ext = c.region_deg / 2, cells.shape[-1] * self._cell / 2
        x = -half + (np.arange(c.size * ROTATION_SAMPLES) + 0.5) * self.pixel_deg / ROTATION_SAMPLES
        xx, yy = np.meshgrid(x, -x)  # image frame, degrees: x right, y up
        cos, sin = np.cos(np.radians(angle_deg))[:, None, None], np.sin(np.radians(angle_deg))[:, None, None]
        sky_x, sky_y = xx * cos + yy * sin, -xx * sin + yy * cos
        grid = torch.from_numpy((np.stack([sky_x, -sky_y], axis=-1) / half_ext).astype(np.float32))
        maps = torch.from_numpy(cells.astype(np.float32)).expand(len(angle_deg), -1, -1, -1)
        resampled = torch.nn.functional.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros",
                                                    align_corners=False)
        # Mean of the samples in a pixel (counts per cell) times the cells per pixel: counts per pixel.
        return (torch.nn.functional.avg_pool2d(resampled, ROTATION_SAMPLES) * self._fine**2).double().numpy()

    def simulate_block(self, rng: np.random.Generator, n: int) -> Batch:
        c = self.config
        amplitudes = np.stack([rng.uniform(*getattr(c, f"a_{k}"), size=n) for k in TEMPLATES], axis=1)
        n_disk = rng.integers(c.n_ps_disk[0], c.n_ps_disk[1] + 1, size=n)
        n_gc = rng.integers(c.n_ps_gc[0], c.n_ps_gc[1] + 1, size=n)
        angle = rng.uniform(0.0, 360.0, size=n) if c.rotate else np.zeros(n)
        if c.rotate:
            # The four components are resampled apart (the flux fractions need each one's counts in the image).
            diffuse = self._rotated(amplitudes[:, :, None, None] * self._extended[:4], angle)
            densities = self._rotated(self._extended[None, 4:], angle)
        else:
            diffuse = amplitudes[:, :, None, None] * np.stack([self.templates[k] for k in TEMPLATES])
            densities = self._densities[None]

        pixels = c.size * c.size
        image_d, pixel_d = sample_pixels(rng, densities[:, 0].reshape(len(densities), -1), n_disk)
        flux_d = broken_power_law_quantile(rng.random(len(pixel_d)), c.disk_flux_min, c.disk_flux_break,
                                           c.disk_flux_max, c.disk_index_below, c.disk_index_above)
        image_g, pixel_g = sample_pixels(rng, densities[:, 1].reshape(len(densities), -1), n_gc)
        flux_g = power_law_quantile(rng.random(len(pixel_g)), c.gc_flux_min, c.gc_flux_max, c.gc_index)
        where = np.concatenate([image_d * pixels + pixel_d, image_g * pixels + pixel_g])
        deposit = np.bincount(where, weights=np.concatenate([flux_d, flux_g]) * c.exposure, minlength=n * pixels)
        ps = self.psf @ deposit.reshape(n, c.size, c.size) @ self.psf

        mean = diffuse.sum(axis=1) + ps
        counts = rng.poisson(np.maximum(mean, 0.0))  # bilinear resampling is >= 0 up to rounding
        images = np.concatenate([counts[:, None], diffuse, ps[:, None]], axis=1) if c.return_components \
            else counts[:, None]
        # Expected counts of each component in the image: a source at pixel (i, j) keeps the share
        # kept[i] kept[j] of its flux (sum over the image of K D K, K symmetric).
        share = [flux_d * self._kept[pixel_d // c.size] * self._kept[pixel_d % c.size],
                 flux_g * self._kept[pixel_g // c.size] * self._kept[pixel_g % c.size]]
        components = np.concatenate([diffuse.sum(axis=(2, 3)), np.stack(
            [np.bincount(i, weights=w * c.exposure, minlength=n) for i, w in zip((image_d, image_g), share)], 1)], 1)
        params = dict(zip(PARAMS[:4], amplitudes.T))
        params.update(n_ps_disk=n_disk.astype(np.float64), n_ps_gc=n_gc.astype(np.float64), angle=angle)
        params.update(flux_fractions(components))
        return Batch(images.astype(np.float32), params, ps[:, None].astype(np.float32))
