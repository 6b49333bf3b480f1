"""The fidelity figures of a generated set against a held-out one (shared by the learning-curve and pretrained
benchmarks): the full scorecard plus the per-k agreement of the mean P(k) and of its map-to-map variance."""

from __future__ import annotations

import math

import numpy as np

from astrogen.data import FieldSet
from astrogen.stats.compare import DEFAULT_STATS, compare_files
from astrogen.stats.power import power_spectrum


def power_agreement(real_path, gen_path) -> dict:
    """Per k bin: P_gen / P_real of the set means and of the map-to-map variances, and k / k_Nyquist."""
    spectra = []
    for path in (real_path, gen_path):
        with FieldSet(path) as fs:
            pixel = fs.meta.pixel_size or 1.0
            result = power_spectrum(fs[:].images, pixel_size=pixel)
        spectra.append(result.power[:, 0])
    (real, gen), k = spectra, result.k
    return {"k_over_nyquist": k / (math.pi / pixel), "mean_ratio": gen.mean(0) / real.mean(0),
            "var_ratio": gen.var(0, ddof=1) / real.var(0, ddof=1)}


def fidelity(real_path, gen_path, seed: int = 0, stats=DEFAULT_STATS) -> dict:
    """Scorecard rows (distance, tolerance, passed) and the issue's P(k) figures of ``gen_path`` vs ``real_path``:
    worst |P_gen / P_real - 1| of the mean up to k_Nyq / 2 and up to k_Nyq, worst |var ratio - 1| up to k_Nyq / 2."""
    card = compare_files(real_path, gen_path, stats=stats, seed=seed)
    power = power_agreement(real_path, gen_path)
    half = power["k_over_nyquist"] <= 0.5 + 1e-9
    return {
        "rows": {row.statistic: (row.distance, row.error, row.tolerance, row.passed) for row in card.rows},
        "passed": card.passed,
        "pk_mean_half": float(np.abs(power["mean_ratio"][half] - 1).max()),
        "pk_mean_all": float(np.abs(power["mean_ratio"] - 1).max()),
        "pk_var_half": float(np.abs(power["var_ratio"][half] - 1).max()),
        "power": power,
    }


def print_fidelity(figures: dict) -> None:
    """The scorecard rows and the per-k P(k) ratios as Markdown tables."""
    print("| statistic | distance | error | tolerance | verdict |\n| --- | --- | --- | --- | --- |")
    for name, (distance, error, tolerance, passed) in figures["rows"].items():
        print(f"| {name} | {distance:.4g} | {error:.2g} | {tolerance:g} | {'pass' if passed else 'FAIL'} |")
    power = figures["power"]
    print("\n| k / k_Nyq | P_gen / P_real (mean) | var_gen / var_real |\n| --- | --- | --- |")
    for k, m, v in zip(power["k_over_nyquist"], power["mean_ratio"], power["var_ratio"]):
        print(f"| {k:.3f} | {m:.3f} | {v:.3f} |")
    print(f"\nworst |P ratio - 1|: {figures['pk_mean_half']:.3f} up to k_Nyq/2, {figures['pk_mean_all']:.3f} up to "
          f"k_Nyq; worst |variance ratio - 1| up to k_Nyq/2: {figures['pk_var_half']:.3f}; "
          f"scorecard {'PASS' if figures['passed'] else 'FAIL'}")
