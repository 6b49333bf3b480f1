"""The scorecard each shipped pretrained model reaches: held-out maps simulated from boxes the model never saw
(the simulator and config of its training set, seed + 1), against ``--n`` samples (DPM-Solver++, 20 steps).

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

from _fidelity import fidelity, print_fidelity
from _timing import headline

import astrogen.pretrained as shipped
from astrogen.data import FieldMeta
from astrogen.generate import sample_to_file
from astrogen.sims import simulate_to_file


def held_out_and_generated(name: str, n: int, seed: int, out: Path) -> tuple[Path, Path]:
    """Simulate ``n`` held-out maps like the model's training set (seed + 1) and sample ``n`` from the model."""
    meta = FieldMeta.from_attrs(shipped.config(name)["hyper_parameters"]["data_meta"])
    real = simulate_to_file(meta.simulator, n, out / f"{name}-real.h5", seed=meta.seed + 1, config=meta.config,
                            overwrite=True)
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
            figures = fidelity(real, gen, seed=args.seed)
            print(f"\n### pretrained:{name}: {args.n} generated vs {args.n} held-out maps "
                  f"({time.perf_counter() - start:.0f} s)\n")
            print_fidelity(figures)
            headline(f"{name} worst |P ratio - 1| to k_Nyq/2", figures["pk_mean_half"])
            headline(f"{name} rows passed", sum(r[3] for r in figures["rows"].values()),
                     f"of {len(figures['rows'])}")


if __name__ == "__main__":
    main()
