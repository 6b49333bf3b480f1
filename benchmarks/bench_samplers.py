"""Sampling speed and quality per sampler: DDPM-1000 vs DDIM-50 vs DPM-Solver++-20.

Speed (always): images/s of each sampler on the demo's network (`astrogen.pipelines.demo`: 0.7 M
parameters, 32 x 32 maps), one batch of ``--batch`` maps, best of ``--repeats``, measured side by side in
this run. The network is the demo checkpoint's when ``--demo-dir`` holds one, else an untrained one of the
same architecture (the cost of a step does not depend on the weights). DDPM's 1000 steps are not run in
full: ``--ddpm-steps`` DDPM steps are timed and the time per step is multiplied by 1000 (the lines say so).

Quality (only with the demo's outputs ``run/final.ckpt`` and ``matter_test.h5``; ``--run-demo`` makes them
first, about 10 minutes): for each sampler, ``--n`` maps with the same seed, all steps, scored against the
held-out set (P(k) distance, pixel-PDF KS, mean offset), with the wall time relative to DPM-Solver. Run:
``.venv/bin/python benchmarks/bench_samplers.py [--demo-dir astrogen-demo] [--run-demo] [--n 256]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _timing import headline, timed

from astrogen.data import FieldSet
from astrogen.generate import load_diffusion, sample_to_file
from astrogen.models.diffusion import DiffusionModule
from astrogen.pipelines.demo import DEMO_MATTER, demo_train_config, run_demo
from astrogen.stats.compare import compare

SAMPLERS = (("ddpm", 1000), ("ddim", 50), ("dpm", 20))


def demo_network(checkpoint: Path) -> tuple[DiffusionModule, str]:
    """(the demo checkpoint's module if it exists, else an untrained one of the demo's architecture, label)."""
    if checkpoint.is_file():
        return load_diffusion(checkpoint), f"trained ({checkpoint})"
    torch.manual_seed(0)
    model = demo_train_config(Path("unused.h5"), Path("unused"), minutes=0)["model"]
    size = DEMO_MATTER["tile_size"]
    return DiffusionModule(model=model, image_shape=[1, size, size]).eval(), "untrained, the demo's architecture"


def sampling_speed(module: DiffusionModule, batch: int, ddpm_steps: int, repeats: int) -> dict[str, float]:
    """Seconds to sample one batch of ``batch`` maps per sampler (DDPM: extrapolated to all its steps)."""
    module.sample(batch, torch.Generator().manual_seed(0), steps=2)  # warm-up (allocator, kernels)
    seconds = {}
    for _ in range(repeats):  # alternate the samplers, keep the best of each: the machine may be shared
        for sampler, steps in SAMPLERS:
            timed_steps = min(steps, ddpm_steps) if sampler == "ddpm" else steps
            t, _ = timed(lambda s=sampler, k=timed_steps: module.sample(
                batch, torch.Generator().manual_seed(0), sampler=s, steps=k))
            seconds[sampler] = min(seconds.get(sampler, float("inf")), t * steps / timed_steps)
    return seconds


def sample_quality(demo_dir: Path, n: int, seed: int) -> None:
    """Print the quality table: each sampler's maps scored against the demo's held-out maps."""
    checkpoint, real_path = demo_dir / "run" / "final.ckpt", demo_dir / "matter_test.h5"
    with FieldSet(real_path) as fs:
        real, pixel_size = fs[:].images, fs.meta.pixel_size
    results = {}
    for sampler, steps in SAMPLERS:
        out = demo_dir / f"bench_{sampler}{steps}.h5"
        start = time.perf_counter()
        sample_to_file(checkpoint, out, n=n, sampler=sampler, steps=steps, seed=seed, overwrite=True)
        seconds = time.perf_counter() - start
        with FieldSet(out) as fs:
            card = compare(real, fs[:].images, stats=("power", "pixel_pdf", "mean"), pixel_size=pixel_size)
        results[sampler] = (steps, seconds, {row.statistic: row for row in card.rows})
    dpm_seconds = results["dpm"][1]
    print(f"quality: {n} maps per sampler, scored against {len(real)} held-out maps ({checkpoint})")
    print(f"{'sampler':>8} {'steps':>5} {'seconds':>8} {'time/DPM':>8}  {'P(k) dist':>16} {'pixel KS':>16} "
          f"{'mean offset':>16}")
    for sampler, (steps, seconds, rows) in results.items():
        cells = "".join(f" {rows[s].distance:>8.4f} ± {rows[s].error:<5.3f}" for s in ("power", "pixel_pdf", "mean"))
        print(f"{sampler:>8} {steps:>5} {seconds:>8.1f} {seconds / dpm_seconds:>8.1f} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("astrogen-demo"))
    parser.add_argument("--run-demo", action="store_true", help="run the demo first if --demo-dir has no outputs")
    parser.add_argument("--n", type=int, default=256, help="maps per sampler for the quality table")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="maps per batch for the speed table")
    parser.add_argument("--ddpm-steps", type=int, default=50, help="DDPM steps timed for the speed table")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    checkpoint, real_path = args.demo_dir / "run" / "final.ckpt", args.demo_dir / "matter_test.h5"
    have_demo = checkpoint.is_file() and real_path.is_file()
    if not have_demo and args.run_demo:
        print(f"no demo outputs in {args.demo_dir}: running the demo first")
        run_demo(args.demo_dir)
        have_demo = True

    module, label = demo_network(checkpoint)
    params = sum(p.numel() for p in module.denoiser.parameters()) / 1e6
    seconds = sampling_speed(module, args.batch, args.ddpm_steps, args.repeats)
    print(f"speed: network {label}, {params:.2f} M parameters, {tuple(module.hparams.image_shape)} maps, batch "
          f"{args.batch}, torch threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"{'sampler':>8} {'steps':>5} {'s/batch':>8} {'images/s':>9} {'x DPM-20':>9}")
    for sampler, steps in SAMPLERS:
        note = f"  ({args.ddpm_steps} steps timed, x {steps / args.ddpm_steps:g})" \
            if sampler == "ddpm" and args.ddpm_steps < steps else ""
        print(f"{sampler:>8} {steps:>5} {seconds[sampler]:>8.2f} {args.batch / seconds[sampler]:>9.1f} "
              f"{seconds[sampler] / seconds['dpm']:>9.1f}{note}")
    for sampler, steps in SAMPLERS:
        headline(f"{sampler}-{steps} images/s", args.batch / seconds[sampler])
    if have_demo:
        sample_quality(args.demo_dir, args.n, args.seed)
    else:
        print(f"quality: skipped, no demo outputs in {args.demo_dir} (make demo, or pass --run-demo)")


if __name__ == "__main__":
    main()
