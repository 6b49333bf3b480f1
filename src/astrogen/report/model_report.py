"""Evaluation of a trained inference network on a FieldSet: metrics table, figures and an HTML report.

`evaluate_model` loads a regressor, segmentation or denoiser checkpoint, runs it on (the first
``n_max`` samples of) a FieldSet and writes ``out_dir/report.html`` and ``out_dir/metrics.json``:

* regressor: mean relative error (targets that are never 0) and mean absolute error per target, the
  photo-z metrics (`astrogen.stats.redshift`) when the target is ``redshift``; predicted-vs-true plots.
* segmentation: approach A / B accuracy and ROC AUC per image, mean and std (`astrogen.stats.inference`);
  example images, targets and probabilities.
* denoiser: MSE of the denoised and of the noisy image against the clean one (normalised images,
  the noise drawn from ``seed``); noisy / denoised / clean triplets.
* posterior: per target, the posterior mean's relative error and MAE, its bias (in the target's units and in
  posterior standard deviations), the mean 68% / 95% central credible interval widths, their empirical coverage
  and the share of samples outside the training range; calibration (`astrogen.stats.calibration`): expected
  coverage curves, TARP and SBC rank histograms, drawn, with their numbers and every image's posterior mean,
  standard deviation and intervals in ``metrics.json``. The report says in words whether coverage holds, and
  which simulator settings of the evaluation set differ from the training set's (a mis-specification check).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from astrogen._io import atomic_write_text
from astrogen.data import FieldSet
from astrogen.errors import ConfigError
from astrogen.report.html import Section, write_report
from astrogen.report.style import OKABE_ITO, figure_to_data_uri, new_figure, style
from astrogen.stats.calibration import Calibration, calibrate, central_intervals, coverage_tolerance
from astrogen.stats.inference import (
    DEFAULT_CUT,
    mean_absolute_error,
    mse_per_image,
    relative_error,
    segmentation_scores,
)
from astrogen.stats.redshift import photoz_metrics


@dataclass
class ModelEvaluation:
    """What `evaluate_model` measured and wrote."""

    task: str
    metrics: dict[str, float]
    report: Path
    metrics_json: Path
    notes: list[str] = field(default_factory=list)  # verdicts in words (posterior: coverage, mis-specification)

    def table(self):
        """The metrics as a `rich.table.Table`."""
        from rich.table import Table

        table = Table(title=f"{self.task} metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in self.metrics.items():
            table.add_row(name, f"{value:.4g}")
        return table


def scatter_figure(pred: np.ndarray, true: np.ndarray, names: list[str]):
    """Predicted vs true, one panel per target, with the 1:1 line."""
    with style():
        fig, axes = new_figure(1, len(names), panel_size=(3.0, 3.0))
        for ax, p, t, name in zip(axes[0], pred.T, true.T, names):
            ax.scatter(t, p, s=4, alpha=0.5, color=OKABE_ITO["blue"], linewidths=0)
            lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
            ax.plot([lo, hi], [lo, hi], color=OKABE_ITO["black"], lw=1)
            ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}")
        return figure_to_data_uri(fig)


def image_rows_figure(rows: list[np.ndarray], titles: list[str], n: int = 4):
    """Columns of example images (one column per entry of ``rows``, arrays ``[N, 1, H, W]``), ``n`` rows."""
    n = min(n, len(rows[0]))
    with style():
        fig, axes = new_figure(n, len(rows), panel_size=(2.2, 2.2))
        for i in range(n):
            for j, (images, title) in enumerate(zip(rows, titles)):
                ax = axes[i, j]
                ax.imshow(images[i, 0], origin="upper")
                ax.set(xticks=[], yticks=[], title=title if i == 0 else "")
                ax.grid(False)
        return figure_to_data_uri(fig)


def _regressor(module, batch, batch_size: int, **_) -> tuple[dict, list[Section]]:
    names = list(module.hparams.targets)
    pred, true = module.predict(batch.images, batch_size), module.targets_of(batch.params)
    metrics = {}
    for j, name in enumerate(names):
        if np.all(true[:, j] != 0):
            metrics[f"rel_error_{name}"] = float(relative_error(pred[:, j], true[:, j])[0])
        metrics[f"mae_{name}"] = float(mean_absolute_error(pred[:, j], true[:, j])[0])
    if names == ["redshift"]:
        metrics |= {f"photoz_{k}": v for k, v in photoz_metrics(pred[:, 0], true[:, 0]).items()}
    return metrics, [Section("Predicted vs true", [scatter_figure(pred, true, names)],
                             "Each point is one image of the evaluation set.", metrics)]


def _segmentation(module, batch, batch_size: int, cut: float, threshold: float | None, **_):
    if batch.masks is None:
        raise ConfigError("segmentation evaluation needs a FieldSet with masks")
    threshold = module.config.threshold if threshold is None else threshold
    prob = module.predict(batch.images, batch_size)
    metrics = segmentation_scores(prob, batch.masks, cut, threshold).summary()
    figure = image_rows_figure([np.log1p(batch.images), (batch.masks > threshold).astype(float), prob],
                               ["log(1 + counts)", f"target (mask > {threshold:g})", "probability"])
    note = (f"Approach A: targets are pixels with mask > {threshold:g} counts; approach B: the N brightest mask "
            f"pixels, N = pixels predicted above the cut {cut:g}. Mean and std over images.")
    return metrics, [Section("Point-source segmentation", [figure], note, metrics)]


def _denoiser(module, batch, batch_size: int, seed: int, **_):
    clean, noisy = module.corrupt(batch.images, seed)
    denoised = module.denoise(noisy, batch_size)
    metrics = {"mse_denoised": float(mse_per_image(denoised, clean).mean()),
               "mse_noisy": float(mse_per_image(noisy, clean).mean())}
    figure = image_rows_figure([noisy, denoised, clean], ["noisy", "denoised", "clean"])
    note = f"Noise: {module.noise.to_list()}; images normalised by their maximum."
    return metrics, [Section("Denoising", [figure], note, metrics)]


LEVELS = (0.68, 0.95)  # credible levels of the reported intervals


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def coverage_sentences(cal: Calibration) -> list[str]:
    """The coverage verdicts in words: one sentence per failing (target, level), or one saying it holds, and TARP."""
    lines = []
    for level in LEVELS:
        tolerance = float(coverage_tolerance(level, cal.n))
        for name, got, verdict in zip(cal.names, cal.at(level), cal.verdict(level)):
            if verdict != "holds":
                kind = "overconfident (intervals too narrow or off-centre)" if verdict == "under" \
                    else "conservative (intervals too wide)"
                lines.append(f"Coverage FAILS for {name}: the {level:.0%} credible intervals contain the truth in "
                             f"{_percent(got)} of the {cal.n} images (nominal {level:.0%}, tolerance "
                             f"+-{100 * tolerance:.1f} points): the posterior is {kind}.")
    if not lines:
        lines.append(f"Coverage holds: for every target the 68% and 95% credible intervals contain the truth in a "
                     f"share of the {cal.n} images within +-{100 * float(coverage_tolerance(0.68, cal.n)):.1f} / "
                     f"+-{100 * float(coverage_tolerance(0.95, cal.n)):.1f} points of nominal.")
    tolerance = float(coverage_tolerance(0.5, cal.n))
    joint = "holds" if cal.tarp_max_deviation <= tolerance else "FAILS"
    lines.append(f"Joint calibration (TARP) {joint}: the expected coverage probability is at most "
                 f"{cal.tarp_max_deviation:.3f} from the credibility level (tolerance {tolerance:.3f}).")
    return lines


def config_differences(training: dict | None, meta) -> dict[str, list] | None:
    """Simulator settings ``{key: [training value, evaluation value]}`` that differ between the training set
    (``training_data`` of the checkpoint) and the evaluation set's metadata; None if either is unknown."""
    if not training or not training.get("simulator") or meta.simulator is None:
        return None
    train_cfg = json.loads(json.dumps({"simulator": training["simulator"],
                                       "simulator_version": training.get("simulator_version"),
                                       **training.get("config", {})}))
    test_cfg = json.loads(json.dumps({"simulator": meta.simulator, "simulator_version": meta.simulator_version,
                                      **meta.config}))
    return {k: [train_cfg.get(k), test_cfg.get(k)] for k in sorted(set(train_cfg) | set(test_cfg))
            if train_cfg.get(k) != test_cfg.get(k)}


