"""`evaluate`: compare a generated FieldSet with a real one and write the HTML report and scorecard.

The glue between `astrogen.data.FieldSet`, `astrogen.stats` (the statistics and the scorecard) and the
report figures; it owns no statistics of its own. Both sets stream through
`astrogen.stats.compare.compare_batches` in batches: each statistic is measured once per batch, the scorecard
scores its per-map summaries and the figures are drawn from the same results. Memory holds one batch of maps,
the per-map summaries and a few maps for the sample grid, however many maps are compared.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from astrogen.data import FieldSet
from astrogen.errors import ConfigError, DataError
from astrogen.progress import progress_bar
from astrogen.report import figures
from astrogen.report.html import Section, write_report
from astrogen.report.style import figure_to_data_uri, k_unit, power_unit
from astrogen.stats.compare import DEFAULT_STATS, REGISTRY, FileBatches, Scorecard, clamped_fraction, compare_batches

# With no statistics named the report scores and draws the scorecard's defaults (DEFAULT_STATS); "morphology" is
# added for galaxy images, "marginals" always. Both are drawn but not scored: the scorecard contract does not list them.
REPORT_ONLY = ("morphology", "marginals")
GALAXY_BANDS = frozenset("ugrizy")
N_SHOW = 6  # maps of each set in the sample grid
MORPHOLOGY_MAX = 1000  # stamps of each set measured for the morphology section (one photutils fit per stamp)

Kept = dict[str, list]  # what the report keeps of one set: per key, one entry per batch


@dataclass
class Inputs:
    """What every section needs to know of the two sets (their maps stream past in batches)."""

    channels: list[str]
    units: str
    pixel_size: float
    pixel_unit: str
    periodic: bool
    condition: str | None
    real_condition: np.ndarray | None  # [n] condition values of the selected maps, in reading order
    gen_condition: np.ndarray | None
    condition_edges: np.ndarray | None = None  # bins of the condition (the judge's); None: quantiles of the real set


def _check_compatible(real: FieldSet, gen: FieldSet) -> None:
    where = f"{real.path} vs {gen.path}"
    if len(real.shape) != 4 or len(gen.shape) != 4:
        raise DataError(f"{where}: the report compares 2D maps [N, C, H, W]; got shapes {real.shape}, {gen.shape}")
    a, b = real.meta, gen.meta
    checks = [
        ("channels", a.channels, b.channels, a.channels == b.channels),
        ("map shape", real.sample_shape, gen.sample_shape, real.sample_shape == gen.sample_shape),
        ("units", a.units, b.units, a.units == b.units),
        ("pixel unit", a.pixel_unit, b.pixel_unit, a.pixel_unit == b.pixel_unit),
        ("pixel size", a.pixel_size, b.pixel_size, (a.pixel_size is None and b.pixel_size is None) or (
            a.pixel_size is not None and b.pixel_size is not None and np.isclose(a.pixel_size, b.pixel_size))),
    ]
    for what, x, y, same in checks:
        if not same:
            raise DataError(f"{where}: {what} differ ({x} vs {y}); generated sets must be in the real set's units")


def _subset(fs: FieldSet, n_max: int, rng: np.random.Generator, condition: str | None) -> np.ndarray:
    """Increasing indices of up to ``n_max`` maps drawn at random (without replacement)."""
    if condition is not None and condition not in fs.params:
        raise ConfigError(f"{fs.path}: no parameter {condition!r} to bin by (parameters: {fs.param_names})")
    return np.sort(rng.choice(len(fs), size=min(n_max, len(fs)), replace=False))


def _provenance(fs: FieldSet, n_used: int) -> dict:
    model = _model(fs)
    return {"file": str(Path(fs.path).resolve()), "samples": f"{n_used} of {len(fs)}", **asdict(fs.meta),
            **({"model": model} if model else {})}


def _joined(parts: list, *fields: str):
    """One result from a statistic's per-batch results: the per-map ``fields`` concatenated over the batches."""
    return replace(parts[0], **{name: np.concatenate([getattr(p, name) for p in parts]) for name in fields})


