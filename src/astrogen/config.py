"""Configuration parsing and validation: pydantic models, ``--set key=value`` overrides, one-line errors."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astrogen.errors import ConfigError, InputFileError

# Checkpoint entry naming the model kind that wrote it (`astrogen.tasks.MODEL_CLASSES`).
KIND_KEY = "astrogen_kind"


def parse_overrides(items: Iterable[str]) -> dict:
    """Turn ``["n_blobs=10", "fwhm=4.5"]`` into ``{"n_blobs": 10, "fwhm": 4.5}`` (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: cannot parse value {text!r}") from None
    return out


def validate_config(model: type[BaseModel], values: BaseModel | Mapping | None, where: str) -> BaseModel:
    """Validate ``values`` against ``model``; unknown keys and bad values raise a one-line `ConfigError`."""
    if isinstance(values, model):
        return values
    values = dict(values or {})
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(model.model_fields)}"
        )
    try:
        return model.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        raise ConfigError(f"{where}: {key}: {first['msg']} (got {first.get('input')!r})") from None


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SimulationPreset(StrictModel):
    """A ready simulation set-up (YAML under ``configs/sims/``): which simulator, how many samples, which seed,
    and the simulator's config keys."""

    simulator: str
    n: int | None = Field(None, ge=1, description="number of samples")
    seed: int | None = Field(None, ge=0)
    config: dict = Field(default_factory=dict, description="simulator config keys")


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML file holding a mapping; errors name the file (and the line for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return values


def load_preset(path: str | os.PathLike) -> SimulationPreset:
    """Load and validate a simulation preset file (``simulator``, ``n``, ``seed``, ``config``)."""
    return validate_config(SimulationPreset, load_yaml(path), str(path))
