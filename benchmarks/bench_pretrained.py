"""The scorecard each shipped pretrained model reaches: held-out maps simulated from boxes the model never saw
(the simulator and config of its training set, seed + 1; spread over at least 4 boxes, so that the held-out
mean P(k) is not one box's cosmic variance), against ``--n`` samples (DPM-Solver++, 20 steps).

Prints the full scorecard, P_gen / P_real of the mean P(k) and of its map-to-map variance per k, and the issue's
figures (worst deviation up to k_Nyq / 2 and k_Nyq). These are the figures in each model's card (MODEL.md).
About a minute per model on 2 CPU cores. Run:
``.venv/bin/python benchmarks/bench_pretrained.py [--name matter-demo] [--n 1000] [--seed 0] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _fidelity import fidelity, print_fidelity
from _timing import headline

import astrogen.pretrained as shipped
from astrogen.data import FieldMeta, FieldSet
from astrogen.generate import sample_to_file
from astrogen.sims import get_simulator, simulate_to_file
from astrogen.stats.compare import DEFAULT_STATS

MIN_BLOCKS = 4
# The rows each training set is scored on (default: the scorecard's): the blob experiments' own statistics
# (microwave-sky report, Han et al. 2021: pixel histogram, marginal sums, stacked peak profile, 2D power, peaks).
STATS = {"blobs": ("pixel_pdf", "marginal_sums", "peak_profile", "power", "peaks", "mean", "out_of_range")}


def held_out(meta: FieldMeta, n: int, path: Path) -> Path:
    """``n`` maps simulated like a training set (``meta``: simulator, config, seed) from seed + 1, spread evenly
    over about `MIN_BLOCKS` simulator blocks (boxes), so that the held-out mean P(k) is not one box's cosmic
    variance. An existing ``path`` made the same way (same simulator, config, seed and size) is reused."""
    if path.exists():
        with FieldSet(path) as fs:
            old = fs.meta
            if (len(fs), old.simulator, old.config, old.seed) == (n, meta.simulator, meta.config, meta.seed + 1):
                print(f"reusing the held-out set {path}")
                return path
    block = get_simulator(meta.simulator, meta.config).block_size
    stride = max(1, MIN_BLOCKS * block // n)  # every stride-th map of n * stride consecutive ones
    if stride == 1:
        return simulate_to_file(meta.simulator, n, path, seed=meta.seed + 1, config=meta.config, overwrite=True)
    full = simulate_to_file(meta.simulator, n * stride, path.with_name(f"{path.stem}-all.h5"), seed=meta.seed + 1,
                            config=meta.config, overwrite=True, progress=True)
    with FieldSet(full) as fs, FieldSet.create(path, fs.sample_shape, fs.meta, param_names=fs.param_names,
                                               overwrite=True) as writer:
        thinned = fs[np.arange(0, n * stride, stride)]
        writer.append(thinned.images, thinned.params)
    full.unlink()
    return path


def held_out_and_generated(name: str, n: int, seed: int, out: Path) -> tuple[Path, Path]:
    """The `held_out` set of a shipped model's training data and ``n`` samples of the model (DPM-Solver++, 20
    steps, for diffusion models)."""
    meta = FieldMeta.from_attrs(shipped.config(name)["hyper_parameters"]["data_meta"])
    real = held_out(meta, n, out / f"{name}-real.h5")
    gen = sample_to_file(f"pretrained:{name}", out / f"{name}-gen.h5", n=n, sampler="dpm", steps=20, seed=seed,
                         overwrite=True)
    return real, gen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", nargs="+", default=shipped.available(), help="shipped models [all]")
    parser.add_argument("--n", type=int, default=1000, help="held-out and generated maps")
    parser.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    parser.add_argument("--out", type=Path, default=None, help="keep the sets here [a temporary folder]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in args.name:
            start = time.perf_counter()
            real, gen = held_out_and_generated(name, args.n, args.seed, out)
            simulator = shipped.config(name)["hyper_parameters"]["data_meta"]["simulator"]
            figures = fidelity(real, gen, seed=args.seed, stats=STATS.get(simulator, DEFAULT_STATS))
            print(f"\n### pretrained:{name}: {args.n} generated vs {args.n} held-out maps "
                  f"({time.perf_counter() - start:.0f} s)\n")
            print_fidelity(figures)
            headline(f"{name} worst |P ratio - 1| to k_Nyq/2", figures["pk_mean_half"])
            headline(f"{name} rows passed", sum(r[3] for r in figures["rows"].values()),
                     f"of {len(figures['rows'])}")


if __name__ == "__main__":
    main()
