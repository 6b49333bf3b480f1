"""Hand-built stand-ins for the `astrogen.stats` result dataclasses (same field names as the contract)."""

from dataclasses import dataclass, field

import numpy as np
import pytest


@dataclass
class Result:
    """Any stats result: attributes given as keywords (PowerSpectrum, Histogram, PeakCounts, ...)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


@dataclass
class Row:
    statistic: str
    distance: float
    error: float
    tolerance: float
    passed: bool
    detail: dict = field(default_factory=dict)


@dataclass
class Scorecard:
    rows: list
    provenance: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def to_json(self, path):
        import json

        with open(path, "w") as f:
            json.dump({"passed": self.passed, "rows": [vars(r) for r in self.rows]}, f)


@pytest.fixture
def scorecard():
    return Scorecard([Row("power", 0.02, 0.01, 0.1, True, {"k_max": 3.0}),
                      Row("peaks", 0.5, 0.1, 0.2, False, {"note": "<b>too many</b>"})])


@pytest.fixture
def rng():
    return np.random.default_rng(0)