def _model(fs: FieldSet) -> dict | None:
    """The model that generated ``fs`` (a model folder or a shipped ``pretrained:NAME``): its summary and card."""
    source = (fs.meta.provenance or {}).get("generated_from")
    if not source:
        return None
    from astrogen.errors import AstrogenError
    from astrogen.tasks import CARD, CONFIG, resolve

    try:
        folder = resolve(source)
    except AstrogenError:
        return None
    if not (folder / CONFIG).is_file():
        return None
    config = json.loads((folder / CONFIG).read_text())
    card = folder / CARD
    return {"source": str(source), "summary": config.get("summary", config.get("kind", "")),
            "training_steps": config.get("global_step"), "card": str(card.resolve()) if card.is_file() else None}


def _samples(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    fig = figures.sample_grid(np.concatenate(real["samples"]), np.concatenate(gen["samples"]), x.channels, N_SHOW)
    return [Section("Samples", [figure_to_data_uri(fig)],
                    "Randomly drawn maps, real on the left, generated on the right; one colour scale per channel.")]


def _keep_pixel_pdf(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    from astrogen.stats.onepoint import Histogram, histograms, range_edges

    fractions, edges = results["pixel_pdf"]  # the scorecard's bins: per channel, spanning both sets
    kept["pdf"].append(Histogram(edges, fractions / np.diff(edges), log=False))
    low = min(ctx["real"].min.min(), ctx["generated"].min.min())
    if low > 0:  # log-spaced bins need positive pixel values
        high = max(ctx["real"].max.max(), ctx["generated"].max.max())
        kept["log_pdf"].append(histograms(batch, range_edges(low, high, bins=50, log=True)))


def _pixel_pdf(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    images = [figure_to_data_uri(figures.histogram_figure(_joined(real[key], "density"),
                                                          _joined(gen[key], "density"), x.channels, x.units))
              for key in ("pdf", "log_pdf") if real[key]]
    return [Section("Pixel distribution", images, "Per-map histograms: mean and ±1σ scatter over maps.")]


def _keep_power(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    from astrogen.stats.power import correlation_coefficient

    kept["power"].append(results["power"])
    if len(x.channels) > 1:
        kept["r"].append(correlation_coefficient(batch, pixel_size=x.pixel_size))


def _power(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    ku = k_unit(x.pixel_unit)
    real_p, gen_p = _joined(real["power"], "power"), _joined(gen["power"], "power")
    tolerance = REGISTRY["power"].tolerance
    fig = figures.power_figure(real_p, gen_p, ku, power_unit(x.units, x.pixel_unit), x.channels, tolerance)
    sections = [Section("Power spectrum", [figure_to_data_uri(fig)],
                        "Mean P(k) with ±1σ map-to-map scatter; bottom: generated/real, grey the real set's ±1σ, "
                        f"green the scorecard's tolerance 1 ± {tolerance:g} (its distance is the mean "
                        "|P_gen / P_real - 1| over k bins and channels: a ratio inside the band at every k passes).")]
    fig = figures.power_correlation_figure(real_p, gen_p, ku, x.channels)
    sections.append(Section("Power spectrum covariance", [figure_to_data_uri(fig)],
                            "Map-to-map correlation matrix of P(k) between k bins, corr_ij = Cov(P(k_i), P(k_j)) / "
                            "(σ_i σ_j) over the maps of each set (the per-map spectra above): real left, generated "
                            "right, one colour scale. Off-diagonal values are mode coupling, which a generator that "
                            "matches the mean P(k) can still miss."))
    if len(x.channels) > 1:
        k = real["r"][0][0]
        r_real, r_gen = (np.concatenate([r for _, r in kept["r"]]) for kept in (real, gen))
        fig = figures.correlation_figure(k, r_real, r_gen, x.channels, ku)
        sections.append(Section("Cross-correlation between channels", [figure_to_data_uri(fig)],
                                "r(k) = P_ij / sqrt(P_ii P_jj) for every channel pair."))
    return sections


def _keep_peaks(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    from astrogen.stats.peaks import peak_cutout_sums

    kept["peaks"].append(results["peaks"])
    kept["cutouts"].append(peak_cutout_sums(batch))


def _peaks(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    from astrogen.stats.peaks import profile_of_sums

    # (r, profile) of the peak cutouts summed over all batches
    profiles = [profile_of_sums(*(sum(part) for part in zip(*kept["cutouts"])))[1:] for kept in (real, gen)]
    fig = figures.peaks_figure(_joined(real["peaks"], "counts"), _joined(gen["peaks"], "counts"), x.channels,
                               x.units, *profiles)
    return [Section("Peaks", [figure_to_data_uri(fig)],
                    "Local maxima per map by height ν in units of the real maps' pixel σ; stacked peak profiles.")]


def _keep_minkowski(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    kept["minkowski"].append(results["minkowski"])


def _minkowski(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    fig = figures.minkowski_figure(*(_joined(kept["minkowski"], "v0", "v1", "v2") for kept in (real, gen)),
                                   x.channels, x.pixel_unit)
    return [Section("Minkowski functionals", [figure_to_data_uri(fig)],
                    "Area, boundary length and Euler characteristic of the excursion sets above each threshold.")]


def _keep_clusters(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    kept["clusters"].append(results["clusters"])


def _clusters(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    def joined(parts):  # sizes and masses are pooled over maps, one array per threshold
        return replace(_joined(parts, "count", "skeleton_length"),
                       sizes=[np.concatenate(s) for s in zip(*(p.sizes for p in parts))],
                       masses=[np.concatenate(m) for m in zip(*(p.masses for p in parts))])

    fig = figures.clusters_figure(joined(real["clusters"]), joined(gen["clusters"]), x.channels)
    return [Section("Clusters", [figure_to_data_uri(fig)],
                    "Connected regions above threshold: count per map and pooled size distribution.")]


def _keep_marginals(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    from astrogen.stats.peaks import marginal_sums
    from astrogen.stats.power import power_image

    kept["marginals"].append((*marginal_sums(batch), power_image(batch, pixel_size=x.pixel_size).sum(0)))


def _marginals(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    def joined(parts):  # (row sums, column sums) of every map, and the mean power image
        rows, columns, power = zip(*parts)
        return np.concatenate(rows), np.concatenate(columns), sum(power) / sum(map(len, rows))

    fig = figures.marginal_figure(joined(real["marginals"]), joined(gen["marginals"]), x.channels, x.units)
    return [Section("Marginal sums and 2D power", [figure_to_data_uri(fig)],
                    "Sums over rows (vs x) and columns (vs y), mean ±1σ over maps; log10 of the mean 2D power.")]


def _keep_morphology(batch: np.ndarray, results: dict, ctx: dict, x: Inputs, kept: Kept) -> None:
    from astrogen.stats.morphology import morphology
    from astrogen.stats.redshift import stamp_photometry

    kept["photometry"].append(stamp_photometry(batch))  # batched: every selected map, not just MORPHOLOGY_MAX
    have = sum(len(m.failed) for m in kept["morphology"])
    if have < MORPHOLOGY_MAX:
        kept["morphology"].append(morphology(batch[: MORPHOLOGY_MAX - have], pixel_size=x.pixel_size))


def _morphology(x: Inputs, real: Kept, gen: Kept) -> list[Section]:
    def joined(parts):
        return replace(_joined(parts, "ellipticity", "semi_major_axis", "area", "sersic_n", "half_light_radius",
                               "sersic_ellipticity", "failed"), reason=[row for p in parts for row in p.reason])

    real_m, gen_m = joined(real["morphology"]), joined(gen["morphology"])
    band = next((x.channels.index(b) for b in ("r", "i") if b in x.channels), 0)
    name, unit = x.channels[band], x.pixel_unit
    images = [figure_to_data_uri(figures.morphology_figure(real_m, gen_m, band, name, unit))]
    note = f"Shape measurements of the central object in the {name} band."
    if x.condition is not None:  # the measured stamps are the first of the selected maps
        edges = (figures.quantile_edges(x.real_condition[: len(real_m.failed)]) if x.condition_edges is None
                 else x.condition_edges)
        images.append(figure_to_data_uri(figures.morphology_interval_figure(
            real_m, gen_m, x.real_condition[: len(real_m.failed)], x.gen_condition[: len(gen_m.failed)],
            x.condition, band, name, unit, edges=edges)))
        real_p, gen_p = (replace(parts[0], flux=np.concatenate([p.flux for p in parts]),
                                 colour=np.concatenate([p.colour for p in parts]))
                         for parts in (real["photometry"], gen["photometry"]))
        images.append(figure_to_data_uri(figures.photometry_interval_figure(
            real_p, gen_p, x.real_condition, x.gen_condition, x.condition, x.channels, x.units, edges)))
        note += (f" Per {x.condition} bin (edges {np.round(edges, 4).tolist()}): median and 95% interval of the "
                 f"shapes (first {len(real_m.failed)} real and {len(gen_m.failed)} generated stamps) and of the "
                 "stamp photometry of every selected map (background-subtracted flux per band, adjacent-band "
                 "colours; `astrogen.stats.redshift.stamp_photometry`).")
    return [Section("Morphology", images, note)]


def _load_judge(checkpoint, sample_shape: tuple[int, ...]):
    from astrogen.tasks import load_model

    module = load_model(checkpoint, kinds=("regressor",))
    if list(module.hparams.targets) != ["redshift"]:
        raise ConfigError(f"--judge {checkpoint}: not a redshift regressor (targets: {list(module.hparams.targets)}, "
                          "need [redshift])")
    if list(module.hparams.image_shape) != list(sample_shape):
        raise DataError(f"--judge {checkpoint}: trained on maps {list(module.hparams.image_shape)}, the sets hold "
                        f"{list(sample_shape)}")
    return module


def _judge(by: str, edges: np.ndarray, real: tuple[np.ndarray, ...], gen: tuple[np.ndarray, ...],
           n_bootstrap: int, seed: int, morphology: bool) -> tuple[dict, Section]:
    """The redshift-judge protocol: photo-z metrics of the judge on real and generated maps, per bin of ``by``.

    ``real``, ``gen``: (z_pred, z_true, by values) of the judged maps. Returns the JSON-ready record (also
    written to scorecard.json as ``redshift_judge``) and the report section (per-bin table, trend figure,
    predicted-vs-true scatter).
    """
    from astrogen.stats.redshift import METRICS, N_SIGMA, binned_photoz_metrics, compare_binned, photoz_metrics

    real_rng, gen_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    real_b, gen_b = (binned_photoz_metrics(z_pred, z_true, edges, by=values, n_bootstrap=n_bootstrap, seed=rng)
                     for (z_pred, z_true, values), rng in ((real, real_rng), (gen, gen_rng)))
    bins = compare_binned(real_b, gen_b, N_SIGMA)
    judged = [row["agree"] for row in bins if row["agree"] is not None]
    record = {
        "by": by, "edges": edges.tolist(), "n_bootstrap": n_bootstrap, "seed": seed,
        "rule": f"a bin agrees when |generated - real| <= {N_SIGMA:g} sqrt(error_real^2 + error_generated^2) "
                "for bias, sigma_nmad, outlier_fraction and loss; no verdict below 2 objects in either set",
        "bins": bins, "n_outside": {"real": real_b.n_outside, "generated": gen_b.n_outside},
        "overall": {"real": photoz_metrics(*real[:2]), "generated": photoz_metrics(*gen[:2])},
        "agree": all(judged) if judged else None, "bins_agreeing": sum(judged), "bins_judged": len(judged),
    }

    def cell(side: dict, metric: str) -> str | None:
        value, error = side[metric], side[f"{metric}_error"]
        return None if value is None else f"{value:.4f}" + ("" if error is None else f" ± {error:.4f}")

    grid = [[f"{by} bin", "n real", "n generated",
             *(f"{figures.PHOTOZ_LABELS[m].split(' (')[0]} {w}" for m in METRICS for w in ("real", "generated")),
             "agree"]]
    grid += [[f"[{row['low']:g}, {row['high']:g}{']' if i == len(bins) - 1 else ')'}", row["n_real"],
              row["n_generated"], *(cell(row[w], m) for m in METRICS for w in ("real", "generated")), row["agree"]]
             for i, row in enumerate(bins)]
    images = [figure_to_data_uri(figures.photoz_trend_figure(real_b, gen_b, by)),
              figure_to_data_uri(figures.photoz_scatter_figure(
                  real[1::-1], gen[1::-1], edges if by == "redshift" else np.array([])))]
    note = ("A redshift regressor (the judge, trained on real galaxies that must not include the real set's) "
            "predicts the redshift of the real and of the generated galaxies; a generator that honours its "
            "redshift condition gives the judge the same bias, σ_NMAD, outlier fraction and HSC loss on both "
            "(Nishizawa et al. 2020, arXiv:2003.01511; dz = (z_pred - z) / (1 + z) against each set's redshift "
            f"parameter, z the true or conditioned redshift). Bins of {by}; errors: standard deviation over "
            f"{n_bootstrap} bootstrap resamples of the galaxies within each bin (seed {seed}). "
            f"{record['rule'][0].upper() + record['rule'][1:]}. "
            f"Outside the bins: {real_b.n_outside} real, {gen_b.n_outside} generated."
            + (f" Morphology and photometry per {by} bin: see the Morphology section." if morphology else ""))
    summary = {"agree": record["agree"], "bins agreeing": f"{record['bins_agreeing']} of {record['bins_judged']}"}
    return record, Section("Redshift judge", images, note, summary, grid)


def _collector(x: Inputs, drawn: list[str], judge, advance: Callable[[int], None]):
    """``(observe, kept)``: the `compare_batches` hook that keeps, per set, what the drawn sections need of each
    batch (results of the scorecard's statistics, report-only sums, the first maps, the judge's predictions)."""
    kept = {"real": defaultdict(list), "generated": defaultdict(list)}

    def observe(which: str, batch: np.ndarray, results: dict, ctx: dict) -> None:
        mine = kept[which]
        have = sum(map(len, mine["samples"]))
        if have < N_SHOW:
            mine["samples"].append(batch[: N_SHOW - have].copy())  # a view would keep the whole batch
        for name in drawn:
            SECTIONS[name][0](batch, results, ctx, x, mine)
        if judge is not None:
            mine["judge"].append(judge.predict(batch)[:, 0])
        advance(1)

    return observe, kept


@dataclass
class Evaluation:
    """What `evaluate` wrote: the report page, the scorecard file, and the scorecard itself."""

    report: Path
    scorecard_json: Path
    scorecard: Scorecard
    judge: dict[str, float] | None = None  # photo-z metrics of the judge on the whole generated set
    judge_bins: dict | None = None  # the redshift-judge protocol per bin (scorecard.json's ``redshift_judge``)

    def judge_table(self):
        """A rich Table of the judge's metrics per bin: real | generated, value ± bootstrap error, verdict."""
        from rich.table import Table

        from astrogen.stats.redshift import METRICS

        if self.judge_bins is None:
            return None
        short = {"bias": "bias", "sigma_nmad": "σ_NMAD", "outlier_fraction": "f_out", "loss": "loss"}
        table = Table(title=f"redshift judge per {self.judge_bins['by']} bin (real | generated, "
                            f"± bootstrap error)")
        for column in ("bin", "n", *(short[m] for m in METRICS), "agree"):
            table.add_column(column)

        def pair(row, metric):
            def one(side):
                value, error = row[side][metric], row[side][f"{metric}_error"]
                return "—" if value is None else f"{value:.3f}" + ("" if error is None else f"±{error:.3f}")
            return f"{one('real')} | {one('generated')}"

        for row in self.judge_bins["bins"]:
            verdict = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "n/a"}[row["agree"]]
            table.add_row(f"{row['low']:g}–{row['high']:g}", f"{row['n_real']} | {row['n_generated']}",
                          *(pair(row, m) for m in METRICS), verdict)
        return table


# name: (keep what the figures need of one batch, draw the section from what was kept of both sets)
SECTIONS = {"pixel_pdf": (_keep_pixel_pdf, _pixel_pdf), "power": (_keep_power, _power), "peaks": (_keep_peaks, _peaks),
            "minkowski": (_keep_minkowski, _minkowski), "clusters": (_keep_clusters, _clusters),
            "marginals": (_keep_marginals, _marginals), "morphology": (_keep_morphology, _morphology)}


def evaluate(real_path: str | os.PathLike, generated_path: str | os.PathLike, out_dir: str | os.PathLike,
             stats: tuple[str, ...] | list[str] | None = None, n_max: int = 1000, seed: int = 0,
             condition: str | None = None, progress: bool = False,
             judge: str | os.PathLike | None = None, batch_size: int = 256, by: str | None = None,
             bins: Sequence[float] | None = None, judge_bootstrap: int = 1000) -> Evaluation:
    """Compare a generated FieldSet with a real one; write ``out_dir/report.html`` and ``scorecard.json``.

    Parameters
    ----------
    real_path, generated_path : FieldSet files of 2D maps with the same channels, map shape, units and
        pixel size (generated sets are stored in physical units by `astrogen sample`).
    out_dir : output folder (created if missing).
    stats : statistics to score and draw (names of `astrogen.stats.compare.compare`, plus the drawn-only
        "morphology" and "marginals"); default: the scorecard's defaults and marginals, plus morphology when
        the channels are galaxy bands (ugrizy).
    n_max : at most this many maps are read from each set, drawn at random without replacement (morphology
        measures the first `MORPHOLOGY_MAX` of them).
    seed : seed of that draw and of the scorecard's bootstrap.
    condition : name of a parameter present in both sets; morphology and stamp photometry (flux per band,
        colours) are then also shown as 95% intervals per bin of it (needs the morphology section). With a
        ``judge`` it defaults to ``by`` (when morphology is drawn), binned by the judge's bins.
    progress : show a progress bar on stderr.
    judge : checkpoint of a redshift regressor (``data.targets: [redshift]``, e.g.
        ``configs/train/galaxies-zcnn.yaml``): the redshift-judge protocol. It predicts the redshift of every
        selected real (held out from its training) and generated map; per bin of ``by`` the bias, sigma_NMAD,
        outlier fraction and mean HSC loss (`astrogen.stats.redshift.binned_photoz_metrics`, against each set's
        ``redshift`` parameter: the true and the conditioned redshift) with bootstrap errors, and whether the sets
        agree within 2.5 combined sigma in every metric (`astrogen.stats.redshift.compare_binned`). Adds a
        "Redshift judge" section and ``redshift_judge`` to scorecard.json; it does not change the scorecard's
        verdict.
    batch_size : maps read and measured at a time (in float64); memory grows with it, not with ``n_max``.
    by : parameter (in both sets) whose bins the judge is scored in; default ``redshift`` with a judge.
    bins : strictly increasing bin edges of ``by``; default `astrogen.stats.redshift.REDSHIFT_EDGES`
        (0, 0.4, 0.8, 1.2, 2, 4) for redshift, else 5 quantile bins of the real set's values. Maps outside
        the edges are counted, not binned.
    judge_bootstrap : bootstrap resamples per bin and set for the judge's error bars.

    Returns
    -------
    `Evaluation` with the paths of ``report.html`` and ``scorecard.json`` and the `Scorecard`
    (``.passed``, ``.table()``); with a judge also its metrics on the whole generated set (``judge``) and
    per bin (``judge_bins``, ``judge_table()``).
    """
    from astrogen.stats.redshift import REDSHIFT_EDGES, check_edges

    if n_max < 2:
        raise ConfigError(f"n_max must be at least 2 maps, got {n_max}")
    if judge is None and (by is not None or bins is not None):
        raise ConfigError("--by and --bins bin the redshift judge's metrics; give --judge CHECKPOINT too")
    edges = None if bins is None else check_edges(bins)
    by = by or "redshift"
    wanted = list(stats) if stats is not None else list(DEFAULT_STATS)
    rng = np.random.default_rng(seed)
    if Path(real_path).resolve() == Path(generated_path).resolve():
        warnings.warn(f"{real_path} is compared with itself: every row passes trivially", stacklevel=2)
    with FieldSet(real_path) as real_fs, FieldSet(generated_path) as gen_fs:
        _check_compatible(real_fs, gen_fs)
        meta = real_fs.meta
        if stats is None:
            wanted += ["marginals", *(["morphology"] if set(meta.channels) <= GALAXY_BANDS else [])]
        if condition is not None and "morphology" not in wanted:
            raise ConfigError(f"condition {condition!r} bins the morphology section; add 'morphology' to the stats")
        if judge is not None:
            for fs in (real_fs, gen_fs):
                for name in dict.fromkeys(("redshift", by)):
                    if name not in fs.params:
                        raise ConfigError(f"--judge: {fs.path} has no {name!r} parameter "
                                          f"({'to score predictions against' if name == 'redshift' else 'to bin by'}"
                                          f"; parameters: {fs.param_names})")
            if condition is None and "morphology" in wanted:
                condition = by  # the judge's bins also bin morphology and photometry
        real_index = _subset(real_fs, n_max, rng, condition)
        gen_index = _subset(gen_fs, n_max, rng, condition)
        if judge is not None and edges is None:
            edges = (np.asarray(REDSHIFT_EDGES) if by == "redshift"
                     else figures.quantile_edges(real_fs.params[by][real_index]))
        x = Inputs(list(meta.channels), meta.units, meta.pixel_size or 1.0,
                   meta.pixel_unit if meta.pixel_size else "pixel", meta.periodic and gen_fs.meta.periodic, condition,
                   *(None if condition is None else fs.params[condition][index]
                     for fs, index in ((real_fs, real_index), (gen_fs, gen_index))),
                   edges if judge is not None and condition == by else None)
        drawn = [name for name in SECTIONS if name in wanted]
        scored = tuple(name for name in wanted if name not in REPORT_ONLY)

        module = None if judge is None else _load_judge(judge, real_fs.sample_shape)
        real_batches = FileBatches(real_fs, batch_size, real_index)
        gen_batches = FileBatches(gen_fs, batch_size, gen_index)
        shapes = {"real_shape": [len(real_index), *real_fs.sample_shape],
                  "generated_shape": [len(gen_index), *gen_fs.sample_shape]}
        with progress_bar(len(real_batches) + len(gen_batches) + len(drawn) + 1, "evaluating",
                          enabled=progress) as advance:
            observe, kept = _collector(x, drawn, module, advance)
            scorecard = compare_batches(real_batches, gen_batches, stats=scored, pixel_size=x.pixel_size, seed=seed,
                                        periodic=x.periodic, provenance=shapes, observe=observe,
                                        clamped_fraction=clamped_fraction(gen_fs))
            sections = _samples(x, kept["real"], kept["generated"])
            advance(1)
            for name in drawn:
                sections += SECTIONS[name][1](x, kept["real"], kept["generated"])
                advance(1)
        judged = judge_bins = None
        if module is not None:
            real_z, gen_z = ((np.concatenate(kept[which]["judge"]), fs.params["redshift"][index], fs.params[by][index])
                             for which, fs, index in (("real", real_fs, real_index), ("generated", gen_fs, gen_index)))
            judge_bins, section = _judge(by, edges, real_z, gen_z, judge_bootstrap, seed,
                                        "morphology" in drawn and condition == by)
            judged = judge_bins["overall"]["generated"]
            sections.append(section)
        inputs = {"real": _provenance(real_fs, len(real_index)), "generated": _provenance(gen_fs, len(gen_index))}
    provenance = {**inputs, "seed": seed, "n_max": n_max, "condition": condition,
                  **({"judge": str(judge), "judge_by": by, "judge_bins": edges.tolist()} if judge is not None else {}),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    scorecard.provenance.update(provenance)
    path = write_report(out_dir, sections, scorecard, provenance,
                        extra=None if judge_bins is None else {"redshift_judge": judge_bins})
    return Evaluation(path, path.with_name("scorecard.json"), scorecard, judged, judge_bins)
