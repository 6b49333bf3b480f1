"""Galaxy simulator throughput: 10,000 five-band 64 x 64 cutouts, FFT threads 1 vs 2, and a per-galaxy GalSim loop.

Target (issue 3): 10,000 galaxies in under 2 minutes on the 2-core CI machine.
Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_galaxies.py [--n 10000]``; prints
galaxies/s written to a FieldSet (the full pipeline: parameters, rendering, noise, HDF5), the 1- vs 2-thread
ratio of the in-memory simulator, and the speed-up over drawing each galaxy's 5 bands with
``galsim.Convolve(...).drawImage`` (measured on ``--n-galsim`` galaxies). The load average is printed because
the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import galsim
import numpy as np
from _timing import headline, timed

from astrogen.sims import get_simulator, iter_blocks, simulate_to_file
from astrogen.sims.galaxies import BANDS, mag_to_flux


def galsim_loop(simulator, n: int, seed: int = 0) -> float:
    """Seconds to draw ``n`` galaxies the straightforward way: 5 GalSim drawImage calls per galaxy."""
    c = simulator.config
    p = simulator.draw_params(np.random.default_rng(seed), n)
    flux = mag_to_flux(np.stack([p[f"mag_{b}"] for b in BANDS], axis=1))
    psfs = [galsim.Kolmogorov(fwhm=f) for f in c.seeing_fwhm_arcsec]

    def run():
        for k in range(n):
            galaxy = galsim.Sersic(p["sersic_n"][k], half_light_radius=p["half_light_radius_arcsec"][k]).shear(
                q=p["axis_ratio"][k], beta=p["position_angle"][k] * galsim.degrees)
            for b, psf in enumerate(psfs):
                galsim.Convolve(galaxy * flux[k, b], psf).drawImage(nx=c.size, ny=c.size, scale=c.pixel_scale_arcsec)

    return timed(run)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-threads-test", type=int, default=2048, help="galaxies for the 1- vs 2-thread ratio")
    parser.add_argument("--n-galsim", type=int, default=100, help="galaxies for the per-galaxy GalSim loop")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}")
    setup, _ = timed(lambda: get_simulator("galaxies"))
    print(f"set-up (GalSim Sersic tables, distances): {setup:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        to_file, _ = timed(lambda: simulate_to_file("galaxies", args.n, Path(tmp) / "g.h5", seed=0))
    rate = args.n / to_file
    verdict = "extrapolated; " if args.n < 10_000 else ""
    verdict += "meets" if 10_000 / rate < 120 else "misses"
    print(f"{args.n} galaxies to a FieldSet in {to_file:.1f} s: {rate:.0f} galaxies/s; "
          f"10,000 in {10_000 / rate:.1f} s ({verdict} the 120 s target)")
    per_threads = {}
    for workers in (1, 2):
        simulator = get_simulator("galaxies", {"workers": workers})
        seconds, _ = timed(lambda s=simulator: sum(len(b) for b in iter_blocks(s, args.n_threads_test, seed=1)))
        per_threads[workers] = args.n_threads_test / seconds
        print(f"in memory, {workers} FFT thread(s): {per_threads[workers]:.0f} galaxies/s")
    print(f"2-thread / 1-thread speed ratio: {per_threads[2] / per_threads[1]:.2f}")
    loop = args.n_galsim / galsim_loop(get_simulator("galaxies"), args.n_galsim)
    print(f"per-galaxy GalSim drawImage loop: {loop:.1f} galaxies/s; batched renderer is {per_threads[1] / loop:.0f}x "
          "faster (1 thread)")
    headline("galaxies to a FieldSet", rate, "/s")
    headline("batched / GalSim loop speed", per_threads[1] / loop, "x")


if __name__ == "__main__":
    main()
