import healpy as hp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from astrogen.errors import DataError, InputFileError
from astrogen.sims.microwave_sky import gaussian_alm
from astrogen.sims.projection import (
    PatchGrid,
    cut_patches,
    patch_vectors,
    patches_to_healpix,
    read_healpix_maps,
    rotations_from_params,
    sample_patches,
    vec_to_lonlat,
)

GRID = PatchGrid(1.0, 32)
ROT = Rotation.from_euler("ZYZ", [40.0, 70.0, -20.0], degrees=True)


def analytic_maps(nside):
    """Two maps known everywhere: a quadratic form in the unit vector, and 2 Re Y_3^2 (healpy real map)."""
    vx, vy, vz = hp.pix2vec(nside, np.arange(hp.nside2npix(nside)))
    alm = np.zeros(hp.Alm.getsize(3), dtype=complex)
    alm[hp.Alm.getidx(3, 3, 2)] = 1.0
    return np.stack([vx * vy + 0.5 * vz, hp.alm2map(alm, nside, lmax=3)])


def test_patch_of_analytic_maps_matches_pixel_centres():
    nside = 256
    maps = analytic_maps(nside)
    lon0, lat0 = np.array([10.0, 200.0, 300.0]), np.array([-9.0, 0.0, 5.5])
    patches = cut_patches(maps, GRID, lon0, lat0, ROT)
    vec = patch_vectors(GRID, lon0, lat0, ROT)
    theta = np.arccos(vec[..., 2])
    phi = np.arctan2(vec[..., 1], vec[..., 0])
    # Y_3^2 = (1/4) sqrt(105 / (2 pi)) sin^2(theta) cos(theta) exp(2 i phi).
    y32 = 0.25 * np.sqrt(105 / (2 * np.pi)) * np.sin(theta) ** 2 * np.cos(theta) * np.cos(2 * phi)
    expected = np.stack([vec[..., 0] * vec[..., 1] + 0.5 * vec[..., 2], 2 * y32], axis=1)
    # Bilinear interpolation on 14 arcmin pixels: error ~ (pixel)^2 x curvature, ~1e-5 here.
    np.testing.assert_allclose(patches, expected, atol=1e-4)
    # The patch is a 1-degree square: corner pixel centres are (size - pixel) apart in lon and lat.
    lon, lat = vec_to_lonlat(ROT.inv().apply(vec[1].reshape(-1, 3)))
    assert np.ptp(lon) == pytest.approx(1.0 - GRID.pixel_deg) and np.ptp(lat) == pytest.approx(1.0 - GRID.pixel_deg)


def test_point_source_flux_is_conserved():
    rng = np.random.default_rng(0)
    # Sources concentrated near the patches so that many fall inside (in the rotated frame).
    lon_s, lat_s = rng.uniform(20, 26, 5000), rng.uniform(-3, 3, 5000)
    vec = ROT.apply(np.stack([np.cos(np.radians(lat_s)) * np.cos(np.radians(lon_s)),
                              np.cos(np.radians(lat_s)) * np.sin(np.radians(lon_s)), np.sin(np.radians(lat_s))], -1))
    flux = rng.pareto(1.5, 5000) + 0.01
    lon0, lat0 = np.array([21.0, 23.3, 25.0]), np.array([0.0, -1.7, 2.2])
    maps = np.zeros((2, hp.nside2npix(64)))
    patches = cut_patches(maps, GRID, lon0, lat0, ROT, sources={1: (vec, flux)})
    area = GRID.pixel_solid_angle(lat0)[:, :, None]
    inside = (np.abs(lon_s[None] - lon0[:, None]) < 0.5) & (np.abs(lat_s[None] - lat0[:, None]) < 0.5)
    np.testing.assert_allclose((patches[:, 1] * area).sum(axis=(1, 2)), (inside * flux).sum(1), rtol=1e-10)
    assert inside.sum() > 100 and np.all(patches[:, 0] == 0)


def test_patches_to_sphere_to_patches_is_consistent_where_covered():
    nside = 256
    rng = np.random.default_rng(1)
    ell = np.arange(31)
    cl = np.where(ell >= 1, 1.0 / (ell + 1.0) ** 2, 0.0)
    field = hp.alm2map(gaussian_alm(rng, cl), nside, lmax=30)[None]
    # A 3 x 3 mosaic of adjacent patches: the centre one is covered with a margin on every side.
    lon0, lat0 = [g.ravel() for g in np.meshgrid(100.0 + np.arange(-1, 2), np.arange(-1.0, 2.0))]
    patches = cut_patches(field, GRID, lon0, lat0, ROT)
    sphere = patches_to_healpix(patches, nside, GRID, lon0, lat0, [ROT] * 9)
    assert np.sum(sphere[0] != hp.UNSEEN) > 0 and np.sum(sphere[0] == hp.UNSEEN) > 0.99 * hp.nside2npix(nside)
    again = cut_patches(np.where(sphere == hp.UNSEEN, 0.0, sphere), GRID, lon0[4:5], lat0[4:5], ROT)
    # HEALPix pixels average the patch pixels they hold: equal up to the pixel-scale smoothing (l <= 30).
    np.testing.assert_allclose(again[0], patches[4], atol=5e-3 * field.std())


def test_read_user_fits_maps(tmp_path):
    maps = analytic_maps(32)
    paths = [tmp_path / "a.fits", tmp_path / "b.fits"]
    for path, m in zip(paths, maps):
        hp.write_map(path, m, dtype=np.float64)
    read = read_healpix_maps(paths)
    np.testing.assert_array_equal(read, maps)
    # The real-data path: rotations and band sampling on the user's maps, with their frames in the params.
    patches, params = sample_patches(read, GRID, np.random.default_rng(0), n_rotations=3, patches_per_rotation=2)
    assert patches.shape == (6, 2, 32, 32) and np.all(np.abs(params["lat0"]) <= 9.5)
    rot = rotations_from_params(params)
    vec = np.stack([patch_vectors(GRID, params["lon0"][i], params["lat0"][i], rot[i])[0] for i in range(6)])
    np.testing.assert_allclose(patches[:, 0], vec[..., 0] * vec[..., 1] + 0.5 * vec[..., 2], atol=2e-3)
    centre = vec[:, 15:17, 15:17].mean(axis=(1, 2))
    lon_sky, lat_sky = vec_to_lonlat(centre / np.linalg.norm(centre, axis=-1, keepdims=True))
    np.testing.assert_allclose(params["lat_sky"], lat_sky, atol=1e-6)
    np.testing.assert_allclose((params["lon_sky"] - lon_sky + 180) % 360 - 180, 0, atol=1e-6)
    with pytest.raises(InputFileError, match="no such file"):
        read_healpix_maps([tmp_path / "none.fits"])
    hp.write_map(tmp_path / "c.fits", np.zeros(hp.nside2npix(16)))
    with pytest.raises(DataError, match="different sizes"):
        read_healpix_maps([paths[0], tmp_path / "c.fits"])
    with pytest.raises(DataError, match="12 nside"):
        cut_patches(np.zeros(100), GRID, [0.0], [0.0])
    with pytest.raises(DataError, match="non-finite"):
        cut_patches(np.full(hp.nside2npix(4), np.nan), GRID, [0.0], [0.0])
