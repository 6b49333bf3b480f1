"""Statistics throughput: batched P(k) and the whole scorecard vs a straightforward per-map loop.

Targets (issue 5): P(k) of 10,000 maps of 64 x 64 in under 2 s; the scorecard (all but morphology) for
1,000 vs 1,000 maps of 64 x 64 in under 20 s. Run:
``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_stats.py [--n 10000] [--n-score 1000]``;
prints the times and the ratios to the loops, both measured in this run.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import headline, timed

from astrogen.stats.compare import DEFAULT_STATS, REGISTRY, SetInfo, compare
from astrogen.stats.power import power_spectrum


def loop_power(maps: np.ndarray) -> np.ndarray:
    """What a straightforward script does: one map at a time, numpy FFT, histogram-binned |F|^2."""
    n = maps.shape[-1]
    k = 2 * np.pi * np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    edges = 2 * np.pi / n * (np.arange(n // 2 + 1) + 0.5)
    modes = np.histogram(k, edges)[0]
    out = []
    for image in maps[:, 0]:
        p = np.abs(np.fft.fft2(image)) ** 2 / n**2
        out.append(np.histogram(k, edges, weights=p)[0] / modes)
    return np.array(out)



def gaussian_maps(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(rng.normal(size=(n, 1, size, size)).astype(np.float32))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    return np.fft.irfft2(f * np.exp(-((k / 0.25) ** 2)), s=(size, size)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-score", type=int, default=1_000)
    parser.add_argument("--n-loop", type=int, default=250, help="maps per set in the per-map loop")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")

    maps = gaussian_maps(args.n, 64, seed=0)
    power_spectrum(maps[:16])  # warm-up (allocator, FFT plans)
    batched, spectrum = timed(lambda: power_spectrum(maps))
    looped, reference = timed(lambda: loop_power(maps))
    np.testing.assert_allclose(spectrum.power[:, 0], reference, rtol=1e-3, atol=1e-5 * reference.max())
    print(f"P(k) of {args.n} maps 64x64: batched {batched:.2f} s (target < 2 s), per-map loop {looped:.2f} s, "
          f"ratio {looped / batched:.1f}x")

    real, gen = gaussian_maps(args.n_score, 64, seed=1), gaussian_maps(args.n_score, 64, seed=2)
    seconds, card = timed(lambda: compare(real, gen, stats=DEFAULT_STATS, n_bootstrap=200))
    print(f"scorecard {list(DEFAULT_STATS)} for {args.n_score} vs {args.n_score} maps 64x64: {seconds:.2f} s "
          f"(target < 20 s)")
    for row in card.rows:
        print(f"  {row.statistic:>10}: {row.distance:.4g} +- {row.error:.2g} (tol {row.tolerance:g}) "
              f"{'pass' if row.passed else 'FAIL'}")
    # The loop baseline: the same per-map summaries (the scorecard's whole cost but the cheap bootstrap),
    # computed one map at a time on the first n_loop maps of each set, compared per map.
    n_loop = min(args.n_loop, args.n_score)
    ctx = {"pixel_size": 1.0, "periodic": True, "real": SetInfo.from_batches([real]),
           "generated": SetInfo.from_batches([gen])}
    maps = np.concatenate([real[:n_loop], gen[:n_loop]])
    loop_seconds, _ = timed(lambda: [REGISTRY[name].summary(m[None], ctx) for name in DEFAULT_STATS for m in maps])
    per_map_loop, per_map_batched = loop_seconds / len(maps), seconds / (2 * args.n_score)
    print(f"per-map loop of the same statistics on {len(maps)} maps: {loop_seconds:.2f} s = {1e3 * per_map_loop:.2f} "
          f"ms/map vs {1e3 * per_map_batched:.2f} ms/map batched (with bootstrap): ratio "
          f"{per_map_loop / per_map_batched:.1f}x")
    headline(f"P(k) of {args.n} maps", batched, "s")
    headline("P(k) batched / loop speed", looped / batched, "x")
    headline(f"scorecard {args.n_score} vs {args.n_score}", seconds, "s")
    headline("scorecard batched / loop speed", per_map_loop / per_map_batched, "x")

if __name__ == "__main__":
    main()
