"""Noise models for denoising autoencoders (gamma-ray report), as composable callables on tensors.

Each model maps clean images ``[N, C, H, W]`` normalised to [0, 1] (e.g. by `MaxNorm`) to noisy ones,
clamped to [0, 1] as in the report, drawing from a `torch.Generator` (CPU) so a seed fixes the noise:

* ``gaussian`` (``factor``): x + factor * z, z ~ N(0, 1).
* ``poisson`` (``scale``): Poisson(scale * x) / scale: shot noise of an image whose value 1 holds
  ``scale`` counts (mean x, variance x / scale).
* ``mask`` (``fraction``): each pixel set to 0 with probability ``fraction``.
* ``salt_pepper`` (``fraction``): each pixel replaced with probability ``fraction`` by the image's
  minimum or maximum (half each).

``make_noise([{"name": "gaussian", "factor": 0.2}, {"name": "mask", "fraction": 0.1}])`` applies them in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from astrogen.distributed import draw_rows
from astrogen.errors import ConfigError, DataError


def _draw(fn, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Per-rank rows of a global-batch draw: data-parallel ranks never reuse each other's noise.
    return draw_rows(fn, len(x), x.shape[1:], generator, x.device).to(x.dtype)


@dataclass(frozen=True)
class Gaussian:
    """Additive Gaussian noise of standard deviation ``factor`` (image units), clamped to [0, 1]."""

    factor: float = 0.2

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = _draw(torch.randn, x, generator)
        return (x + self.factor * z).clamp(0, 1)


@dataclass(frozen=True)
class Poisson:
    """Shot noise: Poisson(scale * x) / scale, ``scale`` = counts at image value 1; clamped to [0, 1]."""

    scale: float = 100.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if (x < 0).any():
            raise DataError("Poisson noise needs non-negative images")
        rate = (self.scale * x).detach()
        # On the data's device from the global RNG in training; a seeded CPU generator for reproducible noise.
        counts = torch.poisson(rate) if generator is None else torch.poisson(rate.double().cpu(), generator=generator)
        return (counts / self.scale).to(x.device, x.dtype).clamp(0, 1)


@dataclass(frozen=True)
class Mask:
    """Each pixel set to 0 with probability ``fraction``."""

    fraction: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.where(_draw(torch.rand, x, generator) < self.fraction, torch.zeros_like(x), x).clamp(0, 1)


@dataclass(frozen=True)
class SaltPepper:
    """Each pixel replaced with probability ``fraction`` by its image's minimum or maximum (equally likely)."""

    fraction: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        flat = x.reshape(*x.shape[:2], -1)
        low = flat.amin(-1)[..., None, None].expand_as(x)
        high = flat.amax(-1)[..., None, None].expand_as(x)
        hit, coin = _draw(torch.rand, x, generator) < self.fraction, _draw(torch.rand, x, generator) < 0.5
        return torch.where(hit, torch.where(coin, high, low), x).clamp(0, 1)


NOISE_MODELS = {"gaussian": Gaussian, "poisson": Poisson, "mask": Mask, "salt_pepper": SaltPepper}
_RANGES = {"factor": (0.0, float("inf")), "scale": (1e-12, float("inf")), "fraction": (0.0, 1.0)}


@dataclass(frozen=True)
class NoiseChain:
    """Noise models applied in order."""

    models: tuple

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for model in self.models:
            x = model(x, generator)
        return x

    def to_list(self) -> list[dict]:
        """JSON-able description that `make_noise` rebuilds."""
        names = {cls: name for name, cls in NOISE_MODELS.items()}
        return [{"name": names[type(m)], **asdict(m)} for m in self.models]


def make_noise(specs: Sequence[Mapping]) -> NoiseChain:
    """Build a `NoiseChain` from dicts ``{"name": gaussian|poisson|mask|salt_pepper, <its parameter>}``."""
    models = []
    for spec in specs:
        spec = dict(spec)
        name = spec.pop("name", None)
        if name not in NOISE_MODELS:
            raise ConfigError(f"unknown noise model {name!r}; choose from {', '.join(NOISE_MODELS)}")
        for key, value in spec.items():
            low, high = _RANGES.get(key, (None, None))
            if low is None:
                raise ConfigError(f"noise {name}: unknown parameter {key!r}")
            if not low <= float(value) <= high:
                raise ConfigError(f"noise {name}: {key} = {value} is outside [{low}, {high}]")
        try:
            models.append(NOISE_MODELS[name](**spec))
        except TypeError as err:
            raise ConfigError(f"noise {name}: {err}") from None
    if not models:
        raise ConfigError("no noise model given")
    return NoiseChain(tuple(models))
