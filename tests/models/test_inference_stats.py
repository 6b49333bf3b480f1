"""Inference metrics against hand-worked examples (stats/inference.py)."""

import numpy as np
import pytest

from astrogen.errors import DataError
from astrogen.stats.inference import (
    accuracy,
    accuracy_cut,
    brightest_pixels,
    mean_absolute_error,
    relative_error,
    roc_auc,
    segmentation_scores,
)


def test_relative_and_absolute_errors_by_hand():
    true = np.array([[1.0, 10.0], [2.0, 20.0]])
    pred = np.array([[1.1, 8.0], [1.0, 20.0]])
    np.testing.assert_allclose(relative_error(pred, true), [(0.1 + 0.5) / 2, (0.2 + 0) / 2])
    np.testing.assert_allclose(mean_absolute_error(pred, true), [(0.1 + 1.0) / 2, 1.0])
    with pytest.raises(DataError, match="0"):
        relative_error([1.0], [0.0])


def test_roc_auc_hand_worked_with_ties_and_one_class():
    # positives score 0.9, 0.4; negatives 0.5, 0.1: of 4 pairs, 3 ordered right -> 0.75.
    scores = np.array([[0.9, 0.4, 0.5, 0.1], [0.3, 0.3, 0.3, 0.3], [0.1, 0.2, 0.3, 0.4]])
    labels = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
    auc = roc_auc(scores[:, None], labels[:, None])  # [N, 1, 4] maps
    np.testing.assert_allclose(auc[:2], [0.75, 0.5])  # all tied: each pair counts 1/2
    assert np.isnan(auc[2])
    # against the pair count on random data
    rng = np.random.default_rng(0)
    s, lab = rng.integers(0, 5, (3, 40)).astype(float), rng.uniform(size=(3, 40)) < 0.4
    pairs = [np.mean((si[li][:, None] > si[~li][None]) + 0.5 * (si[li][:, None] == si[~li][None]))
             for si, li in zip(s, lab)]
    np.testing.assert_allclose(roc_auc(s[:, None], lab[:, None]), pairs)
    assert roc_auc(s[0].reshape(5, 8), lab[0].reshape(5, 8)) == pytest.approx(pairs[0])  # one [H, W] map


def test_brightest_pixels_and_approaches_a_and_b_by_hand():
    # one 2 x 3 image: mask counts and predicted probabilities
    mask = np.array([[[5.0, 0.5, 3.0], [0.0, 2.0, 0.1]]])
    prob = np.array([[[0.9, 0.5, 0.01], [0.3, 0.015, 0.0]]])
    np.testing.assert_array_equal(brightest_pixels(mask, 2), [[[True, False, True], [False, False, False]]])
    scores = segmentation_scores(prob, mask, cut=0.02, threshold=1.0)
    # A: truth = mask > 1 -> {5, 3, 2}; predicted = prob > 0.02 -> {0.9, 0.5, 0.3}: agree on 0.9 and 0.0 -> 2/6
    np.testing.assert_allclose(scores.accuracy_a, [2 / 6])
    # AUC A: positives 0.9, 0.01, 0.015 vs negatives 0.5, 0.3, 0.0: pairs won 3 + 1 + 1 = 5 of 9
    np.testing.assert_allclose(scores.auc_a, [5 / 9])
    # B: N = 3 predicted -> truth = 3 brightest {5, 3, 2} (same as A here)
    np.testing.assert_allclose(scores.accuracy_b, [2 / 6])
    # a cut of 0.4 predicts 2 pixels (0.9, 0.5); B's truth = {5, 3}: agree on 0.9 and the three negatives
    b = segmentation_scores(prob, mask, cut=0.4)
    np.testing.assert_allclose(b.accuracy_b, [4 / 6])
    np.testing.assert_allclose(b.auc_b, [(4 + 1) / 8])  # positives 0.9, 0.01 vs 0.5, 0.3, 0.015, 0.0
    summary = segmentation_scores(np.concatenate([prob, prob]), np.concatenate([mask, mask]), threshold=1.0).summary()
    assert summary["accuracy_a"] == pytest.approx(2 / 6) and summary["accuracy_a_std"] == 0


def test_accuracy_cut_by_hand_and_against_a_scan():
    # threshold 1: positives (mask 5, 3, 2) score 0.9, 0.6, 0.2; negatives 0.5, 0.3, 0.0. Pixels right at
    # cut 0: 3 + 1, 0.2: 2 + 1, 0.3: 2 + 2, 0.5: 2 + 3 (the best), 0.6: 1 + 3, 0.9: 0 + 3.
    mask = np.array([[[5.0, 0.5, 3.0], [0.0, 2.0, 0.1]]])
    prob = np.array([[[0.9, 0.5, 0.6], [0.3, 0.2, 0.0]]])
    cut = accuracy_cut(prob, mask, threshold=1.0)
    assert cut == 0.5
    assert segmentation_scores(prob, mask, cut=cut, threshold=1.0).accuracy_a == pytest.approx(5 / 6)
    # random maps: no cut on a fine grid does better than the chosen one
    rng = np.random.default_rng(1)
    mask = rng.exponential(2.0, (5, 8, 8))
    prob = np.clip(mask / 10 + rng.normal(0, 0.1, mask.shape), 0, 1)
    best = segmentation_scores(prob, mask, cut=accuracy_cut(prob, mask)).summary()["accuracy_a"]
    scan = max(segmentation_scores(prob, mask, cut=c).summary()["accuracy_a"] for c in np.linspace(0, 1, 401))
    assert best >= scan - 1e-12 and best > segmentation_scores(prob, mask).summary()["accuracy_a"]


def test_accuracy_batched_and_bad_input():
    np.testing.assert_allclose(accuracy([[[1, 0]], [[1, 1]]], [[[1, 1]], [[1, 1]]]), [0.5, 1.0])
    with pytest.raises(DataError, match="shapes"):
        roc_auc(np.zeros((2, 1, 4)), np.zeros((2, 1, 5)))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        segmentation_scores(np.full((1, 2, 2), 2.0), np.ones((1, 2, 2)))
