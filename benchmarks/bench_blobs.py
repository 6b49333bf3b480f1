"""Gaussian-blob simulator throughput: the batched simulator vs a per-image, per-blob loop.

Target (issue 2): 10,000 images of 128 x 128 with 50 blobs in under 10 s on 2 CPU cores.
Run: ``.venv/bin/python benchmarks/bench_blobs.py [--n 10000]``; prints images/s and the ratio,
both measured in this run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import headline, timed

from astrogen.sims import get_simulator, iter_blocks, simulate_to_file
from astrogen.sims.blobs import FWHM_TO_SIGMA


def loop_baseline(n: int, size: int = 128, n_blobs: int = 50, fwhm: float = 6.0, seed: int = 0) -> np.ndarray:
    """What a straightforward script does: one image at a time, one blob at a time, full-image exp."""
    rng = np.random.default_rng(seed)
    sigma = fwhm * FWHM_TO_SIGMA
    rows, cols = np.mgrid[0:size, 0:size]
    out = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        for x, y in rng.uniform(-0.5, size - 0.5, size=(n_blobs, 2)):
            out[i, 0] += np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))
    return out



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-loop", type=int, default=200, help="images for the (slow) loop baseline")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    simulator = get_simulator("blobs", {"n_blobs": 50})
    memory, _ = timed(lambda: sum(len(b) for b in iter_blocks(simulator, args.n, seed=0)))
    with tempfile.TemporaryDirectory() as tmp:
        to_file, _ = timed(lambda: simulate_to_file("blobs", args.n, Path(tmp) / "b.h5", seed=0))
    loop, _ = timed(lambda: loop_baseline(args.n_loop))
    rate_memory, rate_file, rate_loop = args.n / memory, args.n / to_file, args.n_loop / loop
    print(f"batched, in memory : {args.n} images in {memory:6.2f} s  {rate_memory:10,.0f} images/s")
    print(f"batched, to HDF5   : {args.n} images in {to_file:6.2f} s  {rate_file:10,.0f} images/s")
    print(f"per-image loop     : {args.n_loop} images in {loop:6.2f} s  {rate_loop:10,.0f} images/s")
    print(f"speed-up of the batched simulator over the loop: {rate_memory / rate_loop:.0f}x")
    print(f"target: {args.n} images (50 blobs, 128x128) under 10 s -> "
          f"{'met' if to_file < 10 else 'NOT met'} ({to_file:.2f} s with writing)")
    headline(f"{args.n} images to HDF5", to_file, "s")
    headline("batched / loop speed", rate_memory / rate_loop, "x")


if __name__ == "__main__":
    main()
