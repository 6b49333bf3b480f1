"""The scorecard each shipped pretrained model reaches: held-out maps simulated from boxes the model never saw
(the simulator and config of its training set, seed + 1; spread over at least 4 boxes, so that the held-out
mean P(k) is not one box's cosmic variance), against ``--n`` samples (DPM-Solver++, ``--steps`` 20).

Prints the full scorecard, P_gen / P_real of the mean P(k) and of its map-to-map variance per k, and the issue's
figures (worst deviation up to k_Nyq / 2 and k_Nyq). These are the figures in each model's card (MODEL.md).
A conditional model samples at the held-out maps' parameters (``--cond-from``); a galaxy model is also put
through the redshift-judge protocol (`JUDGES`; its report, with the morphology per redshift bin, is kept with
``--out``) and two-sample KS tests of its photometry and morphology per redshift bin (`binned_distributions`).
A shipped regressor is scored on the held-out set (photo-z metrics per redshift bin for a redshift CNN). A
minute (matter) to several minutes (galaxies: morphology fits) per model on 2 CPU cores. Run:
``.venv/bin/python benchmarks/bench_pretrained.py [--name matter-demo] [--n 1000] [--seed 0] [--out DIR]
[--guidance 1] [--steps 20] [--figure PNG] [--null]``; ``--null`` also scores a second held-out set (seed + 2) in
the generator's place: a row that it fails is one that no generator can be expected to pass at this ``--n``.
``--figure`` draws the scorecards of the generators scored side by side (e.g. the blob WGAN chain: ``--name
blobs-wgan-1 blobs-wgan-10 blobs-wgan-50 blobs-wgan-1000 --figure docs/pretrained/blob-chain.png``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
from _fidelity import fidelity, print_fidelity
from _timing import headline
from rich.console import Console
from scipy.stats import ks_2samp

import astrogen.pretrained as shipped
from astrogen.data import FieldMeta, FieldSet
from astrogen.generate import sample_to_file
from astrogen.report.evaluate import evaluate
from astrogen.sims import get_simulator, simulate_to_file
from astrogen.stats.compare import DEFAULT_STATS
from astrogen.stats.inference import relative_error
from astrogen.stats.morphology import morphology
from astrogen.stats.redshift import (
    METRICS,
    REDSHIFT_EDGES,
    bin_index,
    binned_photoz_metrics,
    photoz_metrics,
    stamp_photometry,
)
from astrogen.stats.sky import sky_noise
from astrogen.tasks import GENERATIVE

MIN_BLOCKS = 4
# The rows each training set is scored on (default: the scorecard's): the blob experiments' own statistics
# (microwave-sky report, Han et al. 2021: pixel histogram, marginal sums, stacked peak profile, 2D power, peaks).
STATS = {"blobs": ("pixel_pdf", "marginal_sums", "peak_profile", "power", "peaks", "mean", "out_of_range")}
# The shipped redshift regressor that judges the samples of a conditional model of each simulator.
JUDGES = {"galaxies": "galaxies-zcnn"}


def held_out(meta: FieldMeta, n: int, path: Path, offset: int = 1) -> Path:
    """``n`` maps simulated like a training set (``meta``: simulator, config, seed) from seed + ``offset``, spread
    evenly over about `MIN_BLOCKS` simulator blocks (boxes), so that the held-out mean P(k) is not one box's
    cosmic variance. An existing ``path`` made the same way (same simulator, config, seed and size) is reused."""
    seed = meta.seed + offset
    if path.exists():
        with FieldSet(path) as fs:
            old = fs.meta
            if (len(fs), old.simulator, old.config, old.seed) == (n, meta.simulator, meta.config, seed):
                print(f"reusing the held-out set {path}")
                return path
    block = get_simulator(meta.simulator, meta.config).block_size
    stride = max(1, MIN_BLOCKS * block // n)  # every stride-th map of n * stride consecutive ones
    if stride == 1:
        return simulate_to_file(meta.simulator, n, path, seed=seed, config=meta.config, overwrite=True)
    full = simulate_to_file(meta.simulator, n * stride, path.with_name(f"{path.stem}-all.h5"), seed=seed,
                            config=meta.config, overwrite=True, progress=True)
    with FieldSet(full) as fs, FieldSet.create(path, fs.sample_shape, fs.meta, param_names=fs.param_names,
                                               overwrite=True) as writer:
        thinned = fs[np.arange(0, n * stride, stride)]
        writer.append(thinned.images, thinned.params)
    full.unlink()
    return path


def training_meta(name: str) -> FieldMeta:
    """The training set's metadata of a shipped model: in its hyper-parameters (generative models) or its
    training provenance (``config.json``'s ``training.data_meta``)."""
    config = shipped.config(name)
    return FieldMeta.from_attrs(config["hyper_parameters"].get("data_meta") or config["training"]["data_meta"])


def held_out_and_generated(name: str, n: int, seed: int, out: Path, guidance: float = 1.0,
                           steps: int = 20) -> tuple[Path, Path]:
    """The `held_out` set of a shipped model's training data and ``n`` samples of the model (DPM-Solver++ with
    ``steps`` steps, for diffusion models; a conditional model at the held-out maps' parameters, with
    classifier-free ``guidance``)."""
    hparams = shipped.config(name)["hyper_parameters"]
    real = held_out(training_meta(name), n, out / f"{name}-real.h5")
    conditional = bool(hparams.get("conditions"))
    options = {}  # GANs and VAEs take no sampling option
    if shipped.config(name)["kind"] == "diffusion":
        options = {"sampler": "dpm", "steps": steps, "guidance": guidance if conditional else 1.0}
    gen = sample_to_file(f"pretrained:{name}", out / f"{name}-gen.h5", n=n, seed=seed,
                         cond_from=real if conditional else None, overwrite=True, **options)
    return real, gen


def scorecard_figure(rows: dict[str, dict], path: Path) -> Path:
    """One panel per model (``rows``: model -> statistic -> (distance, error, tolerance, passed)): distance /
    tolerance per statistic with its bootstrap error, on a log scale; a statistic passes below the line at 1.
    Ratios below 1e-3 (e.g. no pixel out of range) are drawn at 1e-3."""
    from astrogen.report.style import OKABE_ITO, new_figure, style

    floor, top = 1e-3, 10.0
    with style():
        fig, axes = new_figure(1, len(rows), panel_size=(2.6, 3.0), sharey=True)
        for ax, (name, card) in zip(axes[0], rows.items()):
            names = list(card)
            ratio = np.array([card[s][0] / card[s][2] for s in names])
            error = np.array([card[s][1] / card[s][2] for s in names])
            colours = [OKABE_ITO["bluish_green" if card[s][3] else "vermillion"] for s in names]
            ax.bar(range(len(names)), np.maximum(ratio, floor), yerr=error, color=colours, capsize=2)
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
            ax.set_yscale("log")
            top = max(top, float(np.max(ratio + error)))
            ax.set_xticks(range(len(names)), [s.replace("_", " ") for s in names], rotation=60, ha="right")
            ax.set_title(f"{name}: {sum(card[s][3] for s in names)} of {len(names)} pass")
        axes[0][0].set_ylabel("distance / tolerance")
        axes[0][0].set_ylim(floor / 3, 3 * top)  # a ratio at the floor still shows a bar
        fig.savefig(path, dpi=150)
    return path


def blob_moments(path: Path, margin: float = 9.5) -> dict[str, np.ndarray]:
    """Second moments of the one blob of each map whose centroid lies at least ``margin`` pixels inside every
    edge (so that the blob's light is all in the map): flux, size sigma = sqrt((Q_xx + Q_yy) / 2) (pixels) and
    ellipticity |e| = |(Q_xx - Q_yy, 2 Q_xy)| / (Q_xx + Q_yy). A circular Gaussian of FWHM 6 has sigma 2.548."""
    with FieldSet(path) as fs:
        x = fs[:].images[:, 0].astype(np.float64)
    rows, cols = np.mgrid[: x.shape[1], : x.shape[2]]
    flux = x.sum((1, 2))
    centre = [(x * grid).sum((1, 2)) / flux for grid in (rows, cols)]
    inside = np.all([(c >= margin) & (c <= n - 1 - margin) for c, n in zip(centre, x.shape[1:])], axis=0)
    d_row, d_col = (grid[None] - c[:, None, None] for grid, c in zip((rows, cols), centre))
    q_rr, q_cc, q_rc = ((x * a).sum((1, 2)) / flux for a in (d_row * d_row, d_col * d_col, d_row * d_col))
    return {"flux": flux[inside], "sigma": np.sqrt(0.5 * (q_rr + q_cc))[inside],
            "ellipticity": (np.hypot(q_rr - q_cc, 2 * q_rc) / (q_rr + q_cc))[inside]}


def print_blob_moments(real: Path, gen: Path) -> None:
    """`blob_moments` of the held-out and generated 1-blob maps, side by side."""
    print("\n| 1-blob maps, blob inside | n | size sigma (pixels) | ellipticity, median (95%) | flux |\n|"
          + " --- |" * 5)
    for label, path in (("real", real), ("generated", gen)):
        m = blob_moments(path)
        print(f"| {label} | {len(m['flux'])} | {m['sigma'].mean():.4f} ± {m['sigma'].std():.4f} | "
              f"{np.median(m['ellipticity']):.4f} ({np.percentile(m['ellipticity'], 95):.4f}) | "
              f"{m['flux'].mean():.3f} ± {m['flux'].std():.3f} |")


def print_sky_noise(real: Path, gen: Path) -> None:
    """`sky_noise` of the generated stamps against the held-out ones (on the held-out set's noise level)."""
    with FieldSet(real) as fs_real, FieldSet(gen) as fs_gen:
        bands, noise_real = fs_real.meta.channels, sky_noise(fs_real[:].images)
        noise_gen = sky_noise(fs_gen[:].images, noise_real.sigma)
    print("\n| band | sky std, generated / held-out | pixels below -4 sigma per 10^4, held-out \\| generated |\n|"
          + " --- |" * 3)
    for b, band in enumerate(bands):
        print(f"| {band} | {noise_gen.std[b] / noise_real.std[b]:.4f} | "
              f"{1e4 * noise_real.negative[b]:.2f} \\| {1e4 * noise_gen.negative[b]:.2f} |")


def score_generator(name: str, args, out: Path) -> dict:
    """The scorecard of a generative model (and the redshift-judge protocol where its simulator has a judge);
    returns its rows (statistic -> distance, error, tolerance, passed)."""
    real, gen = held_out_and_generated(name, args.n, args.seed, out, args.guidance, args.steps)
    simulator = shipped.config(name)["hyper_parameters"]["data_meta"]["simulator"]
    figures = fidelity(real, gen, seed=args.seed, stats=STATS.get(simulator, DEFAULT_STATS))
    print(f"\n### pretrained:{name}: {args.n} generated vs {args.n} held-out maps\n")
    print_fidelity(figures)
    headline(f"{name} worst |P ratio - 1| to k_Nyq/2", figures["pk_mean_half"])
    headline(f"{name} rows passed", sum(r[3] for r in figures["rows"].values()), f"of {len(figures['rows'])}")
    if simulator == "blobs" and training_meta(name).config["n_blobs"] == 1:
        print_blob_moments(real, gen)
    if args.null:
        print_null_test(name, real, args, out)
    judge = JUDGES.get(simulator)
    if judge in shipped.available():
        result = evaluate(real, gen, out / f"{name}-report", n_max=args.n, seed=args.seed,
                          judge=f"pretrained:{judge}", by="redshift")
        Console(width=160).print(result.judge_table())
        headline(f"{name} redshift bins where the judge agrees", result.judge_bins["bins_agreeing"],
                 f"of {result.judge_bins['bins_judged']}")
        rows = binned_distributions(real, gen)
        print("\n| z bin | quantity | n real | n gen | KS D | p | verdict (p >= 0.01) |\n|" + " --- |" * 7)
        for low, high, what, n_real, n_gen, d, p, passed in rows:
            print(f"| {low:g}-{high:g} | {what} | {n_real} | {n_gen} | {d:.3f} | {p:.2g} | "
                  f"{'pass' if passed else 'FAIL'} |")
        headline(f"{name} per-bin photometry and morphology KS tests passed", sum(r[-1] for r in rows),
                 f"of {len(rows)}")
        print_sky_noise(real, gen)
    return figures["rows"]


def print_null_test(name: str, real: Path, args, out: Path) -> None:
    """The scorecard of a second held-out set (simulator seed + 2) against the first, in the generator's place:
    the rows that a real sample of this size passes, i.e. that a perfect generator would be expected to pass."""
    other = held_out(training_meta(name), args.n, out / f"{name}-null.h5", offset=2)
    simulator = training_meta(name).simulator
    figures = fidelity(real, other, seed=args.seed, stats=STATS.get(simulator, DEFAULT_STATS))
    print(f"\n### null test of {name}'s scorecard: {args.n} held-out maps (seed + 2) vs the {args.n} above\n")
    print_fidelity(figures)
    headline(f"{name} null test rows passed", sum(r[3] for r in figures["rows"].values()), f"of {len(figures['rows'])}")


def binned_distributions(real: Path, gen: Path, edges=REDSHIFT_EDGES, alpha: float = 0.01) -> list[tuple]:
    """Two-sample Kolmogorov-Smirnov tests, per redshift bin, of the galaxies' photometry (stamp flux per band,
    adjacent-band colours) and i-band morphology (ellipticity, second-moment semi-major axis, isophotal area,
    Sersic n): rows (bin low, bin high, quantity, n_real, n_gen, D, p, passed at ``alpha``). Real galaxies are
    binned by their redshift, generated ones by the redshift they were conditioned on."""
    sides = []
    for path in (real, gen):
        with FieldSet(path) as fs:
            data, pixel, bands = fs[:], fs.meta.pixel_size or 1.0, fs.meta.channels
        phot, morph = stamp_photometry(data.images), morphology(data.images, pixel_size=pixel)
        i = bands.index("i")
        values = {**{f"flux {b}": phot.flux[:, c] for c, b in enumerate(bands)},
                  **{f"{a} - {b}": phot.colour[:, c] for c, (a, b) in enumerate(pairwise(bands))},
                  **{f"i {m.replace('_', ' ')}": getattr(morph, m)[:, i]
                     for m in ("ellipticity", "semi_major_axis", "area", "sersic_n")}}
        sides.append((values, bin_index(data.params["redshift"], edges)))
    rows = []
    for b in range(len(edges) - 1):
        for name in sides[0][0]:
            x, y = ((v[name][which == b]) for v, which in sides)
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            if min(len(x), len(y)) < 5:
                continue
            test = ks_2samp(x, y)
            rows.append((edges[b], edges[b + 1], name, len(x), len(y), test.statistic, test.pvalue,
                         test.pvalue >= alpha))
    return rows


def score_regressor(name: str, args, out: Path) -> None:
    """A regressor's metrics on the held-out set: photo-z metrics per redshift bin for a redshift CNN, else the
    relative error per target."""
    real = held_out(training_meta(name), args.n, out / f"{name}-real.h5")
    module = shipped.load(name)
    with FieldSet(real) as fs:
        data = fs[:]
    pred, true = module.predict(data.images), module.targets_of(data.params)
    print(f"\n### pretrained:{name}: {args.n} held-out maps\n")
    if list(module.hparams.targets) != ["redshift"]:
        for i, target in enumerate(module.hparams.targets):
            headline(f"{name} {target} mean relative error", float(relative_error(pred[:, i], true[:, i]).mean()))
        return
    binned = binned_photoz_metrics(pred[:, 0], true[:, 0], seed=args.seed)
    print("| z bin | n | " + " | ".join(METRICS) + " |\n|" + " --- |" * (len(METRICS) + 2))
    for b, n in enumerate(binned.n):
        cells = " | ".join(f"{binned.value[m][b]:.4f} ± {binned.error[m][b]:.4f}" for m in METRICS)
        print(f"| {binned.edges[b]:g}-{binned.edges[b + 1]:g} | {n} | {cells} |")
    for metric, value in photoz_metrics(pred[:, 0], true[:, 0]).items():
        headline(f"{name} {metric} (all)", value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", nargs="+", default=shipped.available(), help="shipped models [all]")
    parser.add_argument("--n", type=int, default=1000, help="held-out and generated maps")
    parser.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    parser.add_argument("--out", type=Path, default=None, help="keep the sets here [a temporary folder]")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance (conditional models)")
    parser.add_argument("--steps", type=int, default=20, help="DPM-Solver++ steps (diffusion models)")
    parser.add_argument("--figure", type=Path, default=None, help="PNG of the generators' scorecards side by side")
    parser.add_argument("--null", action="store_true",
                        help="also score a second held-out set against the first (the rows a real set passes)")
    args = parser.parse_args()
    cards = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in args.name:
            start = time.perf_counter()
            if shipped.config(name)["kind"] in GENERATIVE:
                cards[name] = score_generator(name, args, out)
            else:
                score_regressor(name, args, out)
            print(f"({name}: {time.perf_counter() - start:.0f} s)")
    if args.figure and cards:
        print(f"figure: {scorecard_figure(cards, args.figure)}")


if __name__ == "__main__":
    main()
