"""Quijote-like dark-matter density fields: Gaussian initial conditions, 2LPT and a particle-mesh code.

One simulated box (``n_grid``^3 particles in a periodic cube of ``box_size`` Mpc/h) gives one block of
2D tiles: the density contrast delta on the ``n_grid``^3 mesh is averaged over slabs of
``slab_thickness`` voxels along the third axis, and every slab is cut into ``tile_size``^2 tiles, so a box
yields (n_grid / slab_thickness) (n_grid / tile_size)^2 images [1, tile_size, tile_size] (axis 0 of the
box is the image row, axis 1 the column). This mirrors the report's Quijote slices (1 Gpc/h boxes).

Physics and numerical choices (units: Mpc/h, h/Mpc, time in 1/H0):

* **Linear spectrum** `astrogen.sims.cosmology.Cosmology.power` (EH98, sigma_8-normalised).
* **Initial conditions**: real white noise w (unit variance per cell, from the block's generator) is
  Fourier transformed with ``rfftn`` and multiplied by sqrt(P(k) N^3 / V), so the field
  delta(x) = irfftn(...) is real with exact Hermitian symmetry and <|delta_k|^2> = V P(k) in the continuum
  convention; the k = 0 mode is zero (the box mean is the cosmic mean).
* **LPT** (Scoccimarro 1998): x = q + D1 Psi1 + D2 Psi2, Psi1 = i k delta_k / k^2 (so delta = -div Psi1),
  Psi2 = grad phi2 with laplacian(phi2) = sum_{i<j} (phi_ii phi_jj - phi_ij^2), laplacian(phi) = delta,
  D2 (< 0) from the growth ODE. Momenta p = a^2 E(a) dx/dln a.
* **Particle mesh**: equations dx/da = p / (a^3 E), dp/da = -grad psi / (a^2 E), laplacian(psi) = 1.5
  Omega_m delta. Kick-drift-kick steps uniform in a with the FastPM factors (Feng et al. 2016, MNRAS 463,
  2273), which make 1LPT growth exact for any step size: drift x += p (D1(a_f) - D1(a_i)) / g_p(a_c), kick
  p += F (g_p(a_f) - g_p(a_i)) / g_f(a_c), with g_p = a^3 E dD1/da and g_f = a^2 E dg_p/da = 1.5 Omega_m D1.
  The force mesh equals the particle grid; mass assignment and force readout are cloud-in-cell (CIC),
  the Poisson Green's function is -1/k^2 and the gradient the spectral i k (Nyquist planes zeroed so the
  gradient stays real). The density is divided by one CIC window W(k) = prod_i sinc^2(k_i cell / 2):
  for particles near their lattice (the linear regime) painting plus readout smooth by about one W, so
  this keeps the linear force within ~1% for k < 3 k_f (measured), whereas no compensation leaves it 8%
  low at k = 4 k_f and dividing by W^2 (right for random particles) over-amplifies by 5-15%. A force
  mesh finer than the particle grid is not offered: on it the lattice itself shows up as spurious
  power. Initial particles sit on the cell corners q = i box / n_grid. Consequence of the one-cell force
  resolution (measured, same seed against linear growth, CIC-deconvolved, 1 Gpc/h, 128^3, seed 0, by
  benchmarks/bench_matter.py): at z = 0, P(k) is 0.95-1.01 of linear for k < 0.1 k_Nyq and 3-11% low for
  0.13 k_Nyq < k < 0.5 k_Nyq; at z = 3 it is within 2% on average for k < k_Nyq / 8 (tests/sims/test_matter.py).
* Output: delta = rho / rho_bar - 1 from CIC of the particles on the same mesh (so delta >= -1 and the
  total mass is exactly the particle number, accumulated in float64).

``redshift >= z_init`` skips the N-body part: the particles are moved by LPT directly to ``redshift``
(e.g. z = 127, where linear theory holds). Per-box cosmology: ``omega_m_range`` and ``sigma_8_range``
draw Omega_m and sigma_8 uniformly per box (independent draws per box rather than a Latin hypercube over
the set, so a box never depends on how many boxes are made: the block-seeding contract of
`astrogen.sims.base`); they are stored in the params with the redshift and each tile's position.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

import numpy as np
import torch
from numba import njit
from pydantic import Field, model_validator

from astrogen.config import StrictModel
from astrogen.data.fieldset import Batch, FieldMeta
from astrogen.errors import ConfigError, DataError
from astrogen.sims.base import SimSpec, Simulator
from astrogen.sims.cosmology import Cosmology

_CHUNK = 512  # particles whose CIC neighbours are found together (SIMD loops), then scattered or gathered


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _cic_neighbours(pos, start, m, cell, n, x, index, weight):
    """Flat indices ``index[:, :m]`` into the periodic mesh [n, n, n] of the 8 CIC neighbours of particles ``start`` to
    ``start + m`` of ``pos`` [3, N_p] (Mpc/h; ``cell`` Mpc/h per cell) and their weights ``weight[:, :m]`` (sum 1):
    the order and float arithmetic (the dtype of ``pos``) of `ParticleMesh.cic_weights`, the upper neighbour
    wrapped instead of padded. ``x`` [3, >= m] is scratch. Branch-free loops over the chunk (SIMD), except for a
    pass that wraps positions outside the box (torch.remainder; fmod is slow, so only then). The indices are unsigned
    (uint64), which spares every mesh access numba's negative-index wrap."""
    one, size, cell = pos.dtype.type(1), pos.dtype.type(n), pos.dtype.type(cell)
    outside = False
    for a in range(3):
        coordinate = pos[a][start : start + m]
        for q in range(m):
            x[a, q] = coordinate[q] / cell
            outside |= not 0 <= x[a, q] < size
    for a in range(3 if outside else 0):
        for q in range(m):
            if not 0 <= x[a, q] < size:
                wrapped = np.fmod(x[a, q], size)
                x[a, q] = wrapped + size if wrapped < 0 else wrapped  # the sign of the divisor
    top = size - one  # x rounded up to exactly n: weight 1 on the upper cell, 0
    for q in range(m):
        li, lj, lk = np.floor(x[0, q]), np.floor(x[1, q]), np.floor(x[2, q])
        li, lj, lk = (li if li < top else top), (lj if lj < top else top), (lk if lk < top else top)
        fi, fj, fk = x[0, q] - li, x[1, q] - lj, x[2, q] - lk
        i, j, k = int(li), int(lj), int(lk)
        r00 = (i * n + j) * n + k
        r01 = r00 + (n if j < n - 1 else (1 - n) * n)
        r10 = r00 + (n * n if i < n - 1 else (1 - n) * n * n)
        r11 = r10 + r01 - r00
        k1 = 1 if k < n - 1 else 1 - n
        wi, wj, wk = one - fi, one - fj, one - fk
        w00, w01, w10, w11 = wi * wj, wi * fj, fi * wj, fi * fj
        index[0, q], index[1, q], index[2, q], index[3, q] = r00, r00 + k1, r01, r01 + k1
        index[4, q], index[5, q], index[6, q], index[7, q] = r10, r10 + k1, r11, r11 + k1
        weight[0, q], weight[1, q], weight[2, q], weight[3, q] = w00 * wk, w00 * fk, w01 * wk, w01 * fk
        weight[4, q], weight[5, q], weight[6, q], weight[7, q] = w10 * wk, w10 * fk, w11 * wk, w11 * fk


