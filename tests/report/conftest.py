"""Hand-built stand-ins for the `astrogen.stats` result dataclasses, and a small real `Scorecard`."""

from dataclasses import dataclass

import numpy as np
import pytest

from astrogen.stats.compare import Row, Scorecard


@dataclass
class Result:
    """Any stats result: attributes given as keywords (PowerSpectrum, Histogram, PeakCounts, ...)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


@pytest.fixture
def scorecard():
    return Scorecard([Row("power", 0.02, 0.01, 0.1, True, {"k_max": 3.0}),
                      Row("peaks", 0.5, 0.1, 0.2, False, {"note": "<b>too many</b>"})], {})


@pytest.fixture
def rng():
    return np.random.default_rng(0)
