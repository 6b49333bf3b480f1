"""`evaluate`: compare a generated FieldSet with a real one and write the HTML report and scorecard.

The glue between `astrogen.data.FieldSet`, `astrogen.stats` (the statistics and the scorecard) and the
report figures; it owns no statistics of its own.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from astrogen.data import FieldSet
from astrogen.errors import ConfigError, DataError
from astrogen.progress import progress_bar
from astrogen.report import figures
from astrogen.report.html import Section, write_report
from astrogen.report.style import figure_to_data_uri, k_unit, power_unit

if TYPE_CHECKING:
    from astrogen.stats.compare import Scorecard

# Statistics drawn in the report when none are named (the scorecard's defaults); "morphology" is added
# for galaxy images, "marginals" always. Both are drawn but not scored: the scorecard contract does not list them.
DEFAULT_STATS = ("pixel_pdf", "power", "peaks", "minkowski", "clusters", "bispectrum", "mean")
REPORT_ONLY = ("morphology", "marginals")
GALAXY_BANDS = frozenset("ugrizy")


@dataclass
class Inputs:
    """What every section needs: both sets of maps [N, C, H, W] and what their numbers mean."""

    real: np.ndarray
    gen: np.ndarray
    channels: list[str]
    units: str
    pixel_size: float
    pixel_unit: str
    periodic: bool
    sigma: np.ndarray  # [C] pixel std of the real maps: the unit of peak heights and thresholds
    condition: str | None
    real_condition: np.ndarray | None
    gen_condition: np.ndarray | None


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


def _read(fs: FieldSet, n_max: int, rng: np.random.Generator, condition: str | None):
    """Up to ``n_max`` maps drawn at random (without replacement), their ``condition`` values and all params."""
    if condition is not None and condition not in fs.params:
        raise ConfigError(f"{fs.path}: no parameter {condition!r} to bin by (parameters: {fs.param_names})")
    index = np.sort(rng.choice(len(fs), size=min(n_max, len(fs)), replace=False))
    batch = fs[index]
    # Kept float32 as stored (half the memory of 2 x n_max maps); each statistic converts to float64.
    return batch.images, None if condition is None else batch.params[condition], batch.params


def _provenance(fs: FieldSet, n_used: int) -> dict:
    return {"file": str(Path(fs.path).resolve()), "samples": f"{n_used} of {len(fs)}", **asdict(fs.meta)}


def _samples(x: Inputs) -> list[Section]:
    return [Section("Samples", [figure_to_data_uri(figures.sample_grid(x.real, x.gen, x.channels))],
                    "Randomly drawn maps, real on the left, generated on the right; one colour scale per channel.")]


def _pixel_pdf(x: Inputs) -> list[Section]:
    from astrogen.stats.onepoint import histograms, shared_edges

    images = []
    for log in (False, True):
        if log and min(x.real.min(), x.gen.min()) <= 0:
            continue  # log-spaced bins need positive pixel values
        edges = shared_edges(x.real, x.gen, bins=50, log=log)
        fig = figures.histogram_figure(histograms(x.real, edges), histograms(x.gen, edges), x.channels, x.units)
        images.append(figure_to_data_uri(fig))
    return [Section("Pixel distribution", images, "Per-map histograms: mean and ±1σ scatter over maps.")]


def _power(x: Inputs) -> list[Section]:
    from astrogen.stats.power import correlation_coefficient, power_spectrum

    ku = k_unit(x.pixel_unit)
    real = power_spectrum(x.real, pixel_size=x.pixel_size)
    gen = power_spectrum(x.gen, pixel_size=x.pixel_size)
    fig = figures.power_figure(real, gen, ku, power_unit(x.units, x.pixel_unit), x.channels)
    sections = [Section("Power spectrum", [figure_to_data_uri(fig)],
                        "Mean P(k) with ±1σ map-to-map scatter; bottom: generated/real.")]
    if len(x.channels) > 1:
        k, r_real = correlation_coefficient(x.real, pixel_size=x.pixel_size)
        _, r_gen = correlation_coefficient(x.gen, pixel_size=x.pixel_size)
        fig = figures.correlation_figure(k, r_real, r_gen, x.channels, ku)
        sections.append(Section("Cross-correlation between channels", [figure_to_data_uri(fig)],
                                "r(k) = P_ij / sqrt(P_ii P_jj) for every channel pair."))
    return sections


def _peaks(x: Inputs) -> list[Section]:
    from astrogen.stats.peaks import peak_counts, stacked_profile

    kwargs = {"sigma": x.sigma, "pixel_size": x.pixel_size, "periodic": x.periodic}
    real, gen = peak_counts(x.real, **kwargs), peak_counts(x.gen, **kwargs)
    _, r, profile_real = stacked_profile(x.real)
    _, r_gen, profile_gen = stacked_profile(x.gen)
    fig = figures.peaks_figure(real, gen, x.channels, x.units, (r, profile_real), (r_gen, profile_gen))
    return [Section("Peaks", [figure_to_data_uri(fig)],
                    "Local maxima per map by height ν in units of the real maps' pixel σ; stacked peak profiles.")]


def _minkowski(x: Inputs) -> list[Section]:
    from astrogen.stats.minkowski import minkowski_functionals

    kwargs = {"sigma": x.sigma, "pixel_size": x.pixel_size, "periodic": x.periodic}
    fig = figures.minkowski_figure(minkowski_functionals(x.real, **kwargs), minkowski_functionals(x.gen, **kwargs),
                                   x.channels, x.pixel_unit)
    return [Section("Minkowski functionals", [figure_to_data_uri(fig)],
                    "Area, boundary length and Euler characteristic of the excursion sets above each threshold.")]


def _clusters(x: Inputs) -> list[Section]:
    from astrogen.stats.clusters import clusters

    kwargs = {"sigma0": x.sigma, "periodic": x.periodic}
    fig = figures.clusters_figure(clusters(x.real, **kwargs), clusters(x.gen, **kwargs), x.channels)
    return [Section("Clusters", [figure_to_data_uri(fig)],
                    "Connected regions above threshold: count per map and pooled size distribution.")]


def _marginals(x: Inputs) -> list[Section]:
    fig = figures.marginal_figure(x.real, x.gen, x.channels, x.units)
    return [Section("Marginal sums and 2D power", [figure_to_data_uri(fig)],
                    "Sums over rows (vs x) and columns (vs y), mean ±1σ over maps; log10 of the mean |FFT|².")]


def _morphology(x: Inputs) -> list[Section]:
    from astrogen.stats.morphology import morphology

    real = morphology(x.real, pixel_size=x.pixel_size)
    gen = morphology(x.gen, pixel_size=x.pixel_size)
    band = next((x.channels.index(b) for b in ("r", "i") if b in x.channels), 0)
    name, unit = x.channels[band], x.pixel_unit
    images = [figure_to_data_uri(figures.morphology_figure(real, gen, band, name, unit))]
    if x.condition is not None:
        images.append(figure_to_data_uri(figures.morphology_interval_figure(
            real, gen, x.real_condition, x.gen_condition, x.condition, band, name, unit)))
    return [Section("Morphology", images, f"Shape measurements of the central object in the {name} band.")]


def _judge(checkpoint, gen: np.ndarray, z_true: np.ndarray) -> tuple[dict[str, float], Section]:
    """Photo-z metrics of a redshift regressor's predictions for generated maps against their conditions."""
    from astrogen.models.inference import load_model
    from astrogen.report.model_report import scatter_figure
    from astrogen.stats.redshift import photoz_metrics

    module = load_model(checkpoint)
    if module.task != "regressor" or list(module.hparams.targets) != ["redshift"]:
        raise ConfigError(f"--judge {checkpoint}: not a redshift regressor (targets: [redshift])")
    z_pred = module.predict(gen)[:, 0]
    metrics = photoz_metrics(z_pred, z_true)
    note = ("A redshift CNN trained on real (simulated) galaxies predicts the redshift of each generated galaxy; "
            "a generator that honours its condition gives metrics close to the CNN's own on real galaxies.")
    figure = scatter_figure(z_pred[:, None], np.asarray(z_true)[:, None], ["redshift"])
    return metrics, Section("Redshift judge", [figure], note, metrics)


