"""Statistics throughput against the strongest simple baselines, and each one's ratio to its FFT or memory floor.

Every row times astrogen, its baselines and its floor interleaved in one process (best of ``--repeat``), so the
ratios are side by side even on a loaded machine. Baselines: a per-map NumPy loop with ``rfft2`` and ``bincount``
(P(k)); the same FFT bispectrum estimator as a per-map NumPy loop; ``scipy.ndimage.maximum_filter`` per map
(peaks); quantimpy (Minkowski, ``functionals`` of each binary map at the same thresholds) and powerbox (P(k)) when
installed (``pip install -e .[bench]`` for powerbox; quantimpy's wheel-less sdist must be built against the
installed NumPy: ``pip install cython && pip install --no-build-isolation quantimpy``). Floors: the batched
float32 ``scipy.fft`` transforms the estimator needs at least (P(k): one rfft2; bispectrum: one rfft2 and one
irfft2 per shell; Minkowski: one rfft2 and 5 irfft2), one pass over the maps for peaks (a memory floor; the
peak kernel's 8-neighbour test alone, in place, is timed beside it: what the comparisons themselves cost), the 4
FFTs of a particle-mesh force, timed for the simulator's own particles at z = 0 and for randomly displaced ones.
Targets (issue 20): every statistic within 1.5x of its floor and faster than every baseline; the scorecard of
1,000 vs 1,000 maps 64x64 under 1.5 s on one thread; the PM force within 4x of its FFTs at 64^3 and 128^3.
Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_stats.py [--n 10000] [--n-score 1000]
[--only peaks pm]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
import torch
from _timing import headline
from numba import njit
from scipy import fft as sp_fft
from scipy import ndimage

from astrogen.sims.cosmology import Cosmology
from astrogen.sims.matter import ParticleMesh
from astrogen.stats.bispectrum import bispectrum, default_triangles
from astrogen.stats.compare import compare
from astrogen.stats.minkowski import minkowski_functionals
from astrogen.stats.peaks import _flag_peaks, peak_counts
from astrogen.stats.power import _edges, _grid, power_spectrum

ROWS = ["pk", "peaks", "minkowski", "bispectrum", "scorecard", "pm"]


def interleaved(jobs: dict, repeat: int) -> dict[str, float]:
    """Best wall time (s) of each job over ``repeat`` rounds that run every job once, in turn."""
    times = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, fn in jobs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def report(task: str, times: dict[str, float], floor: str | None = None, references: tuple[str, ...] = ()) -> None:
    """Print one task: each timing, its ratio to astrogen's and to the floor (the job named ``floor``).

    ``references`` are parts of astrogen's own work timed alone: shown against the floor, never counted as peers.
    """
    ours = times["astrogen"]
    parts = [f"{name} {1e3 * t:.0f} ms ({t / ours:.2f}x astrogen)" for name, t in times.items() if name != "astrogen"]
    print(f"{task}: astrogen {1e3 * ours:.0f} ms; " + "; ".join(parts), flush=True)
    if floor is not None:
        for name in ("astrogen", *references):
            headline(f"{task}: {name} / floor", times[name] / times[floor], "x")
    best_peer = min((t for name, t in times.items() if name not in ("astrogen", floor, *references)), default=None)
    if best_peer is not None:
        headline(f"{task}: best baseline / astrogen", best_peer / ours, "x")


def gaussian_maps(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(rng.normal(size=(n, 1, size, size)).astype(np.float32))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij"))
    return np.fft.irfft2(f * np.exp(-((k / 0.25) ** 2)), s=(size, size)).astype(np.float32)


def numpy_power_loop(maps: np.ndarray) -> np.ndarray:
    """The strongest simple P(k): per map rfft2, |F|^2 and one bincount on precomputed bins (same binning)."""
    shape = maps.shape[-2:]
    grid = _grid(shape, 1.0, torch.device("cpu"))
    edges, _ = _edges(None, False, shape, 1.0)
    kmag, weight = grid.kmag.numpy(), grid.multiplicity.numpy()
    index = np.searchsorted(edges, kmag, side="right") - 1
    index = np.where((index >= 0) & (index < len(edges) - 1), index, len(edges) - 1)  # outside: overflow bin
    modes = np.bincount(index, weight, minlength=len(edges))
    norm = 1.0 / (maps.shape[-1] * maps.shape[-2])
    out = np.empty((len(maps), len(edges)))
    for i, image in enumerate(maps[:, 0]):
        f = np.fft.rfft2(image).ravel()
        out[i] = np.bincount(index, weight * (f.real**2 + f.imag**2), minlength=len(edges))
    return out[:, :-1] / np.maximum(modes[:-1], 1) * norm


def numpy_bispectrum_loop(maps: np.ndarray) -> np.ndarray:
    """The same FFT estimator per map: shell fields by irfft2, triple products by dot products."""
    shape = maps.shape[-2:]
    triangles = default_triangles(shape)
    k1, k2, theta = triangles.T
    k3 = np.sqrt(np.maximum(k1**2 + k2**2 + 2 * k1 * k2 * np.cos(theta), 0.0))
    dk = 2 * np.pi / min(shape)
    centres, index = np.unique(np.round(np.stack([k1, k2, k3], 1) / dk, 6), return_inverse=True)
    index = index.reshape(-1, 3)
    kmag = _grid(shape, 1.0, torch.device("cpu")).kmag.numpy().reshape(shape[0], -1)
    shells = np.stack([np.abs(kmag / dk - c) < 0.5 for c in centres]).astype(np.float32)
    unit = np.fft.irfft2(shells, s=shape).reshape(len(centres), -1)
    counts = np.array([np.dot(unit[a] * unit[b], unit[c]) for a, b, c in index])
    out = np.empty((len(maps), len(index)))
    for i, image in enumerate(maps[:, 0]):
        fields = np.fft.irfft2(np.fft.rfft2(image) * shells, s=shape).reshape(len(centres), -1)
        out[i] = [np.dot(fields[a] * fields[b], fields[c]) for a, b, c in index]
    return out / counts


def maximum_filter_loop(maps: np.ndarray) -> int:
    """Peaks as a SciPy script finds them: a wrapped 3x3 maximum filter per map."""
    return sum(int((m == ndimage.maximum_filter(m, size=3, mode="wrap")).sum()) for m in maps[:, 0])


@njit(cache=True, nogil=True)
def neighbour_test_alone(x: np.ndarray, flags: np.ndarray) -> None:
    """The peak kernel's 8-neighbour test (`_flag_peaks`) alone, on each map ``x`` [M, H, W] in place: interior
    pixels only, no frame, border, finite check or counting. A lower bound for any peak count built on it."""
    h, w = x.shape[1], x.shape[2]
    n = (h - 2) * w - 2
    for m in range(x.shape[0]):
        flat = x[m].reshape(h * w)
        _flag_peaks(flat, flat[w:], flat[2 * w :], flags[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="maps 64x64 for P(k) and peaks")
    parser.add_argument("--n-structure", type=int, default=2_000, help="maps 64x64 for Minkowski")
    parser.add_argument("--n-bispectrum", type=int, default=1_000)
    parser.add_argument("--n-score", type=int, default=1_000, help="maps per set in the scorecard")
    parser.add_argument("--pm", type=int, nargs="+", default=[64, 128], help="particle-mesh sides")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=ROWS, default=ROWS, help="run only these rows")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; best of {args.repeat}, interleaved")

    def fft_floor(x, inverse: int = 0):
        f = sp_fft.rfft2(x, workers=torch.get_num_threads())
        for _ in range(inverse):
            sp_fft.irfft2(f, s=x.shape[-2:], workers=torch.get_num_threads())

    maps = gaussian_maps(args.n, 64, seed=0)
    sigma = np.array([maps.std()])
    if "pk" in args.only:
        power_rows(maps, args.repeat, fft_floor)
    if "peaks" in args.only:
        peak_row(maps, sigma, args.repeat)
    if "minkowski" in args.only:
        minkowski_row(maps[: args.n_structure], sigma, args.repeat, fft_floor)
    if "bispectrum" in args.only:
        bispectrum_row(maps[: args.n_bispectrum], args.repeat, fft_floor)
    if "scorecard" in args.only:
        real, gen = gaussian_maps(args.n_score, 64, seed=1), gaussian_maps(args.n_score, 64, seed=2)
        seconds = interleaved({"scorecard": lambda: compare(real, gen, n_bootstrap=200)}, args.repeat)["scorecard"]
        print(f"scorecard (default statistics) {args.n_score} vs {args.n_score} maps 64x64: {seconds:.2f} s "
              f"(target < 1.5 s)")
        headline(f"scorecard {args.n_score} vs {args.n_score}", seconds, "s")
    if "pm" in args.only:
        for n in args.pm:
            pm_rows(n, args.repeat)


def power_rows(maps: np.ndarray, repeat: int, fft_floor) -> None:
    """P(k) of float32 and float64 64x64 maps and of float32 256x256 maps against the NumPy loop and one rfft2."""
    np.testing.assert_allclose(power_spectrum(maps[:50]).power[:, 0], numpy_power_loop(maps[:50]), rtol=1e-4)
    jobs = {"astrogen": lambda: power_spectrum(maps), "NumPy rfft2 + bincount loop": lambda: numpy_power_loop(maps),
            "floor: one rfft2": lambda: fft_floor(maps)}
    if importlib.util.find_spec("powerbox"):
        from powerbox import get_power

        jobs["powerbox loop"] = lambda: [get_power(m, 64.0, bins_upto_boxlen=False) for m in maps[:, 0]]
    else:
        print("powerbox: not installed, not compared")
    report(f"P(k) of {len(maps)} maps 64x64 float32", interleaved(jobs, repeat), "floor: one rfft2")
    maps64 = maps.astype(np.float64)
    report(f"P(k) of {len(maps)} maps 64x64 float64 (kept float64)",
           interleaved({"astrogen": lambda: power_spectrum(maps64), "floor: one float64 rfft2":
                        lambda: fft_floor(maps64)}, repeat), "floor: one float64 rfft2")
    big = gaussian_maps(max(len(maps) // 10, 1), 256, seed=3)
    report(f"P(k) of {len(big)} maps 256x256 float32", interleaved(
        {"astrogen": lambda: power_spectrum(big), "NumPy rfft2 + bincount loop": lambda: numpy_power_loop(big),
         "floor: one rfft2": lambda: fft_floor(big)}, repeat), "floor: one rfft2")


def peak_row(maps: np.ndarray, sigma: np.ndarray, repeat: int) -> None:
    """Peak counts against a per-map maximum filter and one pass over the maps; the 8-neighbour test alone shows
    how much of the floor's budget the comparisons themselves take."""
    mask, flags = np.empty(maps.shape, dtype=bool), np.empty(maps.shape[-2] * maps.shape[-1], dtype=np.uint8)
    stack = maps.reshape(-1, *maps.shape[-2:])
    warm = time.perf_counter()  # numba compiles the peak kernels on the first call (then cached on disk): not timed
    peak_counts(maps[:2], sigma=sigma, periodic=True)
    neighbour_test_alone(stack[:2], flags)
    print(f"peaks: first call (compile or cache load) {time.perf_counter() - warm:.1f} s, not timed")
    times = interleaved({"astrogen": lambda: peak_counts(maps, sigma=sigma, periodic=True),
                         "scipy maximum_filter loop": lambda: maximum_filter_loop(maps),
                         "floor: one pass": lambda: np.greater(maps, 0, out=mask),
                         "8-neighbour test alone": lambda: neighbour_test_alone(stack, flags)}, repeat)
    report(f"peaks of {len(maps)} maps 64x64", times, "floor: one pass", references=("8-neighbour test alone",))


