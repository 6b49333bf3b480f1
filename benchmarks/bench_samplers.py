"""Sample quality per sampler on one checkpoint: DDPM-1000 vs DDIM-50 vs DPM-Solver++-20.

Uses the demo's outputs (``run/final.ckpt`` and the held-out ``matter_test.h5``); runs the demo first if
the folder has none. For each sampler it draws the same number of maps with the same seed, scores them
against the held-out set (P(k) distance, pixel-PDF KS, mean offset) and prints the wall time relative
to DPM-Solver. Run:
``.venv/bin/python benchmarks/bench_samplers.py [--demo-dir astrogen-demo] [--n 256]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from astrogen.data import FieldSet
from astrogen.generate import sample_to_file
from astrogen.pipelines.demo import run_demo
from astrogen.stats.compare import compare

SAMPLERS = (("ddpm", 1000), ("ddim", 50), ("dpm", 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-dir", type=Path, default=Path("astrogen-demo"))
    parser.add_argument("--n", type=int, default=256, help="maps per sampler")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    checkpoint, real_path = args.demo_dir / "run" / "final.ckpt", args.demo_dir / "matter_test.h5"
    if not (checkpoint.is_file() and real_path.is_file()):
        print(f"no demo outputs in {args.demo_dir}: running the demo first")
        run_demo(args.demo_dir)
    with FieldSet(real_path) as fs:
        real, pixel_size = fs[:].images, fs.meta.pixel_size
    results = {}
    for sampler, steps in SAMPLERS:
        out = args.demo_dir / f"bench_{sampler}{steps}.h5"
        start = time.perf_counter()
        sample_to_file(checkpoint, out, n=args.n, sampler=sampler, steps=steps, seed=args.seed, overwrite=True)
        seconds = time.perf_counter() - start
        with FieldSet(out) as fs:
            card = compare(real, fs[:].images, stats=("power", "pixel_pdf", "mean"), pixel_size=pixel_size)
        results[sampler] = (steps, seconds, {row.statistic: row for row in card.rows})
    dpm_seconds = results["dpm"][1]
    print(f"{args.n} maps per sampler, scored against {len(real)} held-out maps ({checkpoint})")
    print(f"{'sampler':>8} {'steps':>5} {'seconds':>8} {'time/DPM':>8}  {'P(k) dist':>16} {'pixel KS':>16} "
          f"{'mean offset':>16}")
    for sampler, (steps, seconds, rows) in results.items():
        cells = "".join(f" {rows[s].distance:>8.4f} ± {rows[s].error:<5.3f}" for s in ("power", "pixel_pdf", "mean"))
        print(f"{sampler:>8} {steps:>5} {seconds:>8.1f} {seconds / dpm_seconds:>8.1f} {cells}")


if __name__ == "__main__":
    main()
