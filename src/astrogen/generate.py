"""Sampling trained generative models into FieldSets in the training set's physical units."""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from astrogen import __version__
from astrogen.data import FieldMeta, FieldSet, FieldSetWriter
from astrogen.errors import ConfigError, InputFileError
from astrogen.progress import progress_bar

# Checkpoint tag (``checkpoint["astrogen_model"]``, written by each module) -> its LightningModule class.
# Diffusion checkpoints carry no tag.
MODEL_CLASSES = {
    "diffusion": ("astrogen.models.diffusion", "DiffusionModule"),
    "gan": ("astrogen.models.gan", "GANModule"),
    "vae": ("astrogen.models.vae", "VAEModule"),
}


def load_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load any astrogen generative checkpoint (diffusion, GAN or VAE) onto ``device``, in eval mode."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputFileError(f"{checkpoint}: no such checkpoint")
    try:
        tag = torch.load(checkpoint, map_location="cpu", weights_only=False).get("astrogen_model", "diffusion")
        module_name, class_name = MODEL_CLASSES[tag]
        cls = getattr(importlib.import_module(module_name), class_name)
        module = cls.load_from_checkpoint(checkpoint, map_location=device, weights_only=False)
    except (KeyError, RuntimeError, TypeError, AttributeError, pickle.UnpicklingError) as err:
        raise InputFileError(f"{checkpoint}: not an astrogen model checkpoint ({err})") from None
    return module.eval()


def load_diffusion(checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a `DiffusionModule` checkpoint onto ``device`` (weights, EMA, transform, conditions)."""
    from astrogen.models.diffusion import DiffusionModule

    module = load_model(checkpoint, device)
    if not isinstance(module, DiffusionModule):
        raise InputFileError(f"{checkpoint}: a {type(module).__name__} checkpoint, not a diffusion one")
    return module


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
    inputs_from: str | os.PathLike | None = None,
) -> Path:
    """Sample a diffusion, GAN or VAE checkpoint into a FieldSet, streamed to disk batch by batch.

    Images are in the training set's physical units (the stored transform inverted); diffusion
    conditions are stored as params. ``sampler``, ``steps``, ``cond``, ``cond_from`` and ``guidance``
    apply to diffusion models; image-to-image GANs (pixgan, vaegan) map the first ``n`` maps of the
    FieldSet ``inputs_from`` (physical units, the training channels). Batch ``b`` draws from seed
    ``batch_seed(seed, b)``, so the same seed and batch size give the same samples.
    """
    from astrogen.models.diffusion import DiffusionModule

    if n is not None and n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    module = load_model(checkpoint, device)
    diffusion = isinstance(module, DiffusionModule)
    if not diffusion and (cond or cond_from):
        raise ConfigError(f"{checkpoint}: only diffusion models take conditions")
    if (inputs_from is not None) != (getattr(module, "kind", None) in ("pixgan", "vaegan")):
        raise ConfigError(f"{checkpoint}: inputs_from is for pixgan and vaegan models, and they need it")
    names = module.conditions if diffusion else []
    inputs = FieldSet(inputs_from) if inputs_from is not None else None
    if inputs is not None:
        n = len(inputs) if n is None else n
        if n > len(inputs):
            raise ConfigError(f"{inputs.path} has {len(inputs)} maps, {n} samples asked for")
    values, n = _conditions(names, n, cond, cond_from)
    meta = FieldMeta.from_attrs(module.hparams.data_meta or {"channels": []})
    how = {"sampler": sampler, "steps": steps, "guidance": guidance} if diffusion else \
        {"inputs_from": str(inputs_from)} if inputs is not None else {}
    meta = replace(meta, simulator=None, simulator_version=None, seed=seed, config={}, provenance={
        "generated_from": str(checkpoint), **how,
        "trained_on": {"simulator": meta.simulator, "config": meta.config, "seed": meta.seed},
        "astrogen_version": __version__,
    })
    try:
        with FieldSetWriter(out, module.hparams.image_shape, meta, param_names=names, compression=compression,
                            overwrite=overwrite) as writer, progress_bar(n, "sampling", progress) as advance:
            for b, start in enumerate(range(0, n, batch_size)):
                rows = values[start : start + batch_size]
                generator = torch.Generator().manual_seed(batch_seed(seed, b))
                if diffusion:
                    images = module.generate(len(rows), sampler, steps, torch.from_numpy(rows) if names else None,
                                             guidance, generator)
                elif inputs is not None:
                    maps = torch.from_numpy(inputs[start : start + len(rows)].images)
                    images = module.generate(None, generator, maps)
                else:
                    images = module.generate(len(rows), generator)
                writer.append(images.float().cpu().numpy(), dict(zip(names, rows.T)))
                advance(len(rows))
    finally:
        if inputs is not None:
            inputs.close()
    return Path(out)
