"""HEALPix <-> flat patches: CAR cutouts from full-sky maps (with point-source re-injection) and back.

Geometry (Han et al. 2021, microwave-sky report): a patch is a ``size_deg`` x ``size_deg`` square of
``npix`` x ``npix`` pixels in the plate-carree (CAR) projection of a *rotated* frame, centred at
(lon0, lat0) inside the band |lat0| <= band_deg - size_deg / 2 of that frame, where CAR is nearly
distortion-free (pixel areas vary by cos(lat) >= 0.985 for |lat| < 10 deg). Pixel (row i, column j) has its
centre at lon = lon0 + (j - (npix - 1) / 2) d, lat = lat0 + (i - (npix - 1) / 2) d, d = size_deg / npix (row
0 is the southern edge, columns run east). A rotation R (a `scipy.spatial.transform.Rotation`) maps
unit vectors of the rotated frame to the map's frame, v_map = R v_rot: rotating the sphere and cutting
the band again samples the whole sky. The identity is the unrotated sky (galactic |b| < band_deg when
the maps are in galactic coordinates).

* Extended components: bilinear interpolation on the HEALPix grid (``healpy.get_interp_weights``, the
  weights of ``healpy.get_interp_val``) at every pixel centre, all maps and patches at once.
* Point-like components: sources of a catalogue (unit vectors, fluxes in Jy) are put back into the
  patch pixel that contains them, as flux / pixel solid angle, instead of being interpolated (which
  would smear and ring them); the patch therefore holds exactly the flux of the sources inside it.
* Back to the sphere: every patch pixel is assigned to the HEALPix pixel containing its centre; values
  falling in the same HEALPix pixel (from one or several overlapping patches) are averaged. HEALPix
  pixels that no patch pixel hits are ``healpy.UNSEEN``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import healpy as hp
import numpy as np
from scipy.spatial.transform import Rotation

from astrogen.errors import DataError, InputFileError

JY = 1e-26  # W m^-2 Hz^-1
# Per-patch parameters of `sample_patches` (degrees): centre in its frame, the frame's rotation vector,
# and the centre on the map.
PATCH_PARAMS = ("lon0", "lat0", "rotvec_x", "rotvec_y", "rotvec_z", "lon_sky", "lat_sky")


@dataclass(frozen=True)
class PatchGrid:
    """A square CAR patch: side ``size_deg`` degrees, ``npix`` pixels per side."""

    size_deg: float = 1.0
    npix: int = 128

    @property
    def pixel_deg(self) -> float:
        """Side of one pixel, degrees."""
        return self.size_deg / self.npix

    def offsets(self) -> np.ndarray:
        """Pixel-centre offsets from the patch centre along a side, degrees, [npix]."""
        return (np.arange(self.npix) - (self.npix - 1) / 2) * self.pixel_deg

    def pixel_solid_angle(self, lat0: np.ndarray) -> np.ndarray:
        """Exact solid angle of the pixels of each row, sr, [N, npix] for patch centre latitudes ``lat0`` (deg)."""
        d = np.radians(self.pixel_deg)
        lat = np.radians(np.asarray(lat0, dtype=np.float64)[:, None] + self.offsets()[None, :])
        return d * (np.sin(lat + d / 2) - np.sin(lat - d / 2))


def lonlat_to_vec(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors [..., 3] from longitude and latitude in degrees."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def vec_to_lonlat(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude in [0, 360) and latitude in [-90, 90] degrees of unit vectors [..., 3]."""
    lon = np.degrees(np.arctan2(vec[..., 1], vec[..., 0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(vec[..., 2], -1.0, 1.0)))
    return lon, lat


def patch_vectors(grid: PatchGrid, lon0: np.ndarray, lat0: np.ndarray, rotation: Rotation) -> np.ndarray:
    """Unit vectors of all pixel centres in the map frame, [N, npix, npix, 3]."""
    lon0, lat0 = np.atleast_1d(lon0).astype(np.float64), np.atleast_1d(lat0).astype(np.float64)
    off = grid.offsets()
    lon, lat = np.broadcast_arrays(lon0[:, None, None] + off[None, None, :], lat0[:, None, None] + off[None, :, None])
    vec = lonlat_to_vec(lon, lat)
    return rotation.apply(vec.reshape(-1, 3)).reshape(vec.shape)


def _check_maps(maps: np.ndarray) -> tuple[np.ndarray, int]:
    maps = np.atleast_2d(np.asarray(maps, dtype=np.float64))
    npix = maps.shape[-1]
    if not hp.isnpixok(npix):
        raise DataError(f"HEALPix maps: {npix} pixels is not 12 nside^2")
    if not np.all(np.isfinite(maps)):
        bad = np.argwhere(~np.isfinite(maps))[0]
        raise DataError(f"HEALPix maps: non-finite value in map {bad[0]} at pixel {bad[1]}")
    return maps, hp.npix2nside(npix)


def cut_patches(
    maps: np.ndarray,
    grid: PatchGrid,
    lon0: np.ndarray,
    lat0: np.ndarray,
    rotation: Rotation | None = None,
    sources: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
    flux_to_map: Mapping[int, float] | None = None,
) -> np.ndarray:
    """Cut CAR patches from RING-ordered HEALPix maps, re-injecting point sources.

    Parameters
    ----------
    maps : [C, 12 nside^2] maps (RING order), any units.
    grid : patch size and resolution.
    lon0, lat0 : patch centres in the rotated frame, degrees, [N].
    rotation : rotated frame -> map frame (default identity).
    sources : channel -> (unit vectors [M, 3] in the map frame, fluxes [M] in Jy). Each source adds
        flux / pixel solid angle to the patch pixel containing it, on top of the interpolated map, so
        that channel's map should hold only the diffuse part (zeros for a pure point-source channel).
    flux_to_map : channel -> factor converting Jy/sr into the channel's map units (default 1: Jy/sr).

    Returns
    -------
    patches : [N, C, npix, npix] float64.
    """
    maps, nside = _check_maps(maps)
    rotation = rotation or Rotation.identity()
    sources, flux_to_map = dict(sources or {}), dict(flux_to_map or {})
    lon0, lat0 = np.atleast_1d(lon0).astype(np.float64), np.atleast_1d(lat0).astype(np.float64)
    vec = patch_vectors(grid, lon0, lat0, rotation)
    theta, phi = hp.vec2ang(vec.reshape(-1, 3))
    pix, weight = hp.get_interp_weights(nside, theta, phi)  # [4, P] each
    values = np.einsum("cfp,fp->cp", maps[:, pix], weight)
    out = values.reshape(len(maps), len(lon0), grid.npix, grid.npix).transpose(1, 0, 2, 3).copy()
    for channel, (src_vec, flux) in sources.items():  # a few point-like channels, each vectorised
        out[:, channel] += inject_sources(grid, lon0, lat0, rotation, src_vec, flux) * flux_to_map.get(channel, 1.0)
    return out


def inject_sources(grid: PatchGrid, lon0: np.ndarray, lat0: np.ndarray, rotation: Rotation,
                   vec: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Surface brightness (Jy/sr) of point sources put into the patch pixels containing them, [N, npix, npix]."""
    vec, flux = np.asarray(vec, dtype=np.float64).reshape(-1, 3), np.asarray(flux, dtype=np.float64).ravel()
    if len(vec) != len(flux):
        raise DataError(f"point sources: {len(vec)} positions but {len(flux)} fluxes")
    n, d = len(lon0), grid.pixel_deg
    lon, lat = vec_to_lonlat(rotation.inv().apply(vec))  # sources in the rotated frame
    half = grid.size_deg / 2
    # Only sources in the band spanned by the patches can fall in one: keeps the pairs few.
    near = (lat >= lat0.min() - half) & (lat < lat0.max() + half)
    lon, lat, flux = lon[near], lat[near], flux[near]
    dlon = (lon[None, :] - lon0[:, None] + 180.0) % 360.0 - 180.0  # [N, M']
    col = np.floor(dlon / d + grid.npix / 2).astype(np.int64)
    row = np.floor((lat[None, :] - lat0[:, None]) / d + grid.npix / 2).astype(np.int64)
    inside = (col >= 0) & (col < grid.npix) & (row >= 0) & (row < grid.npix)
    patch, src = np.nonzero(inside)
    flat = (patch * grid.npix + row[patch, src]) * grid.npix + col[patch, src]
    total = np.bincount(flat, weights=flux[src], minlength=n * grid.npix**2).reshape(n, grid.npix, grid.npix)
    return total / grid.pixel_solid_angle(lat0)[:, :, None]


def patches_to_healpix(
    patches: np.ndarray,
    nside: int,
    grid: PatchGrid,
    lon0: np.ndarray,
    lat0: np.ndarray,
    rotations: Sequence[Rotation] | Rotation,
) -> np.ndarray:
    """Average patches [N, C, npix, npix] back into RING HEALPix maps [C, 12 nside^2] (UNSEEN where uncovered).

    ``rotations`` is one `Rotation` per patch (a sequence, or a `Rotation` holding N rotations).
    """
    patches = np.asarray(patches, dtype=np.float64)
    if patches.ndim != 4 or patches.shape[-2:] != (grid.npix, grid.npix):
        raise DataError(f"patches_to_healpix: expected [N, C, {grid.npix}, {grid.npix}], got {patches.shape}")
    n, c = patches.shape[:2]
    rot = rotations if isinstance(rotations, Rotation) else Rotation.concatenate(list(rotations))
    rot = Rotation.from_matrix(rot.as_matrix().reshape(-1, 3, 3))  # a single rotation becomes a stack of one
    if len(rot) != n or len(np.atleast_1d(lon0)) != n:
        raise DataError(f"patches_to_healpix: {n} patches but {len(rot)} rotations / {len(np.atleast_1d(lon0))} "
                        "centres")
    local = patch_vectors(grid, lon0, lat0, Rotation.identity()).reshape(n, -1, 3)
    # One rotation matrix per patch, applied to all of its pixels.
    vec = np.einsum("nij,npj->npi", rot.as_matrix().reshape(n, 3, 3), local)
    pix = hp.vec2pix(nside, vec[..., 0].ravel(), vec[..., 1].ravel(), vec[..., 2].ravel())
    npix = hp.nside2npix(nside)
    counts = np.bincount(pix, minlength=npix)
    values = patches.transpose(1, 0, 2, 3).reshape(c, -1)
    out = np.stack([np.bincount(pix, weights=v, minlength=npix) for v in values])  # per channel (few)
    covered = counts > 0
    out[:, covered] /= counts[covered]
    out[:, ~covered] = hp.UNSEEN
    return out


def read_healpix_maps(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Read one map per FITS file with healpy (converted to RING order), [C, 12 nside^2]; nsides must agree."""
    maps = []
    for path in paths:
        if not os.path.isfile(path):
            raise InputFileError(f"{path}: no such file")
        try:
            maps.append(hp.read_map(path, dtype=np.float64))
        except (OSError, ValueError, KeyError, IndexError) as err:
            raise InputFileError(f"{path}: not a HEALPix FITS map ({err})") from None
    sizes = {len(m) for m in maps}
    if len(sizes) != 1:
        raise DataError(f"HEALPix maps: files have different sizes {sorted(sizes)}; use one nside")
    out = np.stack(maps)
    if np.any(out == hp.UNSEEN):
        raise DataError("HEALPix maps: UNSEEN (masked) pixels; fill or mask them before cutting patches")
    return out


def random_patch_centres(rng: np.random.Generator, n: int, grid: PatchGrid, band_deg: float):
    """``n`` patch centres uniform in longitude and in |lat| <= band_deg - size / 2 (degrees)."""
    top = band_deg - grid.size_deg / 2
    if top < 0:
        raise DataError(f"patch band: band_deg={band_deg} is narrower than half a patch ({grid.size_deg / 2})")
    # Uniform on the sphere within the band: sin(lat) uniform.
    lat = np.degrees(np.arcsin(rng.uniform(-np.sin(np.radians(top)), np.sin(np.radians(top)), n)))
    return rng.uniform(0.0, 360.0, n), lat


def sample_rotations(rng: np.random.Generator, n: int) -> Rotation:
    """The identity followed by ``n - 1`` rotations uniform on SO(3)."""
    if n == 1:
        return Rotation.identity(1)
    return Rotation.concatenate([Rotation.identity(1), Rotation.random(n - 1, rng=rng)])


def sample_patches(
    maps: np.ndarray,
    grid: PatchGrid,
    rng: np.random.Generator,
    n_rotations: int = 20,
    patches_per_rotation: int = 25,
    band_deg: float = 10.0,
    sources: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
    flux_to_map: Mapping[int, float] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Patches from the band |lat| < ``band_deg`` of the maps and of ``n_rotations - 1`` random rotations of them.

    Works on any RING HEALPix maps (simulated, or the user's from `read_healpix_maps`); ``sources`` and
    ``flux_to_map`` as in `cut_patches`. Returns patches [n_rotations * patches_per_rotation, C, npix, npix]
    (grouped by rotation, the unrotated sky first) and the per-patch `PATCH_PARAMS` columns (degrees).
    """
    rotations = sample_rotations(rng, n_rotations)
    images, params = [], {name: [] for name in PATCH_PARAMS}
    for r in range(n_rotations):  # a few frames; each cuts all of its patches at once
        lon0, lat0 = random_patch_centres(rng, patches_per_rotation, grid, band_deg)
        images.append(cut_patches(maps, grid, lon0, lat0, rotations[r], sources, flux_to_map))
        rotvec = np.broadcast_to(rotations[r].as_rotvec(degrees=True)[:, None], (3, patches_per_rotation))
        lon_sky, lat_sky = vec_to_lonlat(rotations[r].apply(lonlat_to_vec(lon0, lat0)))
        for name, value in zip(PATCH_PARAMS, (lon0, lat0, *rotvec, lon_sky, lat_sky)):
            params[name].append(value)
    return np.concatenate(images), {k: np.concatenate(v).astype(np.float64) for k, v in params.items()}


def rotations_from_params(params: Mapping[str, np.ndarray]) -> Rotation:
    """The per-patch frames stored by `sample_patches` (rotation vectors in degrees) as one `Rotation` stack."""
    rotvec = np.stack([params["rotvec_x"], params["rotvec_y"], params["rotvec_z"]], axis=-1)
    return Rotation.from_rotvec(np.atleast_2d(rotvec), degrees=True)
