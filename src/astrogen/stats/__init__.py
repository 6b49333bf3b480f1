"""Physics statistics of maps and fields, and the scorecard comparing a generated set with a real one."""

from astrogen.stats.bispectrum import Bispectrum, angle_triangles, bispectrum, equilateral_triangles
from astrogen.stats.clusters import Clusters, clusters
from astrogen.stats.compare import REGISTRY, Row, Scorecard, compare, compare_files
from astrogen.stats.inference import (
    SegmentationScores,
    mean_absolute_error,
    relative_error,
    roc_auc,
    segmentation_scores,
)
from astrogen.stats.minkowski import Minkowski, gaussian_minkowski, minkowski_functionals
from astrogen.stats.morphology import Morphology, morphology
from astrogen.stats.onepoint import (
    Histogram,
    histograms,
    ks_statistic,
    mean_offset,
    moments,
    shared_edges,
    wasserstein1,
)
from astrogen.stats.peaks import PeakCounts, find_peaks, marginal_sums, peak_counts, stacked_profile
from astrogen.stats.power import (
    PowerSpectrum,
    correlation_coefficient,
    cross_spectrum,
    power_image,
    power_spectrum,
    welch_power,
)
from astrogen.stats.redshift import photoz_loss, photoz_metrics
from astrogen.stats.sky import SkyNoise, sky_noise

__all__ = [
    "REGISTRY",
    "Bispectrum",
    "Clusters",
    "Histogram",
    "Minkowski",
    "Morphology",
    "PeakCounts",
    "PowerSpectrum",
    "Row",
    "Scorecard",
    "SegmentationScores",
    "SkyNoise",
    "angle_triangles",
    "bispectrum",
    "clusters",
    "compare",
    "compare_files",
    "correlation_coefficient",
    "cross_spectrum",
    "equilateral_triangles",
    "find_peaks",
    "gaussian_minkowski",
    "histograms",
    "ks_statistic",
    "marginal_sums",
    "mean_absolute_error",
    "mean_offset",
    "minkowski_functionals",
    "moments",
    "morphology",
    "peak_counts",
    "photoz_loss",
    "photoz_metrics",
    "power_image",
    "power_spectrum",
    "relative_error",
    "roc_auc",
    "segmentation_scores",
    "shared_edges",
    "sky_noise",
    "stacked_profile",
    "wasserstein1",
    "welch_power",
]
