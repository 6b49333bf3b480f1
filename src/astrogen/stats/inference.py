"""Metrics of inference networks: regression errors, point-source segmentation scores, reconstruction MSE.

All functions are batched over images (rows); none loops over images in Python.

Segmentation scores (gamma-ray report), per image, from the predicted probability ``prob`` and the
point-source mask ``mask`` (expected point-source counts per pixel after the PSF):

* **approach A**: every point-source pixel is a target, ``truth = mask > threshold``; the prediction is
  ``prob > cut``.
* **approach B**: N = the number of pixels predicted above the cut; the targets are the N brightest
  pixels of the mask (ties broken by pixel order), so B asks whether the network found the *brightest*
  point-source pixels, whatever their count.

Accuracy is the fraction of pixels whose binary prediction equals the target; ROC AUC is the probability
that a random target pixel scores higher than a random non-target pixel (Mann-Whitney U, tied scores
count 1/2). An image with no target pixels or no non-target pixels has no AUC (NaN, skipped in means).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from astrogen.errors import DataError

DEFAULT_CUT = 0.02  # probability above which a pixel is predicted to be a point-source pixel
# Mask counts above which a pixel is a point-source pixel: about the Poisson fluctuation of the diffuse
# background (~25 counts) of a default galactic-centre map (see `astrogen.models.segmentation`).
DEFAULT_THRESHOLD = 5.0


def _pair(pred, true, what: str) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.size == 0:
        raise DataError(f"{what}: prediction {pred.shape} and truth {true.shape} must be equal, non-empty shapes")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise DataError(f"{what}: inputs contain NaN or inf")
    return pred, true


def _rows(pred, true) -> tuple[np.ndarray, np.ndarray]:
    """Regression inputs as ``[N, T]`` (a 1D array is one target)."""
    pred, true = _pair(pred, true, "regression metrics")
    return (pred[:, None], true[:, None]) if pred.ndim == 1 else (pred, true)


def relative_error(pred, true) -> np.ndarray:
    """Mean relative error per target, mean |pred - true| / |true| over samples; ``[N, T]`` -> ``[T]``.

    Targets that can be 0 make it unbounded: use `mean_absolute_error` for those.
    """
    pred, true = _rows(pred, true)
    if np.any(true == 0):
        raise DataError("relative error: some true values are 0")
    return np.mean(np.abs(pred - true) / np.abs(true), axis=0)


def mean_absolute_error(pred, true) -> np.ndarray:
    """Mean |pred - true| per target (the targets' units); ``[N, T]`` -> ``[T]``."""
    pred, true = _rows(pred, true)
    return np.mean(np.abs(pred - true), axis=0)


def mse_per_image(pred, true) -> np.ndarray:
    """Mean squared error of each image ``[N, ...]`` -> ``[N]`` (units of the images squared)."""
    pred, true = _pair(pred, true, "MSE")
    return ((pred - true) ** 2).reshape(len(pred), -1).mean(1)


def _flat(x) -> np.ndarray:
    """Maps ``[N, ...]`` (or one ``[H, W]`` map) as rows ``[N, pixels]``."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    return x.reshape(len(x), -1)


def _auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(1)
    n_neg = labels.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(labels, ranks, 0).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _brightest_rows(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    order = np.argsort(-values, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(values.shape[1]), values.shape), axis=1)
    return rank < np.broadcast_to(np.asarray(n), (len(values),))[:, None]


def roc_auc(scores, labels) -> np.ndarray:
    """ROC AUC of each image: ``scores`` and boolean ``labels`` ``[N, ...]`` (or one map) -> ``[N]``.

    AUC = (sum of the ranks of the positives - n+ (n+ + 1) / 2) / (n+ n-), ranks averaged over ties;
    NaN where an image has only one class.
    """
    scores, labels = _pair(_flat(scores), _flat(labels), "ROC AUC")
    return _auc_rows(scores, labels.astype(bool))


def accuracy(predicted, labels) -> np.ndarray:
    """Fraction of pixels of each image where the boolean prediction equals the boolean target -> ``[N]``."""
    predicted, labels = _pair(_flat(predicted), _flat(labels), "accuracy")
    return np.mean(predicted.astype(bool) == labels.astype(bool), axis=1)


def brightest_pixels(mask, n) -> np.ndarray:
    """Boolean maps, shaped like ``mask`` ``[N, ...]``, marking the ``n[i]`` largest pixels of each
    ``mask[i]`` (ties broken by pixel order); ``n`` is one count or one per image."""
    mask = np.asarray(mask, dtype=np.float64)
    return _brightest_rows(_flat(mask), n).reshape(mask.shape)


def accuracy_cut(prob, mask, threshold: float = DEFAULT_THRESHOLD) -> float:
    """The cut on ``prob`` that maximises the mean approach-A accuracy against ``mask > threshold``.

    Choose it on validation images, never on the images it will score. All images have the same number of
    pixels, so the mean per-image accuracy is the pixel accuracy, (negatives with p <= cut + positives with
    p > cut) / pixels; one sort of each class gives it at every distinct probability at once. Returns the
    smallest best cut (0 when marking every pixel with p > 0 is best).
    """
    prob, mask = _pair(prob, mask, "accuracy cut")
    truth = mask > threshold
    negatives, positives = np.sort(prob[~truth]), np.sort(prob[truth])
    cuts = np.concatenate([[0.0], np.unique(prob)])
    correct = np.searchsorted(negatives, cuts, "right") + len(positives) - np.searchsorted(positives, cuts, "right")
    return float(cuts[np.argmax(correct)])


@dataclass
class SegmentationScores:
    """Per-image accuracy and ROC AUC of approaches A and B (arrays ``[N]``), and the settings used."""

    accuracy_a: np.ndarray
    auc_a: np.ndarray
    accuracy_b: np.ndarray
    auc_b: np.ndarray
    cut: float
    threshold: float

    def summary(self) -> dict[str, float]:
        """Mean and standard deviation over images of each score (NaN AUCs skipped)."""
        out = {}
        for name in ("accuracy_a", "auc_a", "accuracy_b", "auc_b"):
            values = getattr(self, name)
            out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            out[name + "_std"] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
        return out


def segmentation_scores(prob, mask, cut: float = DEFAULT_CUT,
                        threshold: float = DEFAULT_THRESHOLD) -> SegmentationScores:
    """Approach A and B scores of predicted point-source probabilities against a point-source mask.

    Parameters
    ----------
    prob : predicted probabilities ``[N, 1, H, W]`` (or ``[N, H, W]``, ``[H, W]``), in [0, 1].
    mask : expected point-source counts per pixel, same shape.
    cut : probability above which a pixel is predicted to be a point-source pixel.
    threshold : counts above which a mask pixel is a point-source pixel (approach A's target).
    """
    prob, mask = _pair(prob, mask, "segmentation scores")
    if prob.min() < 0 or prob.max() > 1:
        raise DataError("segmentation scores: probabilities must lie in [0, 1]")
    prob, mask = _flat(prob), _flat(mask)
    predicted = prob > cut
    truth_a = mask > threshold
    truth_b = _brightest_rows(mask, predicted.sum(1))
    return SegmentationScores((predicted == truth_a).mean(1), _auc_rows(prob, truth_a),
                              (predicted == truth_b).mean(1), _auc_rows(prob, truth_b), cut, threshold)
