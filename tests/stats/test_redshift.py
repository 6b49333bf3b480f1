"""Photo-z metrics on hand-computed values."""

import numpy as np
import pytest

from astrogen.errors import DataError
from astrogen.stats.redshift import photoz_loss, photoz_metrics


def test_photoz_loss_and_metrics_by_hand():
    z_true = np.array([1.0, 1.0, 0.0, 0.0])
    z_pred = np.array([1.2, 1.0, 0.15, -0.3])  # dz = 0.1, 0, 0.15, -0.3
    np.testing.assert_allclose(photoz_loss(z_pred, z_true), [4 / 13, 0.0, 0.5, 0.8])
    m = photoz_metrics(z_pred, z_true)
    assert m["loss"] == pytest.approx((4 / 13 + 1.3) / 4)
    assert m["bias"] == pytest.approx(-0.0125)
    # median dz = 0.05; |dz - 0.05| = 0.05, 0.05, 0.1, 0.35 -> median 0.075
    assert m["sigma_nmad"] == pytest.approx(1.4826 * 0.075)
    assert m["outlier_fraction"] == pytest.approx(0.25)  # |dz| > 0.15 strictly: only -0.3


def test_photoz_rejects_bad_input():
    with pytest.raises(DataError):
        photoz_metrics([1.0, 2.0], [1.0])
    with pytest.raises(DataError):
        photoz_loss([np.nan], [1.0])
