"""The three-step microwave-sky GAN pipeline (Han, Sehgal & Villaescusa-Navarro 2021) and full-sky generation.

Training (`train_microwave_sky`, ``astrogen sky train``) on a FieldSet of 5-component patches (kappa, tsz,
ksz, cib, radio; e.g. ``astrogen simulate configs/sims/microwave_sky.yaml``):

1. a DCWGAN-GP (``wgan``) learns the 5-component patches and enlarges the set with ``n_enlarge`` samples;
2. a PIXGAN learns kappa -> (tsz, ksz, cib, radio) on the real and the enlarged patches;
3. the PIXGAN maps the real kappa patches to foregrounds ("step-2 patches"); a VAEGAN is trained on the
   real and the step-2 patches (as an adversarial autoencoder whose critic sees input and output).

Generation (`generate_sky`, ``astrogen sky generate``): a Gaussian kappa full sky drawn from the kappa C_l
of the simulator configuration stored with the training set -> CAR patches (`astrogen.sims.projection`,
the training geometry) -> PIXGAN -> VAEGAN -> patches averaged back onto HEALPix. Pixels no patch covers
are ``healpy.UNSEEN``: more rotations and patches cover more of the sky.

The pipeline owns no maths: every step is a public call (`train`, `sample_to_file`, the projection module).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np
import torch

from astrogen.data import FieldMeta, FieldSet, FieldSetWriter
from astrogen.errors import ConfigError, DataError, InputFileError
from astrogen.generate import batch_seed, sample_to_file
from astrogen.sims.microwave_sky import MicrowaveSky, gaussian_alm
from astrogen.sims.projection import PatchGrid, patches_to_healpix, rotations_from_params, sample_patches
from astrogen.tasks import load_model
from astrogen.train import train

STAGES = ("wgan", "pixgan", "vaegan")
# The report's normalisation (eqs. 5.2-5.3); after it most pixels lie within a few units, which the Scaled
# Tanh bound below leaves room for.
TRANSFORM = [{"name": "SignLog"}, {"name": "Standardize"}]


@dataclass
class SkyModels:
    """Checkpoints of the three stages (``out_dir/<stage>/final.ckpt``) and seconds spent per step."""

    out_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def checkpoint(self, stage: str) -> Path:
        return self.out_dir / stage / "final.ckpt"


def stage_config(kind: str, data: str | os.PathLike, out: str | os.PathLike, max_steps: int,
                 minutes: float | None = None, base: int = 64, latent: int = 256, scale: float = 6.0,
                 batch_size: int = 32, seed: int = 0) -> dict:
    """The training config of one stage (``kind`` wgan, pixgan or vaegan) on the FieldSet ``data``."""
    return {
        "kind": kind,
        "data": {"path": str(data), "val_fraction": 0.05, "transform": TRANSFORM, "batch_size": batch_size,
                 "inputs": ["kappa"] if kind == "pixgan" else []},
        "model": {"base": base, "latent": latent, "scale": scale},
        "optim": {"grad_clip": None},  # the report's Adam, unclipped
        "trainer": {"out": str(out), "max_steps": max_steps, "max_minutes": minutes, "seed": seed,
                    "val_every_steps": max(1, min(500, max_steps // 2)), "log_every_steps": 10},
    }


def _concatenate(paths: list[Path], out: Path) -> Path:
    """Images of several FieldSets (same channels and shape) into one new FieldSet (no params), the
    first file's metadata."""
    with FieldSet(paths[0]) as first:
        meta, shape = first.meta, first.sample_shape
    with FieldSetWriter(out, shape, meta, overwrite=True) as writer:
        for path in paths:
            with FieldSet(path) as fs:
                if fs.sample_shape != shape or fs.meta.channels != meta.channels:
                    raise DataError(f"{fs.path}: shape or channels differ from {paths[0]}")
                for images in fs.image_batches():
                    writer.append(images, {})
    return out