def minkowski_row(structure: np.ndarray, sigma: np.ndarray, repeat: int, fft_floor) -> None:
    """Minkowski functionals at 20 thresholds against quantimpy and one rfft2 + 5 irfft2."""
    thresholds = np.linspace(-3, 3, 20)
    jobs = {"astrogen": lambda: minkowski_functionals(structure, thresholds=thresholds, sigma=sigma),
            "floor: rfft2 + 5 irfft2": lambda: fft_floor(structure, 5)}
    if importlib.util.find_spec("quantimpy"):
        from quantimpy import minkowski as mk

        levels = thresholds * sigma[0]  # the same 20 thresholds, one binary image each, per map
        jobs["quantimpy loop"] = lambda: [mk.functionals(m > t) for m in structure[:, 0] for t in levels]
    else:
        print("quantimpy: not installed, not compared")
    report(f"Minkowski of {len(structure)} maps, 20 thresholds", interleaved(jobs, repeat),
           "floor: rfft2 + 5 irfft2")


def bispectrum_row(sub: np.ndarray, repeat: int, fft_floor) -> None:
    """The bispectrum against the same estimator as a per-map NumPy loop and its FFTs."""
    result = bispectrum(sub[:20]).bispectrum[:, 0]  # B = V^2 / N_pix^3 x the loop's ratio, V = N_pix = 64^2
    np.testing.assert_allclose(result, numpy_bispectrum_loop(sub[:20]) / 64**2, rtol=1e-3,
                               atol=1e-4 * np.abs(result).max())
    n_shells = len(np.unique(np.round(bispectrum_shells(), 6)))
    report(f"bispectrum of {len(sub)} maps, {len(default_triangles((64, 64)))} triangles", interleaved(
        {"astrogen": lambda: bispectrum(sub), "NumPy loop, same estimator": lambda: numpy_bispectrum_loop(sub),
         f"floor: rfft2 + {n_shells} irfft2": lambda: fft_floor(sub, n_shells)}, repeat),
        f"floor: rfft2 + {n_shells} irfft2")


