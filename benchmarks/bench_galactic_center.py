"""Galactic Center simulator throughput: the batched simulator vs a per-image loop.

Target (issue 3): the gamma-ray report's sets, 8,192 train + 1,966 val + 3,072 test images of 64 x 64,
in under 60 s on 2 CPU cores. Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_galactic_center.py``
(``--rotate`` for randomly rotated skies); prints images/s, the total seconds and the speed-up over the loop,
all measured in this run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from astrogen.sims import get_simulator, iter_blocks, simulate_to_file
from astrogen.sims.galactic_center import FWHM_TO_SIGMA, TEMPLATES, broken_power_law_quantile, power_law_quantile

SETS = {"train": 8192, "val": 1966, "test": 3072}


def loop_baseline(simulator, n: int, seed: int = 0) -> np.ndarray:
    """What a straightforward script does: one (unrotated) image at a time, its sources drawn as arrays
    with ``rng.choice``, deposited with ``np.add.at``, blurred with ``ndimage.gaussian_filter`` and
    Poisson-sampled (same templates and distributions as the simulator)."""
    c = simulator.config
    rng = np.random.default_rng(seed)
    disk_p, gc_p = (d.ravel() / d.sum() for d in simulator._densities)
    sigma = c.psf_fwhm_deg * FWHM_TO_SIGMA / simulator.pixel_deg
    out = np.zeros((n, 1, c.size, c.size), np.float32)
    for i in range(n):
        mean = sum(rng.uniform(*getattr(c, f"a_{k}")) * simulator.templates[k] for k in TEMPLATES)
        n_disk = rng.integers(c.n_ps_disk[0], c.n_ps_disk[1] + 1)
        n_gc = rng.integers(c.n_ps_gc[0], c.n_ps_gc[1] + 1)
        ps = np.zeros(c.size * c.size)
        np.add.at(ps, rng.choice(len(disk_p), size=n_disk, p=disk_p), broken_power_law_quantile(
            rng.random(n_disk), c.disk_flux_min, c.disk_flux_break, c.disk_flux_max, c.disk_index_below,
            c.disk_index_above))
        np.add.at(ps, rng.choice(len(gc_p), size=n_gc, p=gc_p),
                  power_law_quantile(rng.random(n_gc), c.gc_flux_min, c.gc_flux_max, c.gc_index))
        mean = mean + ndimage.gaussian_filter(ps.reshape(c.size, c.size), sigma, mode="constant")
        out[i, 0] = rng.poisson(mean)
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotate", action="store_true", help="randomly rotated skies")
    parser.add_argument("--n-loop", type=int, default=500, help="images for the (slow) loop baseline")
    args = parser.parse_args()
    config = {"rotate": args.rotate}
    n = sum(SETS.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; rotate={args.rotate}")
    simulator = get_simulator("galactic_center", config)
    memory = timed(lambda: [sum(len(b) for b in iter_blocks(simulator, size, seed=s))
                            for s, size in enumerate(SETS.values())])
    with tempfile.TemporaryDirectory() as tmp:
        to_file = timed(lambda: [simulate_to_file("galactic_center", size, Path(tmp) / f"{name}.h5", seed=s,
                                                  config=config)
                                 for s, (name, size) in enumerate(SETS.items())])
    loop = timed(lambda: loop_baseline(simulator, args.n_loop))
    rate_memory, rate_file, rate_loop = n / memory, n / to_file, args.n_loop / loop
    print(f"batched, in memory : {n} images in {memory:6.2f} s  {rate_memory:10,.0f} images/s")
    print(f"batched, to HDF5   : {n} images in {to_file:6.2f} s  {rate_file:10,.0f} images/s")
    print(f"per-image loop     : {args.n_loop} images in {loop:6.2f} s  {rate_loop:10,.0f} images/s")
    print(f"speed-up of the batched simulator over the loop: {rate_memory / rate_loop:.0f}x")
    print(f"target: {n} images ({' + '.join(map(str, SETS.values()))}, 64x64) under 60 s -> "
          f"{'met' if to_file < 60 else 'NOT met'} ({to_file:.2f} s with writing)")


if __name__ == "__main__":
    main()
