"""Sampling trained generative models into FieldSets in the training set's physical units."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from astrogen import __version__
from astrogen.data import FieldMeta, FieldSet, FieldSetWriter
from astrogen.data.merge import merge_fieldsets
from astrogen.errors import ConfigError, InputFileError
from astrogen.progress import progress_bar
from astrogen.tasks import GENERATIVE, load_model, resolve_options


def load_diffusion(checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a `DiffusionModule` (a ``.ckpt``, a model folder or ``pretrained:NAME``) onto ``device``."""
    return load_model(checkpoint, device, kinds=("diffusion",))


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
    sampler: str | None = None,
    steps: int | None = None,
    cond: Mapping[str, float] | None = None,
    cond_from: str | os.PathLike | None = None,
    guidance: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    compression: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    inputs_from: str | os.PathLike | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    clamp: bool | None = None,
) -> Path:
    """Sample a diffusion, GAN or VAE model (a ``.ckpt``, a model folder or ``pretrained:NAME``) into a FieldSet,
    streamed to disk batch by batch.

    Every kind samples through `astrogen.tasks.Generative.sample`; this function only shards and writes.
    Images are in the training set's physical units (the stored transform inverted); conditions (``cond``
    values or the columns of ``cond_from``) are stored as params. ``sampler``, ``steps``, ``guidance`` and
    ``clamp`` are the diffusion models' sampling options (None: the model's default; another kind refuses
    them); image-to-image GANs (pixgan, vaegan) map the first ``n`` maps of the FieldSet ``inputs_from``
    (physical units, the training channels). Batch ``b`` draws from seed ``batch_seed(seed, b)``, so the same
    seed and batch size give the same samples.

    ``devices`` x ``num_nodes`` > 1 launches that many processes (Lightning Fabric, DDP; ``device`` names the
    accelerator): each samples a contiguous range of batches into a part file next to ``out``, and rank 0
    joins the parts into ``out`` (the samples one process writes) and deletes them.

    ``clamp`` (off by default) limits samples to the training range widened by 25% of its width;
    the fraction of pixels clamped is stored in the provenance (``clamp``) and the scorecard's out_of_range row
    counts them.
    """
    if n is not None and n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    out = Path(out)
    rank, world, fabric = 0, devices * num_nodes, None
    if world > 1:
        if out.exists() and not overwrite:
            raise InputFileError(f"{out}: file exists (choose another name or overwrite it)")
        from lightning.fabric import Fabric

        fabric = Fabric(accelerator=device, devices=devices, num_nodes=num_nodes, strategy="ddp")
        fabric.launch()
        rank, device = fabric.global_rank, fabric.device
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model = load_model(checkpoint, device, kinds=GENERATIVE)
    given = {"sampler": sampler, "steps": steps, "guidance": guidance, "clamp": clamp}
    options = resolve_options(model, {k: v for k, v in given.items() if v is not None})  # refused before writing
    clamp = options.get("clamp", False)
    if clamp and world > 1:
        raise ConfigError("clamp: sampling with several processes cannot record the clamped fraction; use one")
    if (inputs_from is not None) != model.takes_inputs:
        raise ConfigError(f"{checkpoint}: inputs_from is for pixgan and vaegan models, and they need it")
    names = list(model.conditions)
    inputs = FieldSet(inputs_from) if inputs_from is not None else None
    if inputs is not None:
        n = len(inputs) if n is None else n
        if n > len(inputs):
            raise ConfigError(f"{inputs.path} has {len(inputs)} maps, {n} samples asked for")
    values, n = _conditions(names, n, cond, cond_from)
    meta = FieldMeta.from_attrs(model.hparams.data_meta or {"channels": []})
    how = {**options, **({"clamp": {"applied": clamp}} if "clamp" in options else {}),
           **({"inputs_from": str(inputs_from)} if inputs is not None else {})}
    meta = replace(meta, simulator=None, simulator_version=None, seed=seed, config={}, provenance={
        "generated_from": str(checkpoint), **how,
        "trained_on": {"simulator": meta.simulator, "config": meta.config, "seed": meta.seed},
        "astrogen_version": __version__,
    })
    n_batches = -(-n // batch_size)
    if n_batches < world:
        raise ConfigError(f"{n} samples in batches of {batch_size} are {n_batches} batches, fewer than the {world} "
                          "processes: use a smaller batch size or fewer devices")
    mine = range(rank * n_batches // world, (rank + 1) * n_batches // world)
    parts = out.with_name(f".{out.name}.parts")
    target = out if world == 1 else parts / f"part-{rank:05d}.h5"
    if world > 1:
        parts.mkdir(exist_ok=True)
    n_mine = min(n, mine.stop * batch_size) - mine.start * batch_size
    clamped = 0
    try:
        with FieldSetWriter(target, model.hparams.image_shape, meta, param_names=names, compression=compression,
                            overwrite=overwrite or world > 1) as writer, \
                progress_bar(n_mine, "sampling", progress and rank == 0) as advance:
            for b in mine:
                rows = values[b * batch_size : (b + 1) * batch_size]
                generator = torch.Generator().manual_seed(batch_seed(seed, b))
                maps = None if inputs is None else \
                    torch.from_numpy(inputs[b * batch_size : b * batch_size + len(rows)].images)
                images = model.sample(len(rows), generator, conditions=torch.from_numpy(rows) if names else None,
                                      inputs=maps, **options)
                clamped += model.clamped_pixels if clamp else 0
                writer.append(images.float().cpu().numpy(), dict(zip(names, rows.T)))
                advance(len(rows))
            if clamp:
                fraction = clamped / (n_mine * int(np.prod(model.hparams.image_shape)))
                meta.provenance["clamp"] = {"applied": True, "clamped_fraction": fraction}
                writer.update_meta(meta)
    finally:
        if inputs is not None:
            inputs.close()
    if fabric is not None:
        fabric.barrier()
        if rank == 0:
            merge_fieldsets(sorted(parts.glob("part-*.h5")), out, overwrite=overwrite, compression=compression)
            shutil.rmtree(parts)
        fabric.barrier()
    return out