def posterior_figures(median, low, high, true, cal: Calibration, n_max: int = 400) -> list[str]:
    """Posterior median with its central 68% interval against the truth (one panel per target, the first ``n_max``
    images); coverage curves, TARP and SBC rank histograms, each with the calibrated expectation."""
    names, n = cal.names, cal.n
    with style():
        fig, axes = new_figure(1, len(names), panel_size=(3.0, 3.0))
        for j, (ax, name) in enumerate(zip(axes[0], names)):
            t, m = true[:n_max, j], median[:n_max, j]
            ax.errorbar(t, m, yerr=[m - low[:n_max, j], high[:n_max, j] - m], fmt="o", ms=2, lw=0.5, alpha=0.5,
                        color=OKABE_ITO["blue"])
            lo, hi = min(t.min(), low[:n_max, j].min()), max(t.max(), high[:n_max, j].max())
            ax.plot([lo, hi], [lo, hi], color=OKABE_ITO["black"], lw=1)
            ax.set(title=name, xlabel="true value", ylabel="posterior median and 68% interval")
        scatter = figure_to_data_uri(fig)
    band = 3 * np.sqrt(cal.levels * (1 - cal.levels) / n)
    with style():
        fig, axes = new_figure(1, 3, panel_size=(3.2, 3.0))
        ax = axes[0, 0]
        ax.fill_between(cal.levels, cal.levels - band, cal.levels + band, color="0.85", label="calibrated, 3 sd")
        for j, name in enumerate(names):
            ax.plot(cal.levels, cal.coverage[:, j], label=name)
        ax.plot([0, 1], [0, 1], color=OKABE_ITO["black"], lw=1)
        ax.set(xlabel="credible level", ylabel="empirical coverage", title="expected coverage (central intervals)")
        ax.legend(loc="upper left")
        ax = axes[0, 1]
        ax.fill_between(cal.levels, cal.levels - band, cal.levels + band, color="0.85")
        ax.plot(cal.levels, cal.tarp, color=OKABE_ITO["vermillion"])
        ax.plot([0, 1], [0, 1], color=OKABE_ITO["black"], lw=1)
        ax.set(xlabel="credibility level alpha", ylabel="ECP", title="TARP (joint)")
        ax = axes[0, 2]
        bins = 20
        expected, sd = n / bins, np.sqrt(n * (1 / bins) * (1 - 1 / bins))
        ax.axhspan(expected - 3 * sd, expected + 3 * sd, color="0.85")
        for j, name in enumerate(names):
            counts, edges = np.histogram(cal.ranks[:, j], bins=bins, range=(0, 1))
            ax.stairs(counts, edges, label=name)
        ax.set(xlabel="normalised rank of the truth", ylabel="images", title="SBC ranks")
        ax.set_ylim(bottom=0)
        calibration = figure_to_data_uri(fig)
    return [scatter, calibration]