@njit(cache=True, nogil=True, inline="always")
def _chunk_buffers(pos):
    """The scratch, index and weight arrays of `_cic_neighbours` for one chunk of the particles ``pos``."""
    return np.empty((3, _CHUNK), pos.dtype), np.empty((8, _CHUNK), np.uint64), np.empty((8, _CHUNK), pos.dtype)


@njit(cache=True, nogil=True, error_model="numpy")
def _cic_paint(pos, cell, n):
    """CIC mass [n, n, n] of unit-mass particles at ``pos`` [3, N_p] (Mpc/h), in the dtype of ``pos``: one serial
    scatter loop (deterministic sums) over chunks of particles."""
    mass = np.zeros(n**3, pos.dtype)
    x, index, weight = _chunk_buffers(pos)
    for start in range(0, pos.shape[1], _CHUNK):
        m = min(_CHUNK, pos.shape[1] - start)
        _cic_neighbours(pos, start, m, cell, n, x, index, weight)
        for q in range(m):
            for c in range(8):
                mass[index[c, q]] += weight[c, q]
    return mass.reshape(n, n, n)


@njit(cache=True, nogil=True, error_model="numpy")
def _cic_readout(grid, pos, cell):
    """CIC values [C, N_p] of the mesh fields ``grid`` [C, n, n, n] at ``pos`` [3, N_p] (Mpc/h, the dtype of
    ``grid``): one gather loop over chunks of particles."""
    n = grid.shape[1]
    flat = grid.reshape(grid.shape[0], -1)
    out = np.empty((grid.shape[0], pos.shape[1]), grid.dtype)
    x, index, weight = _chunk_buffers(pos)
    for start in range(0, pos.shape[1], _CHUNK):
        m = min(_CHUNK, pos.shape[1] - start)
        _cic_neighbours(pos, start, m, cell, n, x, index, weight)
        for q in range(m):
            for c in range(grid.shape[0]):
                total = grid.dtype.type(0)
                for k in range(8):
                    total += weight[k, q] * flat[c, index[k, q]]
                out[c, start + q] = total
    return out


