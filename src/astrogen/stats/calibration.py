"""Calibration of posterior samples on a test set: credible intervals, expected coverage, SBC ranks and TARP.

Inputs are posterior samples ``samples`` ``[N, S, T]`` (N test items, S samples each, T parameters) and the
true parameters ``truth`` ``[N, T]`` that generated each item; everything is batched over N and T.

* **Normalised rank** (simulation-based calibration, Talts et al. 2018, arXiv:1804.06788): per item and
  parameter, u = (#{s: theta_s < theta*} + #{s: theta_s = theta*} / 2) / S, the SBC rank over S. For a
  calibrated posterior, theta* is one more draw from it and u ~ U[0, 1]; a too-narrow posterior piles u up at 0
  and 1, a too-wide one at 1/2, a biased one on one side.
* **Central credible interval** of level alpha: the (1 - alpha) / 2 and (1 + alpha) / 2 quantiles of the
  samples. theta* lies inside it when |2u - 1| <= alpha (to within the 1/S resolution of the samples), so the
  **expected coverage** curve, the fraction of items whose central alpha interval holds the truth against alpha,
  is the empirical CDF of |2u - 1|; calibrated, it is the diagonal (up to binomial scatter, standard deviation
  sqrt(alpha (1 - alpha) / N)).
* **TARP** (tests of accuracy with random points, Lemos et al. 2023, arXiv:2302.03026), joint over the T
  parameters: per item, a random reference point theta_r; f = the fraction of samples closer to theta_r than
  theta* (Euclidean distance after standardising each parameter by the samples' mean and standard deviation over
  the test set); the expected coverage probability ECP(alpha) = fraction of items with f < alpha. The posterior
  is calibrated if and only if ECP(alpha) = alpha for every alpha (for reference points drawn independently of
  the truths, from a distribution with the conditions of the paper; here uniform over the bounding box of the
  items' posterior means, close to the authors' ``tarp`` package, which takes the truths' box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from astrogen.errors import DataError

LEVELS = np.linspace(0.0, 1.0, 101)  # credibility levels of the coverage and TARP curves
COVERAGE_POINTS = 0.03  # tolerance of an empirical coverage, absolute (3 percentage points) ...
COVERAGE_SIGMAS = 3.0  # ... or this many binomial standard deviations if larger (small test sets)


def _check(samples, truth) -> tuple[np.ndarray, np.ndarray]:
    samples, truth = np.asarray(samples, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if samples.ndim != 3 or truth.shape != (samples.shape[0], samples.shape[2]) or samples.size == 0:
        raise DataError(f"calibration needs samples [N, S, T] and truth [N, T], got {samples.shape} and {truth.shape}")
    if not (np.isfinite(samples).all() and np.isfinite(truth).all()):
        raise DataError("calibration: samples or truth contain NaN or inf")
    return samples, truth


def posterior_ranks(samples, truth) -> np.ndarray:
    """Normalised SBC ranks u in [0, 1] of the truths among the posterior samples: ``[N, S, T]``, ``[N, T]`` ->
    ``[N, T]`` (ties count one half)."""
    samples, truth = _check(samples, truth)
    below = (samples < truth[:, None]).sum(1)
    ties = (samples == truth[:, None]).sum(1)
    return (below + 0.5 * ties) / samples.shape[1]


def central_intervals(samples, levels=(0.68, 0.95)) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends ``[L, N, T]`` of the central credible intervals of ``levels`` (in [0, 1]) of the
    samples ``[N, S, T]``: their (1 - level) / 2 and (1 + level) / 2 quantiles (linear interpolation)."""
    samples = np.asarray(samples, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    q = np.quantile(samples, np.concatenate([(1 - levels) / 2, (1 + levels) / 2]), axis=1)
    return q[: len(levels)], q[len(levels):]


def expected_coverage(samples, truth, levels=LEVELS) -> np.ndarray:
    """Empirical coverage ``[L, T]``: the fraction of the N items whose central credible interval of each level
    holds the truth (|2u - 1| <= level, u the normalised rank), per parameter."""
    distance = np.abs(2 * posterior_ranks(samples, truth) - 1)  # [N, T]
    levels = np.asarray(levels, dtype=np.float64)
    ordered = np.sort(distance, axis=0)
    return np.stack([np.searchsorted(ordered[:, t], levels, side="right") for t in range(ordered.shape[1])],
                    1) / len(distance)


def tarp_coverage(samples, truth, levels=LEVELS, seed: int | np.random.Generator = 0) -> np.ndarray:
    """TARP expected coverage probability ``[L]`` at ``levels`` (Lemos et al. 2023), joint over the parameters.

    Each parameter is standardised by the mean and standard deviation of all N x S samples (a constant one by 1);
    one reference point per item is drawn from ``seed``, uniformly in the bounding box of the items' standardised
    posterior means. Neither uses the truths (a reference must not depend on its item's truth).
    """
    samples, truth = _check(samples, truth)
    rng = np.random.default_rng(seed)
    mean, std = samples.mean((0, 1)), samples.std((0, 1))
    std = np.where(std > 0, std, 1.0)
    samples, truth = (samples - mean) / std, (truth - mean) / std
    centres = samples.mean(1)
    reference = rng.uniform(centres.min(0), centres.max(0), size=truth.shape)  # [N, T]
    d_samples = np.linalg.norm(samples - reference[:, None], axis=-1)  # [N, S]
    d_truth = np.linalg.norm(truth - reference, axis=-1)  # [N]
    f = (d_samples < d_truth[:, None]).mean(1)
    return np.searchsorted(np.sort(f), np.asarray(levels, dtype=np.float64), side="left") / len(f)


def coverage_tolerance(level, n: int, points: float = COVERAGE_POINTS, sigmas: float = COVERAGE_SIGMAS):
    """Allowed |empirical - nominal| coverage of ``level`` on ``n`` items: max(points, sigmas x the binomial
    standard deviation sqrt(level (1 - level) / n))."""
    level = np.asarray(level, dtype=np.float64)
    return np.maximum(points, sigmas * np.sqrt(level * (1 - level) / n))


def gaussian_coverage(level, width_ratio: float, bias_sigmas: float = 0.0):
    """Coverage of central ``level`` intervals of a Gaussian posterior whose width is ``width_ratio`` times the true
    posterior's and whose mean is off by ``bias_sigmas`` true posterior standard deviations (true posterior also
    Gaussian): Phi(k z - b) - Phi(-k z - b), z = Phi^-1((1 + level) / 2). Calibrated: k = 1, b = 0 gives ``level``."""
    z = width_ratio * ndtri((1 + np.asarray(level, dtype=np.float64)) / 2)
    return ndtr(z - bias_sigmas) - ndtr(-z - bias_sigmas)


@dataclass
class Calibration:
    """Calibration of a posterior on a test set (`calibrate`).

    ``levels`` [L]; ``coverage`` [L, T] (`expected_coverage`); ``tarp`` [L] (`tarp_coverage`); ``ranks`` [N, T]
    (`posterior_ranks`); ``n`` items; ``names`` of the T parameters.
    """

    names: list[str]
    levels: np.ndarray
    coverage: np.ndarray
    tarp: np.ndarray
    ranks: np.ndarray
    n: int

    def at(self, level: float) -> np.ndarray:
        """Empirical coverage ``[T]`` of the central intervals of ``level`` (one of `levels`)."""
        index = int(np.argmin(np.abs(self.levels - level)))
        if not np.isclose(self.levels[index], level):
            raise DataError(f"level {level} is not among the calibration levels")
        return self.coverage[index]

    def verdict(self, level: float) -> list[str]:
        """Per parameter: ``holds`` (within `coverage_tolerance`), ``under`` (overconfident: intervals too
        narrow or off-centre) or ``over`` (conservative: too wide)."""
        gap = self.at(level) - level
        tolerance = coverage_tolerance(level, self.n)
        return ["holds" if abs(g) <= tolerance else ("under" if g < 0 else "over") for g in gap]

    @property
    def tarp_max_deviation(self) -> float:
        """max over levels of |ECP(alpha) - alpha|."""
        return float(np.max(np.abs(self.tarp - self.levels)))


def calibrate(samples, truth, names: list[str] | None = None, levels=LEVELS, seed: int = 0) -> Calibration:
    """Coverage curves, TARP and normalised ranks of posterior ``samples`` ``[N, S, T]`` against ``truth``
    ``[N, T]``."""
    samples, truth = _check(samples, truth)
    names = list(names) if names is not None else [f"theta_{t}" for t in range(truth.shape[1])]
    levels = np.asarray(levels, dtype=np.float64)
    return Calibration(names, levels, expected_coverage(samples, truth, levels),
                       tarp_coverage(samples, truth, levels, seed), posterior_ranks(samples, truth), len(truth))
