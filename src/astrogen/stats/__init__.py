"""Physics statistics of maps and fields, and the scorecard comparing a generated set with a real one."""

from astrogen.stats.bispectrum import Bispectrum, angle_triangles, bispectrum, equilateral_triangles
from astrogen.stats.compare import REGISTRY, Row, Scorecard, compare, compare_files
from astrogen.stats.onepoint import (
    Histogram,
    histograms,
    ks_statistic,
    mean_offset,
    moments,
    shared_edges,
    wasserstein1,
)
from astrogen.stats.power import (
    PowerSpectrum,
    correlation_coefficient,
    cross_spectrum,
    power_image,
    power_spectrum,
    welch_power,
)
from astrogen.stats.redshift import photoz_loss, photoz_metrics

__all__ = [
    "REGISTRY", "Bispectrum", "Histogram", "PowerSpectrum", "Row", "Scorecard", "angle_triangles", "bispectrum",
    "compare", "compare_files", "correlation_coefficient", "cross_spectrum", "equilateral_triangles", "histograms",
    "ks_statistic", "mean_offset", "moments", "photoz_loss", "photoz_metrics", "power_image", "power_spectrum",
    "shared_edges", "wasserstein1", "welch_power",
]