class ParticleMesh:
    """A periodic cubic mesh of ``n`` cells per side and ``box_size`` Mpc/h: FFT wavenumbers, CIC, forces.

    Particle positions and displacements are tensors [3, N_p] in Mpc/h on ``device``.
    """

    def __init__(self, n: int, box_size: float, device: str | torch.device = "cpu"):
        if n < 4 or box_size <= 0:
            raise ConfigError(f"particle mesh: need n >= 4 and box_size > 0, got n={n}, box_size={box_size}")
        self.n, self.box_size, self.device = n, float(box_size), torch.device(device)
        self.cell = self.box_size / n
        kf = 2 * np.pi / self.box_size
        full = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float32, device=self.device) * kf
        half = torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float32, device=self.device) * kf
        # Wavenumbers (h/Mpc) broadcast over the rfft grid [n, n, n//2 + 1].
        self.k = (full[:, None, None], full[None, :, None], half[None, None, :])
        k2 = self.k[0] ** 2 + self.k[1] ** 2 + self.k[2] ** 2
        self.kmag = torch.sqrt(k2)
        self.inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        # The CIC window prod_i sinc^2(k_i cell / 2); the power of painted fields carries its square.
        self.cic_window = 1.0
        for k in self.k:
            self.cic_window = self.cic_window * torch.sinc(k * self.cell / (2 * np.pi)) ** 2
        # First derivatives drop the Nyquist planes (even n): i k there would make the field complex.
        nyq = np.pi * n / self.box_size if n % 2 == 0 else np.inf
        self.k_odd = tuple(torch.where(torch.abs(k) >= nyq * (1 - 1e-6), 0.0, k) for k in self.k)

    # -- fields -----------------------------------------------------------------------------------
    def linear_field(self, noise: np.ndarray, power) -> torch.Tensor:
        """Fourier modes delta_k (DFT convention) of a Gaussian field with spectrum ``power(k)``.

        Parameters
        ----------
        noise : white noise [n, n, n], unit variance per cell.
        power : callable, P(k) in (Mpc/h)^3 for k in h/Mpc (a NumPy function; tabulated, then interpolated).
        """
        if noise.shape != (self.n,) * 3:
            raise DataError(f"linear_field: noise must have shape {(self.n,) * 3}, got {noise.shape}")
        w = torch.fft.rfftn(torch.as_tensor(noise, dtype=torch.float32, device=self.device))
        amplitude = torch.sqrt(self._tabulated(power) * self.n**3 / self.box_size**3)
        return w * amplitude

    def _tabulated(self, power) -> torch.Tensor:
        """``power`` at every mode, by linear interpolation in ln k on a 4096-point table (device-side)."""
        kmin, kmax = 2 * np.pi / self.box_size * 0.5, np.pi * self.n / self.box_size * np.sqrt(3) * 1.01
        lnk = np.linspace(np.log(kmin), np.log(kmax), 4096)
        table = torch.as_tensor(power(np.exp(lnk)), dtype=torch.float32, device=self.device)
        x = (torch.log(torch.clamp(self.kmag, min=kmin)) - lnk[0]) / (lnk[1] - lnk[0])
        i = torch.clamp(x.long(), 0, len(lnk) - 2)
        frac = x - i
        values = table[i] * (1 - frac) + table[i + 1] * frac
        return torch.where(self.kmag > 0, values, 0.0)

    def grad_inv_laplacian(self, field_k: torch.Tensor) -> torch.Tensor:
        """-grad(laplacian^-1 f) = irfftn(i k f_k / k^2) per axis, [3, n, n, n] (Mpc/h if f dimensionless)."""
        shape, potential = (self.n,) * 3, self.inv_k2 * field_k
        return torch.stack([torch.fft.irfftn(1j * k * potential, s=shape) for k in self.k_odd])

    def lpt(self, delta_k: torch.Tensor, order: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
        """First- and second-order displacement fields Psi1, Psi2 [3, n^3] (Mpc/h, at D1 = 1 and D2 = 1)."""
        psi1 = self.grad_inv_laplacian(delta_k).reshape(3, -1)
        if order == 1:
            return psi1, None
        shape = (self.n,) * 3
        # phi_ij = d_i d_j laplacian^-1 delta = irfftn(k_i k_j delta_k / k^2).
        hess = {}
        for i in range(3):
            for j in range(i, 3):
                kk = self.k[i] ** 2 if i == j else self.k_odd[i] * self.k_odd[j]
                hess[i, j] = torch.fft.irfftn(kk * self.inv_k2 * delta_k, s=shape)
        source = (hess[0, 0] * hess[1, 1] + hess[0, 0] * hess[2, 2] + hess[1, 1] * hess[2, 2]
                  - hess[0, 1] ** 2 - hess[0, 2] ** 2 - hess[1, 2] ** 2)
        psi2 = -self.grad_inv_laplacian(torch.fft.rfftn(source)).reshape(3, -1)  # Psi2 = +grad phi2
        return psi1, psi2

    def lattice(self) -> torch.Tensor:
        """Unperturbed particle positions, one per cell corner, [3, n^3] in Mpc/h (ordered like the mesh)."""
        axis = torch.arange(self.n, dtype=torch.float32, device=self.device) * self.cell
        return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij")).reshape(3, -1)

    # -- cloud in cell ----------------------------------------------------------------------------
    def cic_weights(self, pos: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The 8 CIC neighbours of each particle: flat indices [8, N_p] into the padded mesh (n + 1)^3 and weights
        [8, N_p] (sum 1), ``dtype`` of the weights.

        The padded mesh repeats the planes 0 as planes n, so the upper neighbour is always lower + 1 (no wrap-around
        pass) and the 8 indices are one flat base index plus constant offsets.
        """
        x = torch.remainder(pos.to(dtype) / self.cell, self.n)
        lower = torch.floor(x).clamp_(max=self.n - 1)  # x rounded up to exactly n: weight 1 on the upper plane n
        frac = x - lower
        cells = lower.to(torch.int32)  # int32 indices: half the memory traffic of int64 (n + 1)^3 < 2^31
        m = self.n + 1
        base = (cells[0] * m + cells[1]) * m + cells[2]
        offsets = torch.tensor([(i * m + j) * m + k for i in (0, 1) for j in (0, 1) for k in (0, 1)],
                               dtype=torch.int32, device=pos.device)
        weight = [torch.stack([1 - frac[d], frac[d]]) for d in range(3)]  # per axis, lower and upper, [2, N_p]
        w = weight[0][:, None, None] * weight[1][None, :, None] * weight[2][None, None, :]
        return base + offsets[:, None], w.reshape(8, -1)

    def paint(self, pos: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Density rho / rho_bar on the mesh [n, n, n] from equal-mass particles by CIC (mean exactly 1): a compiled
        serial loop on CPU (deterministic sums), `_paint_torch` on other devices."""
        if self.device.type != "cpu":
            return self._paint_torch(pos, dtype)
        mass = _cic_paint(pos.to(dtype).contiguous().numpy(), self.cell, self.n)
        return torch.from_numpy(mass) * (self.n**3 / pos.shape[1])

    def _paint_torch(self, pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`paint` by one ``index_add_`` of all 8 neighbours into the padded mesh (any device)."""
        n = self.n
        padded = torch.zeros((n + 1) ** 3, dtype=dtype, device=pos.device)
        idx, w = self.cic_weights(pos, dtype)
        padded.index_add_(0, idx.reshape(-1), w.reshape(-1))
        padded = padded.view(n + 1, n + 1, n + 1)
        padded[0] += padded[n]  # fold the padding planes back onto planes 0
        padded[:, 0] += padded[:, n]
        padded[:, :, 0] += padded[:, :, n]
        return padded[:n, :n, :n] * (n**3 / pos.shape[1])

    def readout(self, grid: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Values of the mesh fields ``grid`` [C, n, n, n] at the particles by CIC, [C, N_p]: a compiled loop on
        CPU, `_readout_torch` on other devices."""
        if self.device.type != "cpu":
            return self._readout_torch(grid, pos)
        return torch.from_numpy(_cic_readout(grid.contiguous().numpy(), pos.to(grid.dtype).contiguous().numpy(),
                                             self.cell))

    def _readout_torch(self, grid: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """`readout` by one gather of the 8 neighbours of every particle for all components, [C, 8, N_p] (any
        device)."""
        padded = torch.nn.functional.pad(grid[None], (0, 1, 0, 1, 0, 1), mode="circular")[0].flatten(1)
        idx, w = self.cic_weights(pos, grid.dtype)
        return padded.index_select(1, idx.reshape(-1)).view(len(grid), 8, -1).mul_(w).sum(1)

    def gravity(self, pos: torch.Tensor, omega_m: float) -> torch.Tensor:
        """Force F = -grad psi at the particles, laplacian(psi) = 1.5 Omega_m delta, [3, N_p] in Mpc/h."""
        # 1.5 Omega_m and the CIC deconvolution in one factor on the half-size spectrum (not on the 3 force meshes).
        source_k = torch.fft.rfftn(self.paint(pos) - 1.0) * (1.5 * omega_m / self.cic_window)
        return self.readout(self.grad_inv_laplacian(source_k), pos)

    # -- evolution --------------------------------------------------------------------------------
    def evolve(self, cosmo: Cosmology, delta_k: torch.Tensor, a_out: float, a_init: float, n_steps: int,
               lpt_order: int = 2) -> torch.Tensor:
        """Particle positions [3, n^3] (Mpc/h, wrapped into the box) at scale factor ``a_out``.

        LPT to ``a_init``, then ``n_steps`` FastPM kick-drift-kick steps uniform in a to ``a_out``; if
        ``a_out <= a_init`` LPT goes straight to ``a_out``. ``delta_k`` is the linear field at z = 0.
        """
        psi1, psi2 = self.lpt(delta_k, lpt_order)
        a0 = min(a_init, a_out)
        pos = self.lattice() + float(cosmo.growth(a0)) * psi1
        if psi2 is not None:
            pos = pos + float(cosmo.growth(a0, 2)) * psi2
        if a_out <= a_init:
            return torch.remainder(pos, self.box_size)
        to_momentum = a0**2 * float(cosmo.efunc(a0))  # p = a^2 E dx/dln a
        mom = to_momentum * float(cosmo.growth_derivative(a0)) * psi1
        if psi2 is not None:
            mom = mom + to_momentum * float(cosmo.growth_derivative(a0, 2)) * psi2
        force = self.gravity(pos, cosmo.omega_m)
        for a_i, a_f in itertools.pairwise(np.linspace(a0, a_out, n_steps + 1)):
            a_c = 0.5 * (a_i + a_f)
            mom = mom + force * fastpm_kick(cosmo, a_i, a_c, a_i)
            pos = torch.remainder(pos + mom * fastpm_drift(cosmo, a_i, a_f, a_c), self.box_size)
            force = self.gravity(pos, cosmo.omega_m)
            mom = mom + force * fastpm_kick(cosmo, a_c, a_f, a_f)
        return pos


def _g_p(cosmo: Cosmology, a: float) -> float:
    """g_p = a^3 E dD1/da = a^2 E dD1/dln a: the momentum of unit linear displacement."""
    return a**2 * float(cosmo.efunc(a)) * float(cosmo.growth_derivative(a))


def fastpm_kick(cosmo: Cosmology, a_i: float, a_f: float, a_force: float) -> float:
    """FastPM kick factor (g_p(a_f) - g_p(a_i)) / g_f(a_force), g_f = 1.5 Omega_m D1: p += F x factor."""
    return (_g_p(cosmo, a_f) - _g_p(cosmo, a_i)) / (1.5 * cosmo.omega_m * float(cosmo.growth(a_force)))


def fastpm_drift(cosmo: Cosmology, a_i: float, a_f: float, a_momentum: float) -> float:
    """FastPM drift factor (D1(a_f) - D1(a_i)) / g_p(a_momentum): x += p x factor."""
    return (float(cosmo.growth(a_f)) - float(cosmo.growth(a_i))) / _g_p(cosmo, a_momentum)


def power_spectrum(delta: torch.Tensor, box_size: float, deconvolve_cic: bool = False):
    """Spherically averaged power spectrum of periodic 3D fields, bins of width k_f = 2 pi / box_size.

    Parameters
    ----------
    delta : density contrast [..., n, n, n] (tensor or array).
    box_size : side of the box, Mpc/h.
    deconvolve_cic : divide each mode by the squared CIC window prod_i sinc^2(k_i cell / 2) (for fields
        painted from particles).

    Returns
    -------
    k : mean |k| of the modes in each bin, h/Mpc, [n_bins] (bins up to the Nyquist frequency).
    power : P(k), (Mpc/h)^3, [..., n_bins]: mean of V |delta_k|^2 / n^6 over the bin's modes.
    n_modes : number of modes per bin in the full (not half) Fourier space, [n_bins].
    """
    delta = torch.as_tensor(delta)
    n = delta.shape[-1]
    if delta.shape[-3:] != (n, n, n):
        raise DataError(f"power_spectrum: expected [..., n, n, n], got {tuple(delta.shape)}")
    mesh = ParticleMesh(n, box_size, delta.device)
    p = torch.abs(torch.fft.rfftn(delta.to(torch.float64), dim=(-3, -2, -1))) ** 2 * (box_size**3 / n**6)
    if deconvolve_cic:
        p = p / mesh.cic_window.double() ** 2
    kf = 2 * np.pi / box_size
    kmag = mesh.kmag.double()
    bins = torch.round(kmag / kf).long()
    # Modes in the open half of the rfft axis stand for themselves and their conjugates.
    kz = torch.arange(n // 2 + 1, device=delta.device)
    weight = torch.where((kz == 0) | (kz == n // 2) if n % 2 == 0 else kz == 0, 1.0, 2.0).double()
    weight = weight.expand_as(kmag)
    keep = (bins >= 1) & (bins <= n // 2)
    b, w = bins[keep] - 1, weight[keep]
    n_bins = n // 2
    counts = torch.bincount(b, weights=w, minlength=n_bins)
    k_mean = torch.bincount(b, weights=w * kmag[keep], minlength=n_bins) / counts
    flat = p[..., keep].reshape(-1, b.numel())
    power = torch.zeros(flat.shape[0], n_bins, dtype=flat.dtype, device=flat.device).index_add_(1, b, flat * w)
    power = power / counts
    return k_mean, power.reshape(*p.shape[:-3], n_bins), counts


class MatterConfig(StrictModel):
    """Configuration of the particle-mesh matter simulator."""

    box_size: float = Field(1000.0, gt=0, description="side of the periodic box, Mpc/h")
    n_grid: int = Field(128, ge=8, le=1024, description="particles per side = mesh cells per side")
    redshift: float = Field(0.0, ge=0, le=1000, description="output redshift")
    z_init: float = Field(9.0, ge=0, le=1000, description="redshift of the 2LPT start of the N-body run")
    n_steps: int = Field(10, ge=1, le=1000, description="kick-drift-kick steps, uniform in scale factor")
    lpt_order: Literal[1, 2] = Field(2, description="order of Lagrangian perturbation theory for the ICs")
    slab_thickness: int = Field(8, ge=1, description="voxels averaged along the third axis per slice")
    tile_size: int = Field(64, ge=4, description="side of the output tiles, voxels")
    omega_m: float = Field(0.3175, gt=0, le=1, description="matter density parameter (if not varied)")
    omega_b: float = Field(0.049, gt=0, lt=1, description="baryon density parameter")
    h: float = Field(0.6711, gt=0, description="H0 / (100 km/s/Mpc)")
    n_s: float = Field(0.9624, gt=0, description="primordial spectral index")
    sigma_8: float = Field(0.834, gt=0, description="rms linear density in 8 Mpc/h top hats at z = 0 (if not varied)")
    omega_m_range: tuple[float, float] | None = Field(None, description="per-box uniform Omega_m range")
    sigma_8_range: tuple[float, float] | None = Field(None, description="per-box uniform sigma_8 range")
    wiggles: bool = Field(True, description="EH98 with baryon wiggles (False: the no-wiggle fit)")
    device: str = Field("cpu", description="torch device of the heavy arrays, e.g. 'cpu' or 'cuda'")

    @model_validator(mode="after")
    def _check(self):
        for name in ("slab_thickness", "tile_size"):
            if self.n_grid % getattr(self, name):
                raise ValueError(f"{name} must divide n_grid={self.n_grid}")
        for name in ("omega_m_range", "sigma_8_range"):
            rng = getattr(self, name)
            if rng is not None and not 0 < rng[0] <= rng[1]:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        return self


class Matter(Simulator):
    """Particle-mesh dark-matter density fields, sliced and tiled (see the module docstring)."""

    name = "matter"
    version = "1"
    Config = MatterConfig

    PARAMS: ClassVar[dict[str, str]] = {
        "omega_m": "", "sigma_8": "", "redshift": "", "x0": "Mpc/h", "y0": "Mpc/h", "z0": "Mpc/h"}

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        try:
            torch.empty(0, device=c.device)
        except (RuntimeError, AssertionError) as err:
            raise ConfigError(f"simulator matter: device: cannot use {c.device!r} ({err})") from None
        self.n_slabs = c.n_grid // c.slab_thickness
        self.n_tiles = c.n_grid // c.tile_size
        self.block_size = self.n_slabs * self.n_tiles**2
        self.mesh = ParticleMesh(c.n_grid, c.box_size, c.device)

    def spec(self) -> SimSpec:
        c = self.config
        cell = c.box_size / c.n_grid
        return SimSpec(
            sample_shape=(1, c.tile_size, c.tile_size),
            meta=FieldMeta(channels=["delta"], units="dimensionless", pixel_size=cell, pixel_unit="Mpc/h",
                           box_size=[c.tile_size * cell, c.tile_size * cell], periodic=self.n_tiles == 1),
            param_names=list(self.PARAMS),
            param_units=self.PARAMS,
        )

    def cosmology(self, rng: np.random.Generator) -> Cosmology:
        """This box's cosmology: the configured one, with Omega_m and sigma_8 drawn if ranges are set."""
        c = self.config
        draw = lambda rng_, fixed, bounds: fixed if bounds is None else float(rng_.uniform(*bounds))  # noqa: E731
        return Cosmology(omega_m=draw(rng, c.omega_m, c.omega_m_range), omega_b=c.omega_b, h=c.h, n_s=c.n_s,
                         sigma_8=draw(rng, c.sigma_8, c.sigma_8_range))

    def density(self, rng: np.random.Generator) -> tuple[torch.Tensor, Cosmology]:
        """One box: delta [n, n, n] (float32, on the configured device) and its cosmology."""
        c = self.config
        cosmo = self.cosmology(rng)
        noise = rng.standard_normal((c.n_grid,) * 3, dtype=np.float32)
        delta_k = self.mesh.linear_field(noise, lambda k: cosmo.power(k, wiggles=c.wiggles))
        pos = self.mesh.evolve(cosmo, delta_k, 1 / (1 + c.redshift), 1 / (1 + c.z_init), c.n_steps, c.lpt_order)
        return (self.mesh.paint(pos, torch.float64) - 1.0).float(), cosmo

    def tiles(self, delta: torch.Tensor) -> torch.Tensor:
        """Slab-average along axis 2 and cut into tiles: [n, n, n] -> [n_slabs * n_tiles^2, 1, tile, tile]."""
        c = self.config
        n, s, t, nt = c.n_grid, c.slab_thickness, c.tile_size, self.n_tiles
        slabs = delta.reshape(n, n, self.n_slabs, s).mean(-1).permute(2, 0, 1)
        return slabs.reshape(self.n_slabs, nt, t, nt, t).permute(0, 1, 3, 2, 4).reshape(-1, 1, t, t)

    def simulate_block(self, rng: np.random.Generator, n: int) -> Batch:
        c = self.config
        delta, cosmo = self.density(rng)
        cell = c.box_size / c.n_grid
        slab, tx, ty = np.meshgrid(np.arange(self.n_slabs), np.arange(self.n_tiles), np.arange(self.n_tiles),
                                   indexing="ij")
        ones = np.ones(self.block_size)
        params = {"omega_m": cosmo.omega_m * ones, "sigma_8": cosmo.sigma_8 * ones, "redshift": c.redshift * ones,
                  "x0": tx.ravel() * c.tile_size * cell, "y0": ty.ravel() * c.tile_size * cell,
                  "z0": slab.ravel() * c.slab_thickness * cell}
        return Batch(self.tiles(delta).cpu().numpy(), {k: v.astype(np.float64) for k, v in params.items()})
