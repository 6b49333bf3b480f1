"""Sampling trained generative models into FieldSets in the training set's physical units."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from astrogen import __version__
from astrogen.data import FieldMeta, FieldSet, FieldSetWriter
from astrogen.errors import ConfigError, InputFileError
from astrogen.progress import progress_bar


def load_diffusion(checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a `DiffusionModule` checkpoint onto ``device`` (weights, EMA, transform, conditions)."""
    from astrogen.models.diffusion import DiffusionModule

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputFileError(f"{checkpoint}: no such checkpoint")
    try:
        module = DiffusionModule.load_from_checkpoint(checkpoint, map_location=device, weights_only=False)
    except (KeyError, RuntimeError, TypeError) as err:
        raise InputFileError(f"{checkpoint}: not an astrogen diffusion checkpoint ({err})") from None
    return module.eval()


def _conditions(names: list[str], n: int | None, cond: Mapping[str, float] | None,
                cond_from: str | os.PathLike | None) -> tuple[np.ndarray, int]:
    """Per-sample conditions ``[n, P]`` from fixed values or a FieldSet's columns; returns (values, n)."""
    if cond and cond_from:
        raise ConfigError("give either --cond values or --cond-from FILE, not both")
    if cond_from is not None:
        with FieldSet(cond_from) as fs:
            missing = sorted(set(names) - set(fs.param_names))
            if missing:
                raise ConfigError(f"{fs.path} has no columns {missing} to condition on")
            n = len(fs) if n is None else n
            if n > len(fs):
                raise ConfigError(f"{fs.path} has {len(fs)} rows of conditions, {n} samples asked for")
            return np.stack([fs.params[c][:n] for c in names], 1) if names else np.zeros((n, 0)), n
    cond = dict(cond or {})
    unknown, missing = sorted(set(cond) - set(names)), sorted(set(names) - set(cond))
    if unknown or missing:
        raise ConfigError(f"the model is conditioned on {names or 'nothing'}; "
                          f"{'unknown ' + str(unknown) if unknown else 'missing ' + str(missing)}")
    n = 1000 if n is None else n
    return np.tile(np.array([[cond[c] for c in names]], dtype=np.float64), (n, 1)), n


def batch_seed(seed: int, batch: int) -> int:
    """Seed of sample batch ``batch``: independent streams that do not depend on how batches are split."""
    return int(np.random.SeedSequence(seed, spawn_key=(batch,)).generate_state(1, np.uint64)[0] >> 1)


def sample_to_file(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    n: int | None = None,
    sampler: str = "dpm",
    steps: int = 20,
    cond: Mapping[str, float] | None = None,
    cond_from: str | os.PathLike | None = None,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    compression: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Sample a diffusion checkpoint into a FieldSet, streamed to disk batch by batch.

    Images are in the training set's physical units (the stored transform inverted); the conditions
    are stored as params. Batch ``b`` draws from seed ``batch_seed(seed, b)``, so the same seed and
    batch size give the same samples.
    """
    if n is not None and n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    module = load_diffusion(checkpoint, device)
    names = module.conditions
    values, n = _conditions(names, n, cond, cond_from)
    meta = FieldMeta.from_attrs(module.hparams.data_meta or {"channels": []})
    meta = replace(meta, simulator=None, simulator_version=None, seed=seed, config={}, provenance={
        "generated_from": str(checkpoint), "sampler": sampler, "steps": steps, "guidance": guidance,
        "trained_on": {"simulator": meta.simulator, "config": meta.config, "seed": meta.seed},
        "astrogen_version": __version__,
    })
    with FieldSetWriter(out, module.hparams.image_shape, meta, param_names=names, compression=compression,
                        overwrite=overwrite) as writer, progress_bar(n, "sampling", progress) as advance:
        for b, start in enumerate(range(0, n, batch_size)):
            rows = values[start : start + batch_size]
            generator = torch.Generator().manual_seed(batch_seed(seed, b))
            images = module.generate(len(rows), sampler, steps, torch.from_numpy(rows) if names else None,
                                     guidance, generator)
            writer.append(images.float().cpu().numpy(), dict(zip(names, rows.T)))
            advance(len(rows))
    return Path(out)
