"""Structure statistics throughput: peaks, Minkowski functionals and clusters on a batch of maps.

Target (issue 5): the whole scorecard but morphology for 1,000 + 1,000 maps of 64 x 64 in under 20 s on
2 CPU cores, so these three families should take a few seconds for 2,000 maps.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stats_structure.py [--n 2000]``; prints the best
of ``--repeat`` wall times per function, and the ratio to calling the same functions one map at a time
(measured on ``--n-loop`` maps and scaled).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _timing import headline
from scipy import ndimage

from astrogen.stats.clusters import clusters
from astrogen.stats.minkowski import minkowski_functionals
from astrogen.stats.peaks import peak_counts, stacked_profile


def best_time(fn, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls, seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-loop", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    maps = ndimage.gaussian_filter(rng.normal(size=(args.n, 1, args.size, args.size)), 2.0, axes=(-2, -1),
                                   mode="wrap")
    jobs = {
        "peak_counts": lambda x: peak_counts(x, periodic=True),
        "peak_counts (beam)": lambda x: peak_counts(x, beam_fwhm=3.0, periodic=True),
        "stacked_profile": lambda x: stacked_profile(x, periodic=True),
        "minkowski (25 thresholds)": lambda x: minkowski_functionals(x, periodic=True),
        "clusters (1 threshold)": lambda x: clusters(x, periodic=True),
        "clusters (5 thresholds)": lambda x: clusters(x, thresholds=np.linspace(0, 2, 5), periodic=True),
    }
    total = total_loop = 0.0
    print(f"{args.n} maps of {args.size} x {args.size}, best of {args.repeat}")
    for name, job in jobs.items():
        batched = best_time(lambda job=job: job(maps), args.repeat)
        looped = best_time(lambda job=job: [job(maps[i : i + 1]) for i in range(args.n_loop)], 1) * args.n / args.n_loop
        total, total_loop = total + batched, total_loop + looped
        print(f"{name:28s} {batched:7.3f} s   per-map loop {looped:7.2f} s   ratio {looped / batched:6.1f}")
    print(f"{'total':28s} {total:7.3f} s   per-map loop {total_loop:7.2f} s   ratio {total_loop / total:6.1f}")
    headline(f"all six on {args.n} maps", total, "s")
    headline("batched / per-map loop speed", total_loop / total, "x")


if __name__ == "__main__":
    main()
