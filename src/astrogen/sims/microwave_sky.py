"""The correlated extragalactic microwave sky on HEALPix, cut into 1 x 1 degree patches (Han et al. 2021).

Five channels, in this order: ``kappa`` (CMB lensing convergence, dimensionless), ``tsz``, ``ksz``, ``cib``
and ``radio`` (CMB temperature fluctuations, uK_CMB, at ``frequency_ghz``, default 148 GHz). The real S10
maps (Sehgal et al. 2010, nside 8192, 0.43 arcmin pixels, from an N-body light cone) cannot be downloaded,
so every sky is a fresh statistical model made with healpy at ``nside`` (default 512, 6.9 arcmin pixels:
the 0.47 arcmin patch pixels then oversample the maps, whereas at nside 8192 they match; clusters and
sources are unresolved at nside 512, their integrated signal is right). The models, all parameters in
`MicrowaveSkyConfig`:

* **kappa**: Gaussian, C_l = A / (1 + (l / l0)^s) (A = 2e-7, l0 = 300, s = 1.2: the shape of the LCDM
  kappa spectrum to ~30% for 40 < l < 2000, not a Boltzmann-code spectrum). Harmonic coefficients are
  drawn from the block's generator (not healpy's global one), so the same seed gives the same sky.
* **tracer g**: a unit-variance Gaussian field with kappa's spectral shape and correlation
  ``tracer_correlation`` with kappa at every l: the large-scale structure that places the other components.
* **tsz**: ``clusters`` clusters placed with probability proportional to exp(cluster_bias g) per pixel,
  peak Compton y from dN/dy ~ y^-cluster_y_slope in [cluster_y_min, cluster_y_max], Gaussian profiles with
  FWHM = cluster_fwhm_arcmin (y / y_min)^(1/3) grouped into ``cluster_size_classes`` log-spaced classes
  (each class is painted as integrated Y and smoothed with its class FWHM in harmonic space). dT = T_CMB f(x) y,
  f(x) = x coth(x / 2) - 4, x = h nu / (k T_CMB): negative at 148 GHz, so tsz anti-correlates with kappa.
* **ksz**: a Gaussian field with flat D_l = l (l + 1) C_l / 2 pi = ``ksz_dl_uk2`` (the reionisation and
  unresolved part, uncorrelated with kappa) plus the clusters' dT = -T_CMB tau v / c, tau = tau_per_y y,
  line-of-sight velocities N(0, velocity_sigma_kms): symmetric in sign, so uncorrelated with kappa.
* **cib**: a lognormal diffuse field cib_mean_uk exp(s g - s^2 / 2) (s = cib_log_sigma; positively
  correlated with kappa) plus ``cib_sources`` dusty galaxies placed like the clusters with bias cib_bias,
  fluxes dN/dS ~ S^-cib_flux_slope in [cib_flux_min_mjy, cib_flux_max_mjy] at 148 GHz.
* **radio**: ``radio_sources`` point sources uniform on the sky (uncorrelated with kappa), power-law fluxes.
* **Frequency scaling**: tsz by f(x_nu) (exact); ksz none (thermodynamic units); sources by per-source
  S_nu = S_148 (nu / 148)^alpha, alpha ~ N(index_mean, index_sigma^2); the diffuse CIB by (nu / 148)^cib_index
  in intensity. Intensities become uK_CMB through dB/dT at nu.

Patches: each sky is cut in ``n_rotations`` frames (the unrotated one, then uniform random rotations),
``patches_per_rotation`` patches per frame at centres uniform in |lat| <= band_deg - size / 2
(`astrogen.sims.projection`); kappa, tsz, ksz and the diffuse CIB are interpolated, CIB and radio sources
are re-injected at their catalogue positions. One sky is one block of n_rotations x patches_per_rotation
patches; params hold each patch's centre in its frame, its frame's rotation vector in degrees (so
`astrogen.sims.projection.patches_to_healpix` can put generated patches back, with
`astrogen.sims.projection.rotations_from_params`) and its centre on the sky.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np
from pydantic import Field, model_validator

from astrogen.config import StrictModel
from astrogen.data.fieldset import Batch, FieldMeta
from astrogen.sims.base import SimSpec, Simulator
from astrogen.sims.projection import JY, PATCH_PARAMS, PatchGrid, sample_patches

T_CMB = 2.7255  # K
H_PLANCK = 6.62607015e-34  # J s
K_BOLTZMANN = 1.380649e-23  # J / K
C_LIGHT = 2.99792458e8  # m / s
NU_REF_GHZ = 148.0
CHANNELS = ("kappa", "tsz", "ksz", "cib", "radio")


def tsz_spectral_function(nu_ghz) -> np.ndarray:
    """f(x) = x coth(x / 2) - 4, x = h nu / (k T_CMB): thermal SZ dT / T_CMB per unit Compton y."""
    x = H_PLANCK * np.asarray(nu_ghz, dtype=np.float64) * 1e9 / (K_BOLTZMANN * T_CMB)
    return x / np.tanh(x / 2) - 4.0


def dbdt_jy_sr_per_uk(nu_ghz) -> np.ndarray:
    """dB_nu / dT at T_CMB: Jy/sr of intensity per uK_CMB of temperature."""
    nu = np.asarray(nu_ghz, dtype=np.float64) * 1e9
    x = H_PLANCK * nu / (K_BOLTZMANN * T_CMB)
    dbdt = 2 * K_BOLTZMANN * nu**2 / C_LIGHT**2 * x**2 * np.exp(x) / np.expm1(x) ** 2  # W m^-2 Hz^-1 sr^-1 K^-1
    return dbdt / JY * 1e-6


def gaussian_alm(rng: np.random.Generator, cl: np.ndarray) -> np.ndarray:
    """Harmonic coefficients of a Gaussian field with spectrum ``cl`` [lmax + 1] (healpy ordering)."""
    lmax = len(cl) - 1
    ell, m = hp.Alm.getlm(lmax)
    re, im = rng.standard_normal((2, len(ell)))
    # <|a_lm|^2> = C_l: m = 0 coefficients are real, the others split C_l between real and imaginary parts.
    scale = np.sqrt(cl[ell] / np.where(m == 0, 1.0, 2.0))
    return scale * (re + 1j * np.where(m == 0, 0.0, im))


def power_law_draw(rng: np.random.Generator, n: int, low: float, high: float, slope: float) -> np.ndarray:
    """``n`` draws from dN/dS ~ S^-slope on [low, high] (inverse CDF; slope != 1)."""
    e = 1.0 - slope
    return (low**e + rng.uniform(size=n) * (high**e - low**e)) ** (1.0 / e)


def biased_positions(rng: np.random.Generator, n: int, weight: np.ndarray) -> np.ndarray:
    """``n`` unit vectors [n, 3]: a HEALPix pixel drawn with probability ~ ``weight``, then a uniform
    sub-pixel (one of 4^8 nested children) so that positions do not sit on pixel centres."""
    nside = hp.npix2nside(len(weight))
    pix = rng.choice(len(weight), size=n, p=weight / weight.sum())
    sub = hp.ring2nest(nside, pix) * 4**8 + rng.integers(0, 4**8, size=n)
    return np.stack(hp.pix2vec(nside * 2**8, sub, nest=True), axis=-1)


class MicrowaveSkyConfig(StrictModel):
    """Configuration of the correlated microwave-sky simulator (see the module docstring for the models)."""

    nside: int = Field(512, ge=16, le=8192, description="HEALPix resolution of the full-sky maps")
    lmax: int | None = Field(None, ge=8, description="band limit of the Gaussian fields (default 3 nside - 1)")
    frequency_ghz: float = Field(148.0, gt=0, le=2000, description="observing frequency, GHz")
    patch_size_deg: float = Field(1.0, gt=0, le=20, description="patch side, degrees")
    patch_npix: int = Field(128, ge=4, le=4096, description="patch side, pixels")
    band_deg: float = Field(10.0, gt=0, le=90, description="patches are cut from |lat| < band_deg, degrees")
    n_rotations: int = Field(20, ge=1, description="sky rotations per simulated sky (the first is the identity)")
    patches_per_rotation: int = Field(25, ge=1, description="patches cut per rotation")
    kappa_amplitude: float = Field(2e-7, gt=0, description="A of C_l^kk = A / (1 + (l / l0)^s)")
    kappa_ell0: float = Field(300.0, gt=0, description="l0 of the kappa spectrum")
    kappa_slope: float = Field(1.2, gt=0, description="s of the kappa spectrum")
    tracer_correlation: float = Field(0.8, ge=-1, le=1, description="correlation of the tracer g with kappa")
    clusters: int = Field(30000, ge=0, description="number of SZ clusters on the full sky")
    cluster_y_min: float = Field(2e-6, gt=0, description="smallest peak Compton y")
    cluster_y_max: float = Field(2e-4, gt=0, description="largest peak Compton y")
    cluster_y_slope: float = Field(2.5, gt=1, description="dN/dy ~ y^-slope")
    cluster_bias: float = Field(2.0, ge=0, description="clusters placed ~ exp(bias g)")
    cluster_fwhm_arcmin: float = Field(1.5, gt=0, description="profile FWHM at y_min, arcmin (~ y^(1/3))")
    cluster_size_classes: int = Field(4, ge=1, le=32, description="profile sizes painted (log-spaced classes)")
    tau_per_y: float = Field(100.0, ge=0, description="optical depth per unit Compton y (m_e c^2 / k T_e)")
    velocity_sigma_kms: float = Field(300.0, ge=0, description="rms line-of-sight cluster velocity, km/s")
    ksz_dl_uk2: float = Field(1.5, ge=0, description="flat D_l of the Gaussian kSZ part, uK^2")
    cib_mean_uk: float = Field(20.0, gt=0, description="mean of the diffuse lognormal CIB at 148 GHz, uK")
    cib_log_sigma: float = Field(0.5, gt=0, description="s of the lognormal CIB, exp(s g - s^2 / 2)")
    cib_index: float = Field(3.3, description="spectral index of the diffuse CIB intensity")
    cib_sources: int = Field(200000, ge=0, description="dusty point sources on the full sky")
    cib_flux_min_mjy: float = Field(1.0, gt=0, description="faintest CIB source at 148 GHz, mJy")
    cib_flux_max_mjy: float = Field(100.0, gt=0, description="brightest CIB source at 148 GHz, mJy")
    cib_flux_slope: float = Field(2.5, gt=1, description="dN/dS ~ S^-slope of CIB sources")
    cib_bias: float = Field(1.0, ge=0, description="CIB sources placed ~ exp(bias g)")
    cib_index_mean: float = Field(3.3, description="mean spectral index of CIB source fluxes")
    cib_index_sigma: float = Field(0.3, ge=0, description="scatter of CIB source spectral indices")
    radio_sources: int = Field(50000, ge=0, description="radio point sources on the full sky")
    radio_flux_min_mjy: float = Field(1.0, gt=0, description="faintest radio source at 148 GHz, mJy")
    radio_flux_max_mjy: float = Field(1000.0, gt=0, description="brightest radio source at 148 GHz, mJy")
    radio_flux_slope: float = Field(2.0, gt=1, description="dN/dS ~ S^-slope of radio sources")
    radio_index_mean: float = Field(-0.7, description="mean spectral index of radio source fluxes")
    radio_index_sigma: float = Field(0.3, ge=0, description="scatter of radio source spectral indices")

    @model_validator(mode="after")
    def _check(self):
        for low, high in (("cluster_y_min", "cluster_y_max"), ("cib_flux_min_mjy", "cib_flux_max_mjy"),
                          ("radio_flux_min_mjy", "radio_flux_max_mjy")):
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(f"{low} must be below {high}")
        if self.band_deg < self.patch_size_deg / 2:
            raise ValueError("band_deg must be at least half a patch")
        if self.nside & (self.nside - 1):
            raise ValueError(f"nside must be a power of two (HEALPix), got {self.nside}")
        return self

    @property
    def ell_max(self) -> int:
        return self.lmax if self.lmax is not None else 3 * self.nside - 1


@dataclass
class Sky:
    """One simulated sky: RING maps [5, 12 nside^2] (kappa, tsz, ksz, diffuse cib, zeros for radio: sources
    live in the catalogues), and per point-like channel index the source unit vectors [M, 3] and fluxes
    [M] in Jy at the observing frequency."""

    maps: np.ndarray
    sources: dict[int, tuple[np.ndarray, np.ndarray]]

    def source_map(self, channel: int) -> np.ndarray:
        """The sources of ``channel`` as a surface-brightness HEALPix map, Jy/sr (flux / pixel solid angle)."""
        vec, flux = self.sources[channel]
        nside = hp.npix2nside(self.maps.shape[1])
        pix = hp.vec2pix(nside, *vec.T)
        return np.bincount(pix, weights=flux, minlength=self.maps.shape[1]) / hp.nside2pixarea(nside)


class MicrowaveSky(Simulator):
    """Correlated kappa, tSZ, kSZ, CIB and radio skies on HEALPix, cut into CAR patches."""

    name = "microwave_sky"
    version = "1"
    Config = MicrowaveSkyConfig

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        self.block_size = c.n_rotations * c.patches_per_rotation
        self.grid = PatchGrid(c.patch_size_deg, c.patch_npix)

    def kappa_cl(self) -> np.ndarray:
        """Input C_l of kappa, l = 0..lmax (l < 2 set to zero)."""
        c = self.config
        ell = np.arange(c.ell_max + 1, dtype=np.float64)
        cl = c.kappa_amplitude / (1 + (ell / c.kappa_ell0) ** c.kappa_slope)
        cl[:2] = 0.0
        return cl

    def full_sky(self, rng: np.random.Generator) -> Sky:
        """One full sky (see the module docstring), all of it drawn from ``rng``."""
        c = self.config
        nside, lmax = c.nside, c.ell_max
        cl = self.kappa_cl()
        alm_k = gaussian_alm(rng, cl)
        # Tracer: unit variance, kappa's shape, correlation r with kappa at every l.
        variance = np.sum((2 * np.arange(lmax + 1) + 1) * cl) / (4 * np.pi)
        r = c.tracer_correlation
        alm_g = (r * alm_k + np.sqrt(1 - r**2) * gaussian_alm(rng, cl)) / np.sqrt(variance)
        kappa, g = hp.alm2map(np.stack([alm_k, alm_g]), nside, lmax=lmax, pol=False)
        ratio = c.frequency_ghz / NU_REF_GHZ
        to_uk = 1.0 / dbdt_jy_sr_per_uk(c.frequency_ghz)

        # Clusters: positions, peak y, size class; y and tau v painted per class, smoothed in harmonic space.
        vec = biased_positions(rng, c.clusters, np.exp(c.cluster_bias * g))
        y0 = power_law_draw(rng, c.clusters, c.cluster_y_min, c.cluster_y_max, c.cluster_y_slope)
        v_over_c = rng.normal(0.0, c.velocity_sigma_kms / 2.99792458e5, c.clusters)
        fwhm = np.radians(c.cluster_fwhm_arcmin / 60) * (y0 / c.cluster_y_min) ** (1 / 3)
        edges = np.geomspace(fwhm.min() if len(fwhm) else 1.0, fwhm.max() * (1 + 1e-9) if len(fwhm) else 2.0,
                             c.cluster_size_classes + 1)
        size_class = np.clip(np.searchsorted(edges, fwhm, side="right") - 1, 0, c.cluster_size_classes - 1)
        pix = hp.vec2pix(nside, *vec.T)
        sigma2 = (fwhm * np.sqrt(1 / (8 * np.log(2)))) ** 2
        # Integrated Y = y0 2 pi sigma^2 (sr) per cluster, deposited as Y / pixel area.
        y_int = y0 * 2 * np.pi * sigma2 / hp.nside2pixarea(nside)
        alm_sz = np.zeros((2, hp.Alm.getsize(lmax)), dtype=np.complex128)
        for k in range(c.cluster_size_classes):  # a few profile sizes, each one harmonic transform
            sel = size_class == k
            deposits = np.stack([np.bincount(pix[sel], weights=y_int[sel], minlength=hp.nside2npix(nside)),
                                 np.bincount(pix[sel], weights=-(y_int * c.tau_per_y * v_over_c)[sel],
                                             minlength=hp.nside2npix(nside))])
            class_fwhm = np.exp(np.mean(np.log(edges[k:k + 2])))
            beam = hp.gauss_beam(class_fwhm, lmax=lmax)
            alm_sz += np.stack([hp.almxfl(a, beam) for a in hp.map2alm(deposits, lmax=lmax, iter=0, pol=False)])
        y_map, tau_v = hp.alm2map(alm_sz, nside, lmax=lmax, pol=False)
        tsz = T_CMB * 1e6 * tsz_spectral_function(c.frequency_ghz) * y_map

        ell = np.arange(lmax + 1)
        cl_ksz = np.where(ell >= 2, 2 * np.pi * c.ksz_dl_uk2 / np.maximum(ell * (ell + 1), 1), 0.0)
        ksz = hp.alm2map(gaussian_alm(rng, cl_ksz), nside, lmax=lmax) + T_CMB * 1e6 * tau_v

        s = c.cib_log_sigma
        cib = c.cib_mean_uk * np.exp(s * g - s**2 / 2) * ratio**c.cib_index
        cib *= dbdt_jy_sr_per_uk(NU_REF_GHZ) * to_uk  # intensity scaling done in Jy/sr, back to uK at nu

        def catalogue(n, weight, low, high, slope, index_mean, index_sigma):
            where = biased_positions(rng, n, weight)
            flux = power_law_draw(rng, n, low, high, slope) * 1e-3  # Jy at 148 GHz
            return where, flux * ratio ** rng.normal(index_mean, index_sigma, n)

        sources = {
            3: catalogue(c.cib_sources, np.exp(c.cib_bias * g), c.cib_flux_min_mjy, c.cib_flux_max_mjy,
                         c.cib_flux_slope, c.cib_index_mean, c.cib_index_sigma),
            4: catalogue(c.radio_sources, np.ones_like(g), c.radio_flux_min_mjy, c.radio_flux_max_mjy,
                         c.radio_flux_slope, c.radio_index_mean, c.radio_index_sigma),
        }
        maps = np.stack([kappa, tsz, ksz, cib, np.zeros_like(kappa)])
        return Sky(maps, sources)

    def flux_to_map(self) -> dict[int, float]:
        """Jy/sr -> uK_CMB at the observing frequency for the point-source channels."""
        factor = 1.0 / float(dbdt_jy_sr_per_uk(self.config.frequency_ghz))
        return {3: factor, 4: factor}

    def spec(self) -> SimSpec:
        c = self.config
        names = list(PATCH_PARAMS)
        return SimSpec(
            sample_shape=(len(CHANNELS), c.patch_npix, c.patch_npix),
            meta=FieldMeta(channels=list(CHANNELS), units="kappa: dimensionless; tsz, ksz, cib, radio: uK_CMB",
                           pixel_size=self.grid.pixel_deg * 60, pixel_unit="arcmin",
                           box_size=[c.patch_size_deg * 60] * 2, periodic=False),
            param_names=names,
            param_units={name: "deg" for name in names},
        )

    def simulate_block(self, rng: np.random.Generator, n: int) -> Batch:
        c = self.config
        sky = self.full_sky(rng)
        images, params = sample_patches(sky.maps, self.grid, rng, c.n_rotations, c.patches_per_rotation, c.band_deg,
                                        sky.sources, self.flux_to_map())
        return Batch(images.astype(np.float32), params)