def train_microwave_sky(patches: str | os.PathLike, out_dir: str | os.PathLike, n_enlarge: int | None = None,
                        max_steps: int = 20_000, minutes: float | None = None, base: int = 64, latent: int = 256,
                        batch_size: int = 32, seed: int = 0, progress: bool = False) -> SkyModels:
    """Train the three stages (module docstring) into ``out_dir``; ``max_steps`` and ``minutes`` apply to
    each stage, ``n_enlarge`` (default: as many as the real patches) is the DCWGAN-GP's addition."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with FieldSet(patches) as fs:
        if "kappa" not in fs.meta.channels or len(fs.meta.channels) < 2:
            raise DataError(f"{fs.path}: the pipeline needs a 'kappa' channel and foreground channels, "
                            f"got {fs.meta.channels}")
        n_real = len(fs)
    models = SkyModels(out)
    common = {"max_steps": max_steps, "minutes": minutes, "base": base, "latent": latent,
              "batch_size": batch_size, "seed": seed}

    def timed(step: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        models.seconds[step] = time.perf_counter() - start
        return result

    timed("train wgan", train, stage_config("wgan", patches, out / "wgan", **common), progress=progress)
    enlarged = timed("enlarge", sample_to_file, models.checkpoint("wgan"), out / "enlarged.h5",
                     n=n_enlarge or n_real, seed=seed, overwrite=True)
    pix_data = _concatenate([Path(patches), enlarged], out / "pixgan_train.h5")
    timed("train pixgan", train, stage_config("pixgan", pix_data, out / "pixgan", **common), progress=progress)
    step2 = timed("step-2 patches", sample_to_file, models.checkpoint("pixgan"), out / "step2.h5",
                  inputs_from=patches, seed=seed, overwrite=True)
    vae_data = _concatenate([Path(patches), step2], out / "vaegan_train.h5")
    timed("train vaegan", train, stage_config("vaegan", vae_data, out / "vaegan", **common), progress=progress)
    return models


@dataclass
class SkyResult:
    """A generated full sky: the FITS file, the fraction of HEALPix pixels covered, patches, seconds."""

    path: Path
    coverage: float
    n_patches: int
    seconds: float


def generate_sky(models_dir: str | os.PathLike, out: str | os.PathLike, nside: int | None = None,
                 n_rotations: int = 20, patches_per_rotation: int = 100, seed: int = 0, batch_size: int = 64,
                 overwrite: bool = False) -> SkyResult:
    """Generate a full sky with the trained pipeline in ``models_dir`` into the FITS file ``out``
    (RING HEALPix maps, one column per channel, the training set's units; UNSEEN where no patch fell).

    The kappa C_l, patch geometry and band come from the microwave-sky configuration stored with the
    training set; ``nside`` defaults to its nside. ``n_rotations`` x ``patches_per_rotation`` patches are cut.
    """
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputFileError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    models = SkyModels(Path(models_dir))
    pix, vae = (load_model(models.checkpoint(stage)) for stage in ("pixgan", "vaegan"))
    meta = FieldMeta.from_attrs(pix.hparams.data_meta or {"channels": []})
    if meta.simulator != "microwave_sky":
        raise ConfigError(f"{models_dir}: trained on {meta.simulator or 'imported data'}; full-sky generation needs "
                          "the microwave_sky simulator's configuration (kappa C_l and patch geometry)")
    config = {**meta.config, **({"nside": nside} if nside else {})}
    sim = MicrowaveSky(config)
    c = sim.config
    rng = np.random.default_rng(seed)
    kappa = hp.alm2map(gaussian_alm(rng, sim.kappa_cl()), c.nside, lmax=c.ell_max)
    grid = PatchGrid(c.patch_size_deg, c.patch_npix)
    kappa_patches, params = sample_patches(kappa[None], grid, rng, n_rotations, patches_per_rotation, c.band_deg)
    maps = np.zeros((len(kappa_patches), *pix.hparams.image_shape), dtype=np.float32)
    maps[:, meta.channels.index("kappa")] = kappa_patches[:, 0]
    for b, first in enumerate(range(0, len(maps), batch_size)):  # batches bound memory, not a per-map loop
        generator = torch.Generator().manual_seed(batch_seed(seed, b))
        inputs = torch.from_numpy(maps[first : first + batch_size])
        step2 = pix.sample(len(inputs), generator, inputs=inputs)
        maps[first : first + batch_size] = vae.sample(len(step2), generator, inputs=step2).cpu().numpy()
    sky = patches_to_healpix(maps, c.nside, grid, params["lon0"], params["lat0"], rotations_from_params(params))
    coverage = float(np.mean(sky[0] != hp.UNSEEN))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    hp.write_map(str(partial), sky, column_names=[name.upper()[:8] for name in meta.channels],
                 dtype=np.float64, overwrite=True,
                 extra_header=[("UNITS", meta.units)])
    partial.replace(out)  # atomic: a killed run leaves no complete-looking file
    return SkyResult(out, coverage, len(maps), time.perf_counter() - start)


__all__ = ["SkyModels", "SkyResult", "generate_sky", "stage_config", "train_microwave_sky"]
