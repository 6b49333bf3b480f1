"""Galactic Center simulator throughput: the batched simulator vs per-image and per-source loops.

Target (issue 3): the gamma-ray report's sets, 8,192 train + 1,966 val + 3,072 test images of 64 x 64,
in under 60 s on 2 CPU cores. Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_galactic_center.py``
(``--rotate`` for randomly rotated skies); prints images/s, the total seconds and the speed-ups over the loops,
all measured in this run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import headline, timed
from scipy import ndimage

from astrogen.sims import get_simulator, iter_blocks, simulate_to_file
from astrogen.sims.galactic_center import FWHM_TO_SIGMA, TEMPLATES, broken_power_law_quantile, power_law_quantile

SETS = {"train": 8192, "val": 1966, "test": 3072}


def loop_baseline(simulator, n: int, per_source: bool = False, seed: int = 0) -> np.ndarray:
    """What a straightforward script does: one (unrotated) image at a time, its sources placed with
    ``rng.choice`` (all at once, or one source at a time with ``per_source``), blurred with
    ``ndimage.gaussian_filter`` and Poisson-sampled (same templates and distributions as the simulator)."""
    c = simulator.config
    rng = np.random.default_rng(seed)
    sigma = c.psf_fwhm_deg * FWHM_TO_SIGMA / simulator.pixel_deg
    out = np.zeros((n, 1, c.size, c.size), np.float32)

    def deposit(ps, density, fluxes):
        p = density.ravel() / density.sum()
        if per_source:
            for flux in fluxes:
                ps[rng.choice(len(p), p=p)] += flux
        else:
            np.add.at(ps, rng.choice(len(p), size=len(fluxes), p=p), fluxes)

    for i in range(n):
        mean = sum(rng.uniform(*getattr(c, f"a_{k}")) * simulator.templates[k] for k in TEMPLATES)
        n_disk = rng.integers(c.n_ps_disk[0], c.n_ps_disk[1] + 1)
        n_gc = rng.integers(c.n_ps_gc[0], c.n_ps_gc[1] + 1)
        ps = np.zeros(c.size * c.size)
        deposit(ps, simulator._densities[0], broken_power_law_quantile(
            rng.random(n_disk), c.disk_flux_min, c.disk_flux_break, c.disk_flux_max, c.disk_index_below,
            c.disk_index_above))
        deposit(ps, simulator._densities[1],
                power_law_quantile(rng.random(n_gc), c.gc_flux_min, c.gc_flux_max, c.gc_index))
        mean = mean + ndimage.gaussian_filter(ps.reshape(c.size, c.size), sigma, mode="constant")
        out[i, 0] = rng.poisson(mean)
    return out



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotate", action="store_true", help="randomly rotated skies")
    parser.add_argument("--n-loop", type=int, default=500, help="images for the per-image loop baseline")
    parser.add_argument("--n-source-loop", type=int, default=10, help="images for the per-source loop baseline")
    args = parser.parse_args()
    config = {"rotate": args.rotate}
    n = sum(SETS.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; rotate={args.rotate}")
    simulator = get_simulator("galactic_center", config)
    memory, _ = timed(lambda: [sum(len(b) for b in iter_blocks(simulator, size, seed=s))
                            for s, size in enumerate(SETS.values())])
    with tempfile.TemporaryDirectory() as tmp:
        to_file, _ = timed(lambda: [simulate_to_file("galactic_center", size, Path(tmp) / f"{name}.h5", seed=s,
                                                  config=config)
                                 for s, (name, size) in enumerate(SETS.items())])
    unrotated = get_simulator("galactic_center")
    loop, _ = timed(lambda: loop_baseline(unrotated, args.n_loop))
    source_loop, _ = timed(lambda: loop_baseline(unrotated, args.n_source_loop, per_source=True))
    rate_memory, rate_file = n / memory, n / to_file
    rate_loop, rate_source = args.n_loop / loop, args.n_source_loop / source_loop
    print(f"batched, in memory : {n} images in {memory:6.2f} s  {rate_memory:10,.0f} images/s")
    print(f"batched, to HDF5   : {n} images in {to_file:6.2f} s  {rate_file:10,.0f} images/s")
    print(f"per-image loop     : {args.n_loop} images in {loop:6.2f} s  {rate_loop:10,.0f} images/s (unrotated)")
    print(f"per-source loop    : {args.n_source_loop} images in {source_loop:6.2f} s  {rate_source:10,.0f} images/s"
          " (unrotated)")
    print(f"speed-up of the batched simulator: {rate_memory / rate_loop:.1f}x over the per-image loop, "
          f"{rate_memory / rate_source:.0f}x over the per-source loop")
    print(f"target: {n} images ({' + '.join(map(str, SETS.values()))}, 64x64) under 60 s -> "
          f"{'met' if to_file < 60 else 'NOT met'} ({to_file:.2f} s with writing)")
    headline(f"{n} images to HDF5", to_file, "s")
    headline("batched / per-image loop speed", rate_memory / rate_loop, "x")


if __name__ == "__main__":
    main()