@dataclass
class Evaluation:
    """What `evaluate` wrote: the report page, the scorecard file, and the scorecard itself."""

    report: Path
    scorecard_json: Path
    scorecard: Scorecard
    judge: dict[str, float] | None = None  # photo-z metrics of the judge on the generated set


SECTIONS = {"pixel_pdf": _pixel_pdf, "power": _power, "peaks": _peaks, "minkowski": _minkowski,
            "clusters": _clusters, "marginals": _marginals, "morphology": _morphology}


def evaluate(real_path: str | os.PathLike, generated_path: str | os.PathLike, out_dir: str | os.PathLike,
             stats: tuple[str, ...] | list[str] | None = None, n_max: int = 1000, seed: int = 0,
             condition: str | None = None, progress: bool = False,
             judge: str | os.PathLike | None = None) -> Evaluation:
    """Compare a generated FieldSet with a real one; write ``out_dir/report.html`` and ``scorecard.json``.

    Parameters
    ----------
    real_path, generated_path : FieldSet files of 2D maps with the same channels, map shape, units and
        pixel size (generated sets are stored in physical units by `astrogen sample`).
    out_dir : output folder (created if missing).
    stats : statistics to score and draw (names of `astrogen.stats.compare.compare`, plus the drawn-only
        "morphology" and "marginals"); default: the scorecard's defaults and marginals, plus morphology when
        the channels are galaxy bands (ugrizy).
    n_max : at most this many maps are read from each set, drawn at random without replacement.
    seed : seed of that draw and of the scorecard's bootstrap.
    condition : name of a parameter present in both sets; morphology is then also shown as 95% intervals
        per bin of it (needs the morphology section).
    progress : show a progress bar on stderr.
    judge : checkpoint of a redshift regressor (``targets: [redshift]``, e.g. ``configs/galaxies-zcnn.yaml``):
        it predicts the redshift of each generated map, scored with `photoz_metrics` against the generated
        set's ``redshift`` parameter (the condition it was generated with); adds a "Redshift judge" section.

    Returns
    -------
    `Evaluation` with the paths of ``report.html`` and ``scorecard.json`` and the `Scorecard`
    (``.passed``, ``.table()``).
    """
    if n_max < 2:
        raise ConfigError(f"n_max must be at least 2 maps, got {n_max}")
    wanted = list(stats) if stats is not None else list(DEFAULT_STATS)
    rng = np.random.default_rng(seed)
    with FieldSet(real_path) as real_fs, FieldSet(generated_path) as gen_fs:
        _check_compatible(real_fs, gen_fs)
        meta = real_fs.meta
        if stats is None:
            wanted += ["marginals", *(["morphology"] if set(meta.channels) <= GALAXY_BANDS else [])]
        if condition is not None and "morphology" not in wanted:
            raise ConfigError(f"condition {condition!r} bins the morphology section; add 'morphology' to the stats")
        real, real_cond, _ = _read(real_fs, n_max, rng, condition)
        gen, gen_cond, gen_params = _read(gen_fs, n_max, rng, condition)
        if judge is not None and "redshift" not in gen_params:
            raise ConfigError(f"--judge: {gen_fs.path} has no 'redshift' parameter to score predictions against")
        inputs = {"real": _provenance(real_fs, len(real)), "generated": _provenance(gen_fs, len(gen))}
    x = Inputs(real, gen, list(meta.channels), meta.units, meta.pixel_size or 1.0,
               meta.pixel_unit if meta.pixel_size else "pixel", meta.periodic and gen_fs.meta.periodic,
               real.std(axis=(0, 2, 3), dtype=np.float64), condition, real_cond, gen_cond)
    drawn = [name for name in SECTIONS if name in wanted]
    scored = tuple(name for name in wanted if name not in REPORT_ONLY)
    from astrogen.stats.compare import compare  # after the input checks, which need no statistics

    with progress_bar(len(drawn) + 1, "evaluating", enabled=progress) as advance:
        scorecard = compare(real, gen, stats=scored, pixel_size=x.pixel_size, seed=seed, periodic=x.periodic)
        advance(1)
        sections = _samples(x)
        for name in drawn:
            sections += SECTIONS[name](x)
            advance(1)
        judged = None
        if judge is not None:
            judged, section = _judge(judge, gen, gen_params["redshift"])
            sections.append(section)
    provenance = {**inputs, "seed": seed, "n_max": n_max, "condition": condition,
                  **({"judge": str(judge)} if judge is not None else {}),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    scorecard.provenance.update(provenance)
    path = write_report(out_dir, sections, scorecard, provenance)
    return Evaluation(path, path.with_name("scorecard.json"), scorecard, judged)