def _posterior(module, batch, batch_size: int, seed: int, n_samples: int = 1000, meta=None, **_):
    names = list(module.hparams.targets)
    true = module.targets_of(batch.params)
    samples = module.sample(batch.images, n_samples, seed=seed, batch_size=batch_size)  # [N, S, T]
    mean, std = samples.mean(1), samples.std(1)
    low, high = central_intervals(samples, LEVELS)
    cal = calibrate(samples, true, names, seed=seed)
    train_low = np.asarray(module.hparams.target_low if module.hparams.target_low is not None else -np.inf)
    train_high = np.asarray(module.hparams.target_high if module.hparams.target_high is not None else np.inf)
    outside = ((samples < train_low) | (samples > train_high)).mean((0, 1))  # [T]
    metrics = {}
    for j, name in enumerate(names):
        if np.all(true[:, j] != 0):
            metrics[f"rel_error_{name}"] = float(relative_error(mean[:, j], true[:, j])[0])
        metrics[f"mae_{name}"] = float(mean_absolute_error(mean[:, j], true[:, j])[0])
        metrics[f"bias_{name}"] = float(np.mean(mean[:, j] - true[:, j]))
        metrics[f"bias_sd_{name}"] = float(np.mean((mean[:, j] - true[:, j]) / std[:, j]))
        metrics[f"std_{name}"] = float(np.mean(std[:, j]))
        for k, level in enumerate(LEVELS):
            tag = f"{round(100 * level)}"
            metrics[f"width{tag}_{name}"] = float(np.mean(high[k, :, j] - low[k, :, j]))
            metrics[f"coverage{tag}_{name}"] = float(cal.at(level)[j])
        metrics[f"outside_train_range_{name}"] = float(outside[j])
    metrics["tarp_max_deviation"] = cal.tarp_max_deviation
    notes = coverage_sentences(cal)
    differences = config_differences(module.hparams.get("training_data"), meta) if meta is not None else None
    shifts = ", ".join(f"{name} {metrics[f'bias_{name}']:+.4g} ({metrics[f'bias_sd_{name}']:+.2f} posterior sd)"
                       for name in names)
    if differences:
        what = "; ".join(f"{k}: {test!r} here, {train!r} in training" for k, (train, test) in differences.items())
        notes.insert(0, f"Mis-specification check: the evaluation set was simulated with other settings than the "
                        f"training set ({what}). Mean shift of the posterior means from the truth: {shifts}.")
    else:
        known = "the training set's simulator settings" if differences is not None else "unknown simulator settings"
        notes.insert(0, f"The evaluation set was simulated with {known}. Mean shift of the posterior means from the "
                        f"truth: {shifts}.")
    sections = [Section("Posterior", posterior_figures(np.median(samples, 1), low[0], high[0], true, cal),
                        " ".join(notes) + f" {n_samples} posterior samples per image (seed {seed}); central "
                        "credible intervals; coverage from the truths' ranks among the samples (SBC); TARP with "
                        "random reference points; grey bands: 3 binomial standard deviations around calibration.",
                        metrics)]
    per_image = {"mean": mean, "std": std, **{f"low{round(100 * lv)}": low[k] for k, lv in enumerate(LEVELS)},
                 **{f"high{round(100 * lv)}": high[k] for k, lv in enumerate(LEVELS)}, "truth": true}
    details = {"posterior": {
        "targets": names, "n_samples": n_samples, "notes": notes, "config_differences": differences,
        "levels": cal.levels.tolist(), "coverage": {name: cal.coverage[:, j].tolist() for j, name in enumerate(names)},
        "tarp_ecp": cal.tarp.tolist(),
        "verdicts": {f"{round(100 * lv)}": dict(zip(names, cal.verdict(lv))) for lv in LEVELS},
        "per_image": {k: v.tolist() for k, v in per_image.items()}}}
    return metrics, sections, details, notes


