"""One registry of model kinds, one safe way to read model files, one `load_model` for every kind.

A model is stored in one of two forms, and both are data, never code:

* a **Lightning checkpoint** (``.ckpt``, what ``astrogen train`` writes and resumes from), read with
  ``torch.load(weights_only=True)``: PyTorch's restricted unpickler accepts tensors, numbers, strings and plain
  containers and refuses any other Python object, so a crafted file cannot run code;
* a **model folder** (what ``astrogen export`` writes and `astrogen.pretrained` ships): ``model.safetensors``
  (the weights, Hugging Face's safetensors: a JSON header and raw tensor bytes) and ``config.json`` (the kind and
  the hyper-parameters the module is built from: network config, data transform, conditions, training set's
  metadata), beside a ``MODEL.md`` card.

``pretrained:NAME`` names a folder shipped in ``astrogen/pretrained/``. A checkpoint whose pickle holds other
objects (a crafted file, or one written by older code) is refused with a one-line error naming
``astrogen convert-checkpoint``, which rebuilds an explicit allow-list of harmless types (paths, NumPy arrays)
and still refuses anything else: nothing in astrogen unpickles without restriction.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import pickle
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from astrogen import __version__
from astrogen._io import jsonable
from astrogen.config import KIND_KEY
from astrogen.errors import ConfigError, InputFileError, UnknownNameError

# kind (``checkpoint[KIND_KEY]``) -> (module, LightningModule class). Checkpoints written before KIND_KEY carry
# "astrogen_model" (gan, vae), "astrogen_task" (inference networks) or nothing (diffusion).
MODEL_CLASSES = {
    "diffusion": ("astrogen.models.diffusion", "DiffusionModule"),
    "gan": ("astrogen.models.gan", "GANModule"),
    "vae": ("astrogen.models.vae", "VAEModule"),
    "regressor": ("astrogen.models.regressor", "RegressorModule"),
    "segmentation": ("astrogen.models.segmentation", "SegmentationModule"),
    "denoiser": ("astrogen.models.denoiser", "DenoiserModule"),
    "posterior": ("astrogen.models.posterior", "PosteriorModule"),
}
GENERATIVE = ("diffusion", "gan", "vae")


@runtime_checkable
class Generative(Protocol):
    """What every generative kind (`GENERATIVE`) offers, so samplers and writers need not know the kind.

    ``kind`` is the model's kind (diffusion, vae, wgan, pixgan, vaegan); ``conditions`` names the parameters the
    model is conditioned on (empty if none); ``takes_inputs`` says whether it maps input images to outputs (pixgan,
    vaegan) instead of drawing from noise; ``sampling_options`` holds the kind's own sampling options and their
    defaults (diffusion: sampler, steps, guidance, clamp, use_ema; the others take none).
    """

    kind: str
    conditions: list[str] | tuple[str, ...]
    takes_inputs: bool
    sampling_options: dict

    def sample(self, n: int, generator: torch.Generator | None = None, *, conditions: torch.Tensor | None = None,
               inputs: torch.Tensor | None = None, **options) -> torch.Tensor:
        """``n`` samples ``[n, C, H, W]`` in the training set's physical units; ``conditions`` ``[n, P]`` in their
        own units (conditioned models only), ``inputs`` ``[n, C, H, W]`` in physical units (image-to-image models
        only); the noise comes from ``generator``, so a seed fixes the result. An option the kind does not take,
        or a missing or unexpected ``conditions`` or ``inputs``, is a `ConfigError`."""


def resolve_options(model: Generative, options: dict) -> dict:
    """``model.sampling_options`` with ``options`` applied; an option the kind does not take is a `ConfigError`."""
    unknown = sorted(set(options) - set(model.sampling_options))
    if unknown:
        raise ConfigError(f"a {model.kind} model takes no sampling option {', '.join(unknown)}; its options: "
                          f"{', '.join(model.sampling_options) or 'none'}")
    return {**model.sampling_options, **options}


def check_sample_request(model: Generative, n: int, conditions: torch.Tensor | None, inputs: torch.Tensor | None,
                         options: dict) -> dict:
    """The argument checks of `Generative.sample` that every kind shares, each a one-line `ConfigError`; returns
    the resolved options (`resolve_options`)."""
    kind, resolved = model.kind, resolve_options(model, options)
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if bool(model.conditions) != (conditions is not None):
        raise ConfigError(f"the model is conditioned on {model.conditions or 'nothing'}; "
                          f"{'pass' if model.conditions else 'do not pass'} conditions")
    if model.takes_inputs != (inputs is not None):
        raise ConfigError(f"a {kind} model maps input images to outputs: pass inputs [n, C, H, W]"
                          if model.takes_inputs else f"a {kind} model draws from noise; it takes no inputs")
    for name, given in (("conditions", conditions), ("inputs", inputs)):
        if given is not None and len(given) != n:
            raise ConfigError(f"{len(given)} rows of {name} for {n} samples")
    return resolved
FORMAT, FORMAT_VERSION = "astrogen-model", 1
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "MODEL.md"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PRETRAINED_PREFIX = "pretrained:"

CONVERT_HINT = ("a checkpoint from an older release converts with `astrogen convert-checkpoint {path} --out NEW.ckpt "
                "--trust`")


def model_class(kind: str) -> type:
    """The LightningModule class of ``kind``."""
    if kind not in MODEL_CLASSES:
        raise UnknownNameError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_CLASSES)}")
    module, name = MODEL_CLASSES[kind]
    return getattr(importlib.import_module(module), name)


def resolve(source: str | os.PathLike) -> Path:
    """The file or folder behind ``source``: a path, or ``pretrained:NAME`` for a shipped model."""
    text = str(source)
    if text.startswith(PRETRAINED_PREFIX):
        name = text[len(PRETRAINED_PREFIX):]
        folder = PRETRAINED_DIR / name
        if not name or "/" in name or name.startswith(".") or not (folder / CONFIG).is_file():
            raise UnknownNameError(f"{text}: no such pretrained model; available: {', '.join(pretrained_names())}")
        return folder
    path = Path(source)
    if not path.exists():
        raise InputFileError(f"{path}: no such checkpoint or model folder")
    return path


def pretrained_names() -> list[str]:
    """Names of the models shipped in ``astrogen/pretrained/``."""
    return sorted(p.parent.name for p in PRETRAINED_DIR.glob(f"*/{CONFIG}"))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A Lightning checkpoint as plain data (``torch.load(weights_only=True)``); refuses anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():  # not an object the restricted unpickler refused
            raise InputFileError(f"{path}: not a checkpoint ({str(err).splitlines()[0]})") from None
        raise InputFileError(f"{path}: refused: the file holds Python objects other than tensors and plain data, "
                             f"and loading them could run code; {CONVERT_HINT.format(path=path)}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise InputFileError(f"{path}: not a checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InputFileError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def checkpoint_kind(checkpoint: dict) -> str:
    """The model kind a checkpoint was written by (current or legacy tag)."""
    return checkpoint.get(KIND_KEY) or checkpoint.get("astrogen_model") or checkpoint.get("astrogen_task") \
        or "diffusion"


def _build(kind: str, hparams: dict, state: dict, where: Path, exported: bool):
    cls = model_class(kind)
    try:
        module = cls(**hparams)
    except TypeError as err:
        raise InputFileError(f"{where}: hyper-parameters do not fit {cls.__name__} ({err})") from None
    try:
        if exported and hasattr(module, "load_exported_state"):
            module.load_exported_state(state)
        else:
            module.load_state_dict(state)
    except RuntimeError as err:
        raise InputFileError(f"{where}: weights do not fit {cls.__name__} ({str(err).splitlines()[0]})") from None
    return module


def read_folder(folder: Path) -> tuple[dict, dict]:
    """``(config, state_dict)`` of a model folder (``config.json`` + ``model.safetensors``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise InputFileError(f"{folder}: not a model folder (no {name})")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputFileError(f"{folder / CONFIG}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise InputFileError(f"{folder / CONFIG}: not an astrogen model config (format != {FORMAT!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise InputFileError(f"{folder}: written by a newer astrogen (format version {config['format_version']}); "
                             "upgrade astrogen")
    try:
        state = load_file(folder / WEIGHTS)
    except (SafetensorError, OSError) as err:
        raise InputFileError(f"{folder / WEIGHTS}: not a safetensors file ({err})") from None
    return config, state


def _read(path: Path) -> tuple[str, dict, dict, int | None, bool]:
    """``(kind, hyper-parameters, state_dict, global step, exported)`` of a checkpoint file or a model folder."""
    if path.is_dir():
        config, state = read_folder(path)
        return config.get("kind"), config.get("hyper_parameters", {}), state, config.get("global_step"), True
    checkpoint = read_checkpoint(path)
    return (checkpoint_kind(checkpoint), checkpoint.get("hyper_parameters", {}), checkpoint["state_dict"],
            checkpoint.get("global_step"), False)


def load_model(source: str | os.PathLike, device: str | torch.device = "cpu", kinds: tuple[str, ...] | None = None):
    """Load any astrogen model, in eval mode on ``device``: a ``.ckpt``, a model folder or ``pretrained:NAME``.

    ``kinds`` restricts the accepted kinds (e.g. `GENERATIVE` for sampling); another kind is a clear error.
    """
    path = resolve(source)
    kind, hparams, state, _, exported = _read(path)
    if kinds is not None and kind not in kinds:
        raise ConfigError(f"{source}: a {kind} model; this needs one of: {', '.join(kinds)}")
    return _build(kind, hparams, state, path, exported).to(device).eval()


def export_model(source: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False,
                 extra: dict | None = None) -> Path:
    """Write the model folder ``out`` (``model.safetensors`` + ``config.json``) from a checkpoint or folder.

    Diffusion models keep only the EMA weights (what sampling uses). ``extra`` adds entries to ``config.json``
    (e.g. the training provenance of a shipped model). The folder appears whole or not at all.
    """
    import shutil

    from safetensors.torch import save_file

    src, out = resolve(source), Path(out)
    if out.exists() and not overwrite:
        raise InputFileError(f"{out}: exists (choose another name or overwrite it)")
    if not out.parent.is_dir():
        raise InputFileError(f"{out.parent}: output directory does not exist")
    kind, hparams, state, step, exported = _read(src)
    module = _build(kind, hparams, state, src, exported)
    state = module.exported_state() if hasattr(module, "exported_state") else module.state_dict()
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "global_step": step,
              "exported_from": src.name, "astrogen_version": __version__, **(extra or {}),
              "hyper_parameters": jsonable(dict(hparams))}
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file(state, tmp / WEIGHTS, metadata={"format": FORMAT, "kind": kind})
        (tmp / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        (tmp / WEIGHTS).chmod(0o644)  # a shareable model, like every other output
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _legacy_types() -> list:
    """The objects older checkpoints hold besides plain data, each harmless to rebuild: paths, NumPy arrays and
    scalars (hyper-parameters, callback states) and argparse namespaces."""
    import argparse
    import pathlib

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    numpy_functions = [(f, f"{prefix}.multiarray.{f.__name__}") for f in (multiarray._reconstruct, multiarray.scalar)
                       for prefix in ("numpy.core", "numpy._core")]  # pickles name them by the writer's NumPy
    dtypes = [type(np.dtype(t)) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")]
    return [*numpy_functions, np.ndarray, np.dtype, *dtypes, pathlib.PosixPath, pathlib.PurePosixPath,
            pathlib.WindowsPath, pathlib.PureWindowsPath, argparse.Namespace]


def convert_checkpoint(old: str | os.PathLike, new: str | os.PathLike, trust: bool = False,
                       overwrite: bool = False) -> Path:
    """Rewrite a checkpoint that `read_checkpoint` refuses as one it accepts (``trust`` must be True).

    The old file is read with PyTorch's restricted unpickler widened by an explicit allow-list (`_legacy_types`:
    paths, NumPy arrays, namespaces; nothing that can run code); a file holding any other object (or a dict
    subclass, which the restricted unpickler cannot fill) is refused, naming it. ``trust`` confirms that the file's
    source is trusted: its hyper-parameters will build a model.
    The new file keeps the tensors of the state dict, the hyper-parameters (through JSON: paths become strings,
    arrays lists), the kind and the step count; the rest (optimizer and callback states) is dropped, so it samples
    and evaluates but does not resume.
    """
    old, new = Path(old), Path(new)
    if not trust:
        raise ConfigError(f"convert-checkpoint: pass --trust to confirm you trust the source of {old}")
    if not old.is_file():
        raise InputFileError(f"{old}: no such checkpoint")
    if new.exists() and not overwrite:
        raise InputFileError(f"{new}: file exists (choose another name or overwrite it)")
    allowed = _legacy_types()
    try:
        with torch.serialization.safe_globals(allowed):
            checkpoint = torch.load(old, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        known = {a[1] if isinstance(a, tuple) else f"{a.__module__}.{a.__qualname__}" for a in allowed}
        unknown = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(old)) - known)
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = ", ".join(unknown) or next((b for a, b in itertools.pairwise(lines) if "WeightsUnpickler" in a), "")
        raise InputFileError(f"{old}: holds objects outside the allow-list of plain types ({reason}); astrogen "
                             "does not unpickle them") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InputFileError(f"{old}: not a Lightning checkpoint (no state_dict)")
    kept = {"state_dict": {k: v for k, v in checkpoint["state_dict"].items() if isinstance(v, torch.Tensor)},
            "hyper_parameters": json.loads(json.dumps(jsonable(dict(checkpoint.get("hyper_parameters", {}))),
                                                      default=str)),
            KIND_KEY: checkpoint_kind(checkpoint)}
    for key in ("global_step", "epoch", "pytorch-lightning_version"):
        if key in checkpoint:
            kept[key] = checkpoint[key]
    tmp = new.with_name(f".{new.name}.partial")
    try:
        torch.save(kept, tmp)
        read_checkpoint(tmp)  # what we wrote must pass the safe reader
        tmp.replace(new)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return new
