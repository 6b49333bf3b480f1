"""Simulators of training sets; each registers under its name for ``astrogen simulate NAME``."""

import astrogen.sims.galactic_center
import astrogen.sims.galaxies
import astrogen.sims.matter
import astrogen.sims.microwave_sky  # noqa: F401  (registers the simulator)
from astrogen.sims import blobs  # noqa: F401  (registers the simulator)
from astrogen.sims.base import (
    Shard,
    SimSpec,
    Simulator,
    available,
    get_simulator,
    iter_blocks,
    simulate,
    simulate_to_file,
)

__all__ = [
    "Shard",
    "SimSpec",
    "Simulator",
    "available",
    "get_simulator",
    "iter_blocks",
    "simulate",
    "simulate_to_file",
]
