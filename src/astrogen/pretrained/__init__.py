"""Pretrained models shipped with astrogen: one folder per model, each a model folder of `astrogen.tasks`
(``model.safetensors`` + ``config.json``) with its card ``MODEL.md``.

Every shipped model is trained by ``astrogen train`` from an experiment in ``configs/train/``; its card gives the
command, code commit, steps, wall time, hardware, data set and seed, and the scorecard it reaches with the command
that measured it. Use ``astrogen sample pretrained:NAME --n 1000 --out gen.h5`` or::

    import astrogen.pretrained
    model = astrogen.pretrained.load("matter-demo")
    images = model.sample(16, steps=20)   # physical units (delta for the matter models)
"""

from __future__ import annotations

import json

import torch

from astrogen.tasks import CARD, CONFIG, PRETRAINED_PREFIX, load_model, pretrained_names, resolve


def available() -> list[str]:
    """Names of the shipped models."""
    return pretrained_names()


def load(name: str, device: str | torch.device = "cpu"):
    """The shipped model ``name`` (a LightningModule in eval mode; e.g. a `DiffusionModule`)."""
    return load_model(PRETRAINED_PREFIX + name, device)


def card(name: str) -> str:
    """The model card (Markdown) of the shipped model ``name``."""
    return (resolve(PRETRAINED_PREFIX + name) / CARD).read_text()


def config(name: str) -> dict:
    """The ``config.json`` of the shipped model ``name`` (kind, hyper-parameters, training provenance)."""
    return json.loads((resolve(PRETRAINED_PREFIX + name) / CONFIG).read_text())


__all__ = ["available", "card", "config", "load"]
