"""Flat LCDM background, linear growth and the Eisenstein & Hu (1998) linear matter power spectrum.

Conventions: wavenumbers k in h/Mpc, lengths in Mpc/h, P(k) in (Mpc/h)^3, time in units of 1/H0.
The background is flat matter + Lambda, E(a) = H(a)/H0 = sqrt(Omega_m a^-3 + 1 - Omega_m); radiation is
neglected. Against a background with radiation (photons and massless neutrinos, Omega_r = 4.2e-5 / h^2)
this makes D(z) / D(0) 0.16% low at the N-body start z = 9 and 2.4% low at z = 127 (so the z = 127 output's
P(k) is about 5% below that of codes with radiation, such as CAMB-based Quijote ICs; measured in
tests/sims/test_matter.py).

* Transfer function: Eisenstein & Hu 1998, ApJ 496, 605 (EH98), eqs. 2-24 (cold dark matter + baryons,
  with baryon acoustic oscillations) and eqs. 26-31 (the "no-wiggle" shape fit).
* Normalisation: sigma_8, the rms of the linear density at z = 0 in a top-hat sphere of radius 8 Mpc/h,
  sigma_R^2 = int dk k^2 P(k) W(kR)^2 / (2 pi^2), W(x) = 3 (sin x - x cos x) / x^3.
* Growth: D1 and the second-order growth D2 from their ODEs in ln a (e.g. Bouchet et al. 1995, A&A 296,
  575; Scoccimarro 1998, MNRAS 299, 1097): with E' = dlnE/dlna and Omega_m(a) = Omega_m a^-3 / E^2,
  D'' + (2 + E') D' - 1.5 Omega_m(a) D = S, S = 0 for D1 and S = -1.5 Omega_m(a) D1^2 for D2,
  started in matter domination at D1 = a, D2 = -3/7 a^2 and normalised to D1(a = 1) = 1 (D2 by the
  square of the same factor). D2 ~ -3/7 D1^2 Omega_m(a)^(-1/143) (Bouchet et al. 1995) is the familiar fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import integrate, interpolate

from astrogen.errors import ConfigError

T_CMB = 2.7255  # K, Fixsen 2009
SIGMA_R = 8.0  # Mpc/h, the radius of sigma_8


def tophat_window(x: np.ndarray) -> np.ndarray:
    """Fourier transform of a unit-volume spherical top hat, 3 (sin x - x cos x) / x^3 (-> 1 at x = 0)."""
    x = np.asarray(x, dtype=np.float64)
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    exact = 3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    return np.where(small, 1.0 - x**2 / 10.0, exact)


@dataclass(frozen=True)
class Cosmology:
    """A flat LCDM cosmology; defaults are the Quijote fiducial values.

    Parameters
    ----------
    omega_m : total matter density today over the critical density (CDM + baryons).
    omega_b : baryon density today over the critical density.
    h : Hubble constant / (100 km/s/Mpc).
    n_s : primordial spectral index.
    sigma_8 : rms linear density contrast at z = 0 in top-hat spheres of 8 Mpc/h.
    t_cmb : CMB temperature today, K.
    """

    omega_m: float = 0.3175
    omega_b: float = 0.049
    h: float = 0.6711
    n_s: float = 0.9624
    sigma_8: float = 0.834
    t_cmb: float = T_CMB

    def __post_init__(self):
        if not 0 < self.omega_b < self.omega_m <= 1:
            raise ConfigError(f"cosmology: need 0 < omega_b < omega_m <= 1, got {self.omega_b}, {self.omega_m}")
        if self.h <= 0 or self.sigma_8 <= 0 or self.t_cmb <= 0:
            raise ConfigError(f"cosmology: h, sigma_8 and t_cmb must be > 0, got {self.h}, {self.sigma_8}, "
                              f"{self.t_cmb}")

    # -- background ---------------------------------------------------------------------------------
    def efunc(self, a: np.ndarray) -> np.ndarray:
        """E(a) = H(a) / H0 (dimensionless)."""
        a = np.asarray(a, dtype=np.float64)
        return np.sqrt(self.omega_m / a**3 + 1.0 - self.omega_m)

    def omega_m_a(self, a: np.ndarray) -> np.ndarray:
        """Omega_m(a) = Omega_m a^-3 / E(a)^2."""
        a = np.asarray(a, dtype=np.float64)
        return self.omega_m / a**3 / self.efunc(a) ** 2

    # -- growth -------------------------------------------------------------------------------------
    @cached_property
    def _growth_table(self):
        lna = np.linspace(np.log(1e-4), np.log(2.0), 2049)

        def rhs(x, y):
            a = np.exp(x)
            om = self.omega_m_a(a)
            dlne = -1.5 * om  # dlnE/dlna for flat matter + Lambda
            d1, d1p, d2, d2p = y
            return [d1p, -(2 + dlne) * d1p + 1.5 * om * d1, d2p, -(2 + dlne) * d2p + 1.5 * om * (d2 - d1**2)]

        a0 = np.exp(lna[0])
        y0 = [a0, a0, -3 / 7 * a0**2, -6 / 7 * a0**2]
        sol = integrate.solve_ivp(rhs, (lna[0], lna[-1]), y0, t_eval=lna, rtol=1e-10, atol=1e-14, method="DOP853")
        norm = float(interpolate.CubicSpline(lna, sol.y[0])(0.0))
        d1, d1p, d2, d2p = sol.y / np.array([norm, norm, norm**2, norm**2])[:, None]
        return {name: interpolate.CubicSpline(lna, v) for name, v in
                zip(("d1", "dd1", "d2", "dd2"), (d1, d1p, d2, d2p))}

    def growth(self, a: np.ndarray, order: int = 1) -> np.ndarray:
        """Linear (``order=1``, D1(a=1) = 1) or second-order (``order=2``, D2 < 0) growth factor at scale factor a."""
        self._check_a(a)
        return self._growth_table["d1" if order == 1 else "d2"](np.log(a))

    def growth_derivative(self, a: np.ndarray, order: int = 1) -> np.ndarray:
        """dD/dln a of the first- or second-order growth factor."""
        self._check_a(a)
        return self._growth_table["dd1" if order == 1 else "dd2"](np.log(a))

    def growth_rate(self, a: np.ndarray, order: int = 1) -> np.ndarray:
        """f = dln D / dln a (about Omega_m(a)^0.55 for order 1)."""
        return self.growth_derivative(a, order) / self.growth(a, order)

    @staticmethod
    def _check_a(a):
        a = np.asarray(a)
        if np.any(a < 1e-4) or np.any(a > 2.0):
            raise ConfigError(f"scale factor must be in [1e-4, 2] (redshift -0.5 to 9999), got {a}")

    # -- linear power spectrum ------------------------------------------------------------------------
    def transfer(self, k: np.ndarray, wiggles: bool = True) -> np.ndarray:
        """EH98 matter transfer function T(k) (-> 1 as k -> 0) at wavenumbers ``k`` in h/Mpc."""
        k = np.asarray(k, dtype=np.float64)
        return self._transfer_wiggle(k) if wiggles else self._transfer_nowiggle(k)

    def _eh_common(self):
        omh2 = self.omega_m * self.h**2
        obh2 = self.omega_b * self.h**2
        theta = self.t_cmb / 2.7
        z_eq = 2.50e4 * omh2 * theta**-4  # eq. 2
        k_eq = 7.46e-2 * omh2 * theta**-2  # eq. 3, 1/Mpc
        b1 = 0.313 * omh2**-0.419 * (1 + 0.607 * omh2**0.674)  # eq. 4
        b2 = 0.238 * omh2**0.223
        z_d = 1291 * omh2**0.251 / (1 + 0.659 * omh2**0.828) * (1 + b1 * obh2**b2)
        r_d = 31.5 * obh2 * theta**-4 * (1e3 / z_d)  # eq. 5, R at the drag epoch
        r_eq = 31.5 * obh2 * theta**-4 * (1e3 / z_eq)
        s = 2 / (3 * k_eq) * np.sqrt(6 / r_eq) * np.log((np.sqrt(1 + r_d) + np.sqrt(r_d + r_eq)) / (1 + np.sqrt(r_eq)))
        return omh2, obh2, theta, z_eq, k_eq, z_d, r_d, s

    def sound_horizon(self) -> float:
        """EH98 sound horizon at the drag epoch (eq. 6), Mpc (not Mpc/h)."""
        return float(self._eh_common()[-1])

    def _transfer_wiggle(self, k_hmpc: np.ndarray) -> np.ndarray:
        omh2, obh2, _, z_eq, k_eq, z_d, r_d, s = self._eh_common()
        k = k_hmpc * self.h  # 1/Mpc
        fb = self.omega_b / self.omega_m
        fc = 1 - fb
        k_silk = 1.6 * obh2**0.52 * omh2**0.73 * (1 + (10.4 * omh2) ** -0.95)  # eq. 7
        q = k / (13.41 * k_eq)  # eq. 10
        a1 = (46.9 * omh2) ** 0.670 * (1 + (32.1 * omh2) ** -0.532)  # eq. 11
        a2 = (12.0 * omh2) ** 0.424 * (1 + (45.0 * omh2) ** -0.582)
        alpha_c = a1**-fb * a2 ** (-(fb**3))
        bb1 = 0.944 / (1 + (458 * omh2) ** -0.708)  # eq. 12
        bb2 = (0.395 * omh2) ** -0.0266
        beta_c = 1 / (1 + bb1 * (fc**bb2 - 1))

        def t0(alpha, beta):  # eqs. 19-20
            ln = np.log(np.e + 1.8 * beta * q)
            c = 14.2 / alpha + 386 / (1 + 69.9 * q**1.08)
            return ln / (ln + c * q**2)

        f = 1 / (1 + (k * s / 5.4) ** 4)  # eq. 18
        t_c = f * t0(1.0, beta_c) + (1 - f) * t0(alpha_c, beta_c)  # eq. 17
        y = (1 + z_eq) / (1 + z_d)
        g = y * (-6 * np.sqrt(1 + y) + (2 + 3 * y) * np.log((np.sqrt(1 + y) + 1) / (np.sqrt(1 + y) - 1)))  # eq. 15
        alpha_b = 2.07 * k_eq * s * (1 + r_d) ** -0.75 * g  # eq. 14
        beta_node = 8.41 * omh2**0.435  # eq. 23
        beta_b = 0.5 + fb + (3 - 2 * fb) * np.sqrt((17.2 * omh2) ** 2 + 1)  # eq. 24
        ks = np.maximum(k * s, 1e-12)
        s_tilde = s / (1 + (beta_node / ks) ** 3) ** (1 / 3)  # eq. 22
        t_b = (t0(1.0, 1.0) / (1 + (ks / 5.2) ** 2)
               + alpha_b / (1 + (beta_b / ks) ** 3) * np.exp(-((k / k_silk) ** 1.4)))
        t_b = t_b * np.sinc(k * s_tilde / np.pi)  # eq. 21; np.sinc(x) = sin(pi x) / (pi x)
        return fb * t_b + fc * t_c  # eq. 16

    def _transfer_nowiggle(self, k_hmpc: np.ndarray) -> np.ndarray:
        omh2 = self.omega_m * self.h**2
        obh2 = self.omega_b * self.h**2
        theta = self.t_cmb / 2.7
        fb = self.omega_b / self.omega_m
        k = k_hmpc * self.h
        s = 44.5 * np.log(9.83 / omh2) / np.sqrt(1 + 10 * obh2**0.75)  # eq. 26, Mpc
        alpha_g = 1 - 0.328 * np.log(431 * omh2) * fb + 0.38 * np.log(22.3 * omh2) * fb**2  # eq. 31
        gamma_eff = self.omega_m * self.h * (alpha_g + (1 - alpha_g) / (1 + (0.43 * k * s) ** 4))  # eq. 30
        q = k_hmpc * theta**2 / gamma_eff  # eq. 28
        l0 = np.log(2 * np.e + 1.8 * q)  # eq. 29
        c0 = 14.2 + 731 / (1 + 62.5 * q)
        return l0 / (l0 + c0 * q**2)

    def _unnormalised_power(self, k: np.ndarray, wiggles: bool) -> np.ndarray:
        return k**self.n_s * self.transfer(k, wiggles) ** 2

    def sigma_r(self, radius: float, power=None, wiggles: bool = True) -> float:
        """rms linear density at z = 0 in top-hat spheres of ``radius`` Mpc/h (for ``power(k)``, default P_lin)."""
        power = power or (lambda k: self.power(k, wiggles=wiggles))
        lnk = np.linspace(np.log(1e-5), np.log(1e2), 8193)
        k = np.exp(lnk)
        integrand = k**3 * power(k) * tophat_window(k * radius) ** 2 / (2 * np.pi**2)
        return float(np.sqrt(integrate.simpson(integrand, x=lnk)))

    @cached_property
    def _amplitude(self) -> dict:
        return {w: (self.sigma_8 / self.sigma_r(SIGMA_R, lambda k, w=w: self._unnormalised_power(k, w))) ** 2
                for w in (True, False)}

    def power(self, k: np.ndarray, z: float = 0.0, wiggles: bool = True) -> np.ndarray:
        """Linear matter power spectrum P(k, z) = A k^n_s T(k)^2 D1(z)^2, (Mpc/h)^3, k in h/Mpc; sigma_8-normalised."""
        k = np.asarray(k, dtype=np.float64)
        growth = 1.0 if z == 0 else self.growth(1 / (1 + z)) ** 2
        return self._amplitude[wiggles] * self._unnormalised_power(k, wiggles) * growth
