"""Configuration parsing and validation: pydantic models, ``--set key=value`` overrides, one-line errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from astrogen.errors import ConfigError


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