def pm_positions(mesh: ParticleMesh, seed: int) -> dict[str, torch.Tensor]:
    """Particles [3, n^3] for the PM force rows: the simulator's own PM run to z = 0 (10 FastPM steps from 2LPT at
    z = 9, Quijote cosmology; particles in Lagrangian lattice order, so neighbours mostly stay near), and the worst
    case of every particle displaced by an independent random 3-cell Gaussian (every CIC access a cache miss)."""
    cosmo = Cosmology()
    noise = np.random.default_rng(seed).standard_normal((mesh.n,) * 3, dtype=np.float32)
    evolved = mesh.evolve(cosmo, mesh.linear_field(noise, cosmo.power), 1.0, 0.1, 10)
    g = torch.Generator().manual_seed(seed)
    random = torch.remainder(mesh.lattice() + 3 * mesh.cell * torch.randn(3, mesh.n**3, generator=g), mesh.box_size)
    return {"PM positions at z = 0": evolved, "random 3-cell displacements": random}


def pm_rows(n: int, repeat: int) -> None:
    """The PM force at ``n``^3 against its 4 FFTs, for realistic and for random particle positions."""
    mesh = ParticleMesh(n, 4.0 * n)
    field = torch.randn(n, n, n, generator=torch.Generator().manual_seed(0))

    def four_ffts():
        f = torch.fft.rfftn(field)
        return [torch.fft.irfftn(f, s=(n,) * 3) for _ in range(3)]

    for name, pos in pm_positions(mesh, seed=0).items():
        warm = time.perf_counter()  # the CIC kernels' compile (first call, then cached on disk) is not timed
        mesh.gravity(pos, 0.3)
        print(f"PM force {n}^3, {name}: first call (compile or cache load) {time.perf_counter() - warm:.1f} s")
        report(f"PM force {n}^3, {name}", interleaved({"astrogen": lambda pos=pos: mesh.gravity(pos, 0.3),
                                                       "floor: 4 FFTs": four_ffts}, repeat), "floor: 4 FFTs")


def bispectrum_shells() -> np.ndarray:
    """Distinct shell centres (units of k_f) of the default triangles on 64x64 maps."""
    k1, k2, theta = default_triangles((64, 64)).T
    k3 = np.sqrt(np.maximum(k1**2 + k2**2 + 2 * k1 * k2 * np.cos(theta), 0.0))
    return np.concatenate([k1, k2, k3]) / (2 * np.pi / 64)


if __name__ == "__main__":
    main()