EVALUATORS = {"regressor": _regressor, "segmentation": _segmentation, "denoiser": _denoiser, "posterior": _posterior}


def evaluate_model(checkpoint: str | os.PathLike, data: str | os.PathLike, out_dir: str | os.PathLike,
                   n_max: int | None = None, batch_size: int = 128, cut: float = DEFAULT_CUT,
                   threshold: float | None = None, seed: int = 0, device: str = "cpu",
                   n_samples: int = 1000) -> ModelEvaluation:
    """Score an inference-network checkpoint on a FieldSet; write ``report.html`` and ``metrics.json``.

    Parameters
    ----------
    checkpoint : regressor, segmentation, denoiser or posterior checkpoint (from ``astrogen train``).
    data : FieldSet with the same image shape (and the target columns / masks the task needs).
    out_dir : output folder (created if missing).
    n_max : use the first ``n_max`` samples (default: all).
    batch_size : images per forward pass.
    cut : segmentation probability cut; threshold : mask counts of a point-source pixel (default: the
        model's training threshold).
    seed : seed of the denoiser's noise draw and of the posterior's samples.
    device : torch device to run on.
    n_samples : posterior samples per image.
    """
    from astrogen.tasks import load_model

    if n_max is not None and n_max < 1:
        raise ConfigError(f"n_max must be >= 1, got {n_max}")
    if not 0 <= cut < 1:
        raise ConfigError(f"cut must be in [0, 1), got {cut}")
    if n_samples < 2:
        raise ConfigError(f"n_samples must be >= 2, got {n_samples}")
    module = load_model(checkpoint, device, kinds=tuple(EVALUATORS))
    with FieldSet(data) as fs:
        batch = fs[: len(fs) if n_max is None else min(n_max, len(fs))]
        meta = fs.meta
        provenance = {"checkpoint": str(checkpoint), "data": str(fs.path), "n": len(batch.images)}
    metrics, sections, *more = EVALUATORS[module.task](module, batch, batch_size=batch_size, cut=cut,
                                                       threshold=threshold, seed=seed, n_samples=n_samples, meta=meta)
    details, notes = more if more else ({}, [])
    provenance |= {"task": module.task, "seed": seed,
                   "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = write_report(out_dir, sections, None, provenance, title=f"astrogen model evaluation: {module.task}")
    metrics_json = path.with_name("metrics.json")
    atomic_write_text(metrics_json, json.dumps({"task": module.task, "metrics": metrics, **provenance, **details},
                                               indent=1))
    return ModelEvaluation(module.task, metrics, path, metrics_json, notes)
