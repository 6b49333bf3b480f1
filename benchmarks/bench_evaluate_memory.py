"""Peak memory of `astrogen evaluate` on two FieldSets of 10,000 maps of 1 x 128 x 128 (issue 9: under 4 GiB).

Writes two sets of Gaussian random fields with power-law spectra (P(k) ~ k^-2 and k^-2.2), runs
``astrogen evaluate --n-max N`` in a subprocess, and prints its peak resident memory (``ru_maxrss`` of that
child, from ``os.wait4``) and wall time. For reference, on ``--reference-n`` maps per set (default 2,000: in
memory, 10,000 would need about 25 GiB), it runs the streamed evaluate again and, also in a subprocess, what
evaluate did before it streamed: read both sets into memory (float32, as stored) and call
`astrogen.stats.compare.compare` on the arrays (the scorecard only; the old report then recomputed the
figures' statistics on top). Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python
benchmarks/bench_evaluate_memory.py [--n 10000] [--reference-n 2000] [--dir DIR]`` (``--reference-n 0``
skips the reference).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from astrogen.data import FieldMeta, FieldSetWriter
from astrogen.stats.compare import DEFAULT_STATS

CHUNK = 500  # maps generated and written at a time

REFERENCE = """
import sys
import numpy as np
from astrogen.data import FieldSet
from astrogen.stats.compare import DEFAULT_STATS, compare

n = int(sys.argv[3])
with FieldSet(sys.argv[1]) as real, FieldSet(sys.argv[2]) as gen:
    maps = [fs[:n].images for fs in (real, gen)]
    card = compare(*maps, stats=DEFAULT_STATS, pixel_size=real.meta.pixel_size, periodic=True)
print(" ".join(f"{row.statistic}={row.distance:.6g}" for row in card.rows))
"""


def write_set(path: Path, n: int, size: int, slope: float, seed: int) -> Path:
    """``n`` periodic Gaussian fields [1, size, size] with P(k) ~ k^slope, written ``CHUNK`` maps at a time."""
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    amplitude = (np.where(k > 0, k, np.inf) ** (slope / 2)).astype(np.float32)
    meta = FieldMeta(channels=["kappa"], units="dimensionless", pixel_size=1.0, pixel_unit="arcmin", periodic=True)
    with FieldSetWriter(path, (1, size, size), meta) as writer:
        for start in range(0, n, CHUNK):
            noise = np.fft.rfft2(rng.normal(size=(min(CHUNK, n - start), 1, size, size)).astype(np.float32))
            writer.append(np.fft.irfft2(noise * amplitude, s=(size, size)).astype(np.float32))
    return path


def measured(command: list[str]) -> tuple[float, float, str]:
    """(peak RSS of the child in GiB, wall seconds, its stdout) of one subprocess."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[:3]} failed:\n{out}")
    return usage.ru_maxrss / 2**20, seconds, out  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="maps per set, all evaluated (--n-max N)")
    parser.add_argument("--size", type=int, default=128, help="map side in pixels")
    parser.add_argument("--reference-n", type=int, default=2000,
                        help="maps per set for the in-memory reference, also evaluated streamed (0 skips it); "
                             "in memory, 10,000 maps of 128 x 128 per set need about 25 GiB")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the two sets (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        real, gen = (folder / f"{name}_{args.n}x{args.size}.h5" for name in ("real", "gen"))
        if not real.exists():
            write_set(real, args.n, args.size, -2.0, seed=0)
        if not gen.exists():
            write_set(gen, args.n, args.size, -2.2, seed=1)
        print(f"{args.n} maps per set of 1 x {args.size} x {args.size}; statistics {', '.join(DEFAULT_STATS)}")
        n_ref = args.n if args.reference_n is None else args.reference_n
        streamed = {}
        for n in dict.fromkeys([args.n, *([n_ref] if n_ref else [])]):
            streamed[n] = measured([sys.executable, "-c", "from astrogen.cli import main; main()", "evaluate",
                                    str(real), str(gen), "--out", str(folder / f"eval_{n}"), "--n-max", str(n)])
            print(f"astrogen evaluate --n-max {n} (streamed): peak RSS {streamed[n][0]:.2f} GiB, "
                  f"{streamed[n][1]:.0f} s" + (f" (target < 4 GiB: {'met' if streamed[n][0] < 4 else 'MISSED'})"
                                                if n == args.n else ""))
        if n_ref:
            rss, seconds, _ = measured([sys.executable, "-c", REFERENCE, str(real), str(gen), str(n_ref)])
            print(f"in memory: compare() on {n_ref} + {n_ref} maps read at once: peak RSS {rss:.2f} GiB, "
                  f"{seconds:.0f} s; in-memory / streamed at {n_ref} maps: {rss / streamed[n_ref][0]:.1f}x memory, "
                  f"{seconds / streamed[n_ref][1]:.2f}x time (the streamed run also draws the report)")

if __name__ == "__main__":
    main()
