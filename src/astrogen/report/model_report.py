"""Evaluation of a trained inference network on a FieldSet: metrics table, figures and an HTML report.

`evaluate_model` loads a regressor, segmentation or denoiser checkpoint, runs it on (the first
``n_max`` samples of) a FieldSet and writes ``out_dir/report.html`` and ``out_dir/metrics.json``:

* regressor: mean relative error (targets that are never 0) and mean absolute error per target, the
  photo-z metrics (`astrogen.stats.redshift`) when the target is ``redshift``; predicted-vs-true plots.
* segmentation: approach A / B accuracy and ROC AUC per image, mean and std (`astrogen.stats.inference`);
  example images, targets and probabilities.
* denoiser: MSE of the denoised and of the noisy image against the clean one (normalised images,
  the noise drawn from ``seed``); noisy / denoised / clean triplets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from astrogen._io import atomic_write_text
from astrogen.data import FieldSet
from astrogen.errors import ConfigError
from astrogen.report.html import Section, write_report
from astrogen.report.style import OKABE_ITO, figure_to_data_uri, new_figure, style
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


EVALUATORS = {"regressor": _regressor, "segmentation": _segmentation, "denoiser": _denoiser}


def evaluate_model(checkpoint: str | os.PathLike, data: str | os.PathLike, out_dir: str | os.PathLike,
                   n_max: int | None = None, batch_size: int = 128, cut: float = DEFAULT_CUT,
                   threshold: float | None = None, seed: int = 0, device: str = "cpu") -> ModelEvaluation:
    """Score an inference-network checkpoint on a FieldSet; write ``report.html`` and ``metrics.json``.

    Parameters
    ----------
    checkpoint : regressor, segmentation or denoiser checkpoint (from ``astrogen train``).
    data : FieldSet with the same image shape (and the target columns / masks the task needs).
    out_dir : output folder (created if missing).
    n_max : use the first ``n_max`` samples (default: all).
    batch_size : images per forward pass.
    cut : segmentation probability cut; threshold : mask counts of a point-source pixel (default: the
        model's training threshold).
    seed : seed of the denoiser's noise draw.
    device : torch device to run on.
    """
    from astrogen.tasks import load_model

    if n_max is not None and n_max < 1:
        raise ConfigError(f"n_max must be >= 1, got {n_max}")
    if not 0 <= cut < 1:
        raise ConfigError(f"cut must be in [0, 1), got {cut}")
    module = load_model(checkpoint, device, kinds=tuple(EVALUATORS))
    with FieldSet(data) as fs:
        batch = fs[: len(fs) if n_max is None else min(n_max, len(fs))]
        provenance = {"checkpoint": str(checkpoint), "data": str(fs.path), "n": len(batch.images)}
    metrics, sections = EVALUATORS[module.task](module, batch, batch_size=batch_size, cut=cut, threshold=threshold,
                                                seed=seed)
    provenance |= {"task": module.task, "seed": seed,
                   "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = write_report(out_dir, sections, None, provenance, title=f"astrogen model evaluation: {module.task}")
    metrics_json = path.with_name("metrics.json")
    atomic_write_text(metrics_json, json.dumps({"task": module.task, "metrics": metrics, **provenance}, indent=1))
    return ModelEvaluation(module.task, metrics, path, metrics_json)
