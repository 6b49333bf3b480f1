"""Particle-mesh matter simulator timing: one box of n_grid^3 particles evolved from z_init to z = 0.

Target (issue 4): 128^3 particles, 10 kick-drift-kick steps from z = 9 to z = 0, under 60 s on 2 CPU cores.
Run: ``.venv/bin/python benchmarks/bench_matter.py [--n-grid 128] [--n-steps 10] [--device cpu]``; prints
the time of one box, and its P(k) against linear growth of the same initial field (the figures in the
`astrogen.sims.matter` docstring).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _timing import headline

from astrogen.sims import get_simulator
from astrogen.sims.matter import ParticleMesh, power_spectrum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-grid", type=int, default=128)
    parser.add_argument("--n-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    sim = get_simulator("matter", {"n_grid": args.n_grid, "n_steps": args.n_steps, "device": args.device,
                                   "tile_size": args.n_grid // 2})
    warm = time.perf_counter()  # numba compiles the CIC kernels on the first call (then cached on disk): not timed
    mesh = ParticleMesh(8, 8.0, args.device)
    mesh.gravity(mesh.lattice(), 0.3)
    mesh.paint(mesh.lattice(), torch.float64)
    print(f"CIC kernels: first call (compile or cache load) {time.perf_counter() - warm:.1f} s, not timed")
    start = time.perf_counter()
    delta, cosmo = sim.density(np.random.default_rng(0))
    tiles = sim.tiles(delta).cpu()
    elapsed = time.perf_counter() - start
    k, power, _ = power_spectrum(delta, sim.config.box_size, deconvolve_cic=True)
    # The same initial field grown linearly to the output redshift (the density() draws, replayed).
    rng = np.random.default_rng(0)
    cosmo_again = sim.cosmology(rng)
    noise = rng.standard_normal((args.n_grid,) * 3, dtype=np.float32)
    c = sim.config
    linear_k = sim.mesh.linear_field(noise, lambda q: cosmo_again.power(q, z=c.redshift, wiggles=c.wiggles))
    _, linear, _ = power_spectrum(torch.fft.irfftn(linear_k, s=(args.n_grid,) * 3), sim.config.box_size)
    same_seed = (power / linear).cpu().numpy()
    k_nyq = np.pi * args.n_grid / sim.config.box_size
    low, mid = k.cpu().numpy() < 0.1 * k_nyq, (k.cpu().numpy() > 0.13 * k_nyq) & (k.cpu().numpy() < 0.5 * k_nyq)
    print(f"P(k) / linear P(k) of the same initial field: k < 0.1 k_Nyq {same_seed[low].min():.3f} to "
          f"{same_seed[low].max():.3f}; 0.13-0.5 k_Nyq {same_seed[mid].min():.3f} to {same_seed[mid].max():.3f}")
    print(f"{args.n_grid}^3 particles, {args.n_steps} steps z={sim.config.z_init:g} -> {sim.config.redshift:g}: "
          f"{elapsed:.2f} s for one box ({len(tiles)} tiles of {tuple(tiles.shape[-2:])})")
    print(f"delta: min {delta.min().item():.3f}, max {delta.max().item():.1f}, "
          f"std {delta.std().item():.3f}")
    ratio = power.cpu().numpy() / cosmo.power(k.cpu().numpy())
    print("P(k) / P_lin(k) at k =", ", ".join(f"{kk:.3f}: {r:.2f}" for kk, r in zip(k[::8].tolist(), ratio[::8])))
    print(f"target: under 60 s -> {'met' if elapsed < 60 else 'NOT met'} ({elapsed:.2f} s)")
    headline(f"one {args.n_grid}^3 box, {args.n_steps} steps", elapsed, "s")


if __name__ == "__main__":
    main()
