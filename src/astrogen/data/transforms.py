"""Invertible data transforms with per-channel parameters (the scikit-learn habit).

Every transform has ``fit(data)``, ``forward(x)``, ``inverse(y)``, ``to_dict()`` and
`Transform.from_dict`. ``x`` is a NumPy array or torch tensor shaped ``[N, C, ...]`` (any number of
spatial axes); the result has the same type, dtype and device. ``fit`` accepts such an array, a
`FieldSet`, or any re-iterable of ``[n, C, ...]`` batches, and streams through it, so it works on sets
larger than memory. The inverse is exact to float32 round-off (see each class for its conditioning).

Transforms from the reports:

* `MinMax` to [-1, 1] (matter-field report);
* `Contrast` x -> x / (x + a), with `contrast_a_for_noise` choosing ``a`` (matter-field report);
* `SignLog` x -> sign(x) ln(|x| / sigma_x + 1), followed by `Standardize` (microwave-sky report,
  eqs. 5.2-5.3; `signlog_standardize` builds the pair);
* `MaxNorm` per image (gamma-ray report) and `Log1p` for density contrasts delta >= -1;
* `Compose` chains them; its ``to_dict`` travels inside checkpoints and FieldSet attrs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from astrogen.errors import ConfigError, DataError, UnknownNameError

_REGISTRY: dict[str, type[Transform]] = {}


# --------------------------------------------------------------------------------------------------
# Helpers: one code path for NumPy and torch, streaming per-channel statistics.


def _xp(x):
    return torch if isinstance(x, torch.Tensor) else np


def _as_float(x):
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _per_channel(values: Sequence[float], x):
    """Per-channel parameters shaped ``[1, C, 1, ...]`` to broadcast against ``x`` [N, C, ...]."""
    shape = (1, len(values)) + (1,) * (x.ndim - 2)
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(values, dtype=x.dtype, device=x.device).view(shape)
    return np.asarray(values, dtype=x.dtype).reshape(shape)


def _batches(data) -> Iterator[np.ndarray]:
    from astrogen.data.fieldset import FieldSet

    if isinstance(data, FieldSet):
        data = data.image_batches()
    elif isinstance(data, (np.ndarray, torch.Tensor)):
        data = [data]
    for batch in data:
        batch = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        if batch.ndim < 3:
            raise DataError(f"transforms take [N, C, ...] arrays, got shape {batch.shape}")
        yield batch


@dataclass
class ChannelStats:
    """Per-channel count, min, max, mean and standard deviation (float64) of a stream of batches."""

    count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, data) -> ChannelStats:
        count = total_min = total_max = mean = m2 = None
        for batch in _batches(data):
            values = np.moveaxis(batch, 1, 0).reshape(batch.shape[1], -1).astype(np.float64)
            if not np.isfinite(values).all():
                raise DataError("cannot fit a transform on data holding NaN or inf")
            n = values.shape[1]
            b_mean = values.mean(axis=1)
            b_m2 = ((values - b_mean[:, None]) ** 2).sum(axis=1)
            if count is None:
                count, total_min, total_max = np.full(len(values), float(n)), values.min(1), values.max(1)
                mean, m2 = b_mean, b_m2
                continue
            if len(values) != len(count):
                raise DataError(f"batches with {len(count)} and {len(values)} channels")
            # Chan et al. (1979) pairwise update: stable for long streams.
            delta = b_mean - mean
            total = count + n
            mean = mean + delta * n / total
            m2 = m2 + b_m2 + delta**2 * count * n / total
            count = total
            total_min, total_max = np.minimum(total_min, values.min(1)), np.maximum(total_max, values.max(1))
        if count is None:
            raise DataError("cannot fit a transform on empty data")
        return cls(count, total_min, total_max, mean, np.sqrt(m2 / count))


class _Mapped:
    """A re-iterable view of ``data`` with ``fn`` applied to every batch (for fitting chains)."""

    def __init__(self, data, fn):
        self.data, self.fn = data, fn

    def __iter__(self):
        return (self.fn(batch) for batch in _batches(self.data))


# --------------------------------------------------------------------------------------------------
# The transforms.


class Transform:
    """Base class: subclasses are dataclasses whose fields are their whole (JSON-able) state."""

    fitted_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def fit(self, data) -> Transform:
        """Estimate the per-channel parameters from ``data`` and return ``self``."""
        return self

    def forward(self, x):
        raise NotImplementedError

    def inverse(self, y):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _checked(self, x):
        x = _as_float(x)
        if x.ndim < 3:
            raise DataError(f"{type(self).__name__} takes [N, C, ...] arrays, got shape {tuple(x.shape)}")
        missing = [name for name in self.fitted_fields if getattr(self, name) is None]
        if missing:
            raise DataError(f"{type(self).__name__} is not fitted: call fit(data) first")
        for name in self.fitted_fields:
            if len(getattr(self, name)) != x.shape[1]:
                raise DataError(
                    f"{type(self).__name__} was fitted on {len(getattr(self, name))} channels, "
                    f"got {x.shape[1]}"
                )
        return x

    def to_dict(self) -> dict:
        """JSON-able description, including fitted state; `Transform.from_dict` rebuilds it."""
        return {"name": type(self).__name__, **asdict(self)}

    @staticmethod
    def from_dict(spec: dict) -> Transform:
        """Rebuild any transform (Compose included) from its `to_dict` output."""
        spec = dict(spec)
        name = spec.pop("name", None)
        if name not in _REGISTRY:
            raise UnknownNameError(f"unknown transform {name!r}; known: {', '.join(sorted(_REGISTRY))}")
        return _REGISTRY[name]._from_fields(spec)

    @classmethod
    def _from_fields(cls, fields: dict) -> Transform:
        try:
            return cls(**fields)
        except TypeError as err:
            raise DataError(f"bad {cls.__name__} description {fields}: {err}") from None


def _spread_stats(name: str, data) -> ChannelStats:
    """Channel statistics for fitting ``name``, which cannot scale a constant channel."""
    stats = ChannelStats.of(data)
    constant = np.flatnonzero(stats.max <= stats.min)
    if constant.size:
        raise DataError(f"{name} cannot fit constant channels {constant.tolist()}")
    return stats


def _domain_error(name: str, what: str, x) -> DataError:
    low = float(x.min())
    return DataError(f"{name} needs {what}; the input's minimum is {low:g}")


@dataclass
class MinMax(Transform):
    """Affine map of each channel's [min, max] onto [-1, 1]: fitted, or fixed where given (e.g. ``{name: MinMax,
    min: [0], max: [1]}``: the same network units for sets of different ranges, as transfer learning may need)."""

    min: list[float] | None = None
    max: list[float] | None = None
    fitted_fields: ClassVar = ("min", "max")

    def fit(self, data) -> MinMax:
        """Fit whichever of ``min`` and ``max`` is not given."""
        if self.min is None or self.max is None:
            stats = _spread_stats("MinMax", data)
            self.min = stats.min.tolist() if self.min is None else self.min
            self.max = stats.max.tolist() if self.max is None else self.max
        if any(high <= low for low, high in zip(self.min, self.max)):
            raise DataError(f"MinMax needs max > min in every channel, got min {self.min} and max {self.max}")
        return self

    def forward(self, x):
        x = self._checked(x)
        low, high = _per_channel(self.min, x), _per_channel(self.max, x)
        return 2 * (x - low) / (high - low) - 1

    def inverse(self, y):
        y = self._checked(y)
        low, high = _per_channel(self.min, y), _per_channel(self.max, y)
        return (y + 1) / 2 * (high - low) + low


@dataclass
class Standardize(Transform):
    """Per-channel ``(x - mean) / std`` with the fitted mean and standard deviation."""

    mean: list[float] | None = None
    std: list[float] | None = None
    fitted_fields: ClassVar = ("mean", "std")

    def fit(self, data) -> Standardize:
        stats = _spread_stats("Standardize", data)
        self.mean, self.std = stats.mean.tolist(), stats.std.tolist()
        return self

    def forward(self, x):
        x = self._checked(x)
        return (x - _per_channel(self.mean, x)) / _per_channel(self.std, x)

    def inverse(self, y):
        y = self._checked(y)
        return y * _per_channel(self.std, y) + _per_channel(self.mean, y)


def robust_sigma(data, per_batch: int = 16384) -> np.ndarray:
    """Per-channel ``1.4826 median |x - median x|`` (the standard deviation for Gaussian x, e.g. the sky noise of
    images that are mostly sky), from at most ``per_batch`` evenly strided values per channel of each batch:
    deterministic, and bounded memory for any stream."""
    kept = []
    for batch in _batches(data):
        values = np.moveaxis(batch, 1, 0).reshape(batch.shape[1], -1)
        kept.append(values[:, :: -(-values.shape[1] // per_batch)].astype(np.float32))
    if not kept:
        raise DataError("cannot fit a transform on empty data")
    values = np.concatenate(kept, axis=1)
    if not np.isfinite(values).all():
        raise DataError("cannot fit a transform on data holding NaN or inf")
    values = values.astype(np.float64)
    return 1.4826 * np.median(np.abs(values - np.median(values, axis=1, keepdims=True)), axis=1)


@dataclass
class SignLog(Transform):
    """``sign(x) ln(|x| / sigma + 1)`` per channel (microwave-sky report, eq. 5.2). Compresses heavy tails of
    either sign; exactly invertible.

    ``scale`` chooses the fitted ``sigma``: ``"std"``, the standard deviation of x (the report's); ``"mad"``,
    `robust_sigma`, the noise level of images that are mostly background. Use ``"mad"`` where a few very bright
    objects dominate the standard deviation (galaxy cutouts: one i = 8 galaxy in 10,000 puts it at 300-1,500
    times the sky noise, and the std-scaled transform then squeezes every faint galaxy into its linear range).
    ``factor`` multiplies the fitted ``sigma``: with ``factor`` a few times the noise stays in the near-linear
    range, where the inverse (an exponential) amplifies a network's error in the noise's tails least (at x = -4 s,
    s the fitted scale before ``factor``, by (factor + 4) / factor over the error at 0).
    """

    sigma: list[float] | None = None
    scale: Literal["std", "mad"] = "std"
    factor: float = 1.0
    fitted_fields: ClassVar = ("sigma",)

    def fit(self, data) -> SignLog:
        if self.scale not in ("std", "mad"):
            raise ConfigError(f"SignLog scale must be 'std' or 'mad', got {self.scale!r}")
        if not (np.isfinite(self.factor) and self.factor > 0):
            raise ConfigError(f"SignLog factor must be a positive number, got {self.factor!r}")
        if self.scale == "std":
            sigma = _spread_stats("SignLog", data).std
        else:
            sigma = robust_sigma(data)
            if np.any(sigma <= 0):
                raise DataError(f"SignLog cannot fit channels {np.flatnonzero(sigma <= 0).tolist()}: their median "
                                "absolute deviation is 0 (use scale: std)")
        self.sigma = (self.factor * np.asarray(sigma, dtype=np.float64)).tolist()
        return self

    def forward(self, x):
        x = self._checked(x)
        xp = _xp(x)
        return xp.sign(x) * xp.log1p(xp.abs(x) / _per_channel(self.sigma, x))

    def inverse(self, y):
        y = self._checked(y)
        xp = _xp(y)
        return xp.sign(y) * xp.expm1(xp.abs(y)) * _per_channel(self.sigma, y)


@dataclass
class Contrast(Transform):
    """``x / (x + a)`` per channel (matter-field report), inverse ``a y / (1 - y)``.

    Maps x in (-a, inf) monotonically onto (-inf, 1); x >= 0 lands in [0, 1). ``a`` is a scalar or one
    value per channel; `contrast_a_for_noise` chooses it from a noise scale. The inverse's relative
    error grows like (x + a) / a times float32 round-off, so keep a comparable to typical values.
    """

    a: float | list[float] = 1.0

    def __post_init__(self):
        if np.any(np.asarray(self.a, dtype=float) <= 0):
            raise DataError(f"Contrast needs a > 0, got {self.a}")

    def _a(self, x):
        a = np.broadcast_to(np.asarray(self.a, dtype=float), (x.shape[1],))
        return _per_channel(a.tolist(), x)

    def forward(self, x):
        x = self._checked(x)
        a = self._a(x)
        if (x <= -a).any():
            raise _domain_error("Contrast", f"x > -a (a = {self.a})", x)
        return x / (x + a)

    def inverse(self, y):
        y = self._checked(y)
        return self._a(y) * y / (1 - y)


def contrast_a_for_noise(sigma0: float, c_nl: float = 1.0, root: str = "small") -> float:
    """Choose the `Contrast` parameter ``a`` so that ``C_nl = sigma0 / (sqrt(a) - a)`` equals ``c_nl``.

    With s = sqrt(a) this is s - s^2 = sigma0 / c_nl, solvable for sigma0 / c_nl <= 1/4 (the maximum
    of sqrt(a) - a, at a = 1/4). Two roots bracket a = 1/4: ``root="small"`` (default) gives a <= 1/4,
    ``root="large"`` gives a >= 1/4.
    """
    target = sigma0 / c_nl
    if not 0 < target <= 0.25:
        raise DataError(f"sigma0 / C_nl = {target:g} must be in (0, 1/4] for sqrt(a) - a to reach it")
    if root not in ("small", "large"):
        raise DataError(f"root must be 'small' or 'large', got {root!r}")
    disc = np.sqrt(1 - 4 * target)
    s = (1 - disc) / 2 if root == "small" else (1 + disc) / 2
    return float(s * s)


@dataclass
class Log1p(Transform):
    """``ln(1 + eps + x)``: for density contrasts delta >= -1 (use eps > 0 if delta = -1 occurs) or
    counts >= 0. Inverse ``expm1(y) - eps``."""

    eps: float = 0.0

    def forward(self, x):
        x = self._checked(x)
        if (x <= -1 - self.eps).any():
            raise _domain_error("Log1p", f"x > -1 - eps (eps = {self.eps:g}); set eps > 0 for x = -1", x)
        return _xp(x).log1p(x + self.eps)

    def inverse(self, y):
        y = self._checked(y)
        return _xp(y).expm1(y) - self.eps


@dataclass
class MaxNorm(Transform):
    """Divide each image's channel by its own maximum (gamma-ray report), so every image peaks at 1.

    The scale is per image, not fitted state: ``inverse(y, scale)`` needs ``scale(x)`` of the
    original images.
    """

    def scale(self, x):
        """Per-image, per-channel maxima, shaped ``[N, C, 1, ...]``."""
        x = self._checked(x)
        flat = x.reshape(*x.shape[:2], -1)
        peak = flat.amax(-1) if isinstance(x, torch.Tensor) else flat.max(-1)
        if (peak <= 0).any():
            raise DataError("MaxNorm needs images whose maximum is > 0 in every channel")
        return peak.reshape(*peak.shape, *(1,) * (x.ndim - 2))

    def forward(self, x):
        x = _as_float(x)
        return x / self.scale(x)

    def inverse(self, y, scale=None):
        if scale is None:
            raise DataError("MaxNorm.inverse needs the per-image scale: inverse(y, MaxNorm().scale(x))")
        return self._checked(y) * scale


@dataclass
class Compose(Transform):
    """Apply ``transforms`` in order; ``inverse`` undoes them in reverse order. ``fit`` fits each
    stage on the output of the stages before it."""

    transforms: list[Transform] = field(default_factory=list)

    def fit(self, data) -> Compose:
        for i, transform in enumerate(self.transforms):
            before = self.transforms[:i]
            transform.fit(_Mapped(data, lambda batch, before=before: _chain(before, batch)))
        return self

    def forward(self, x):
        return _chain(self.transforms, x)

    def inverse(self, y):
        for transform in reversed(self.transforms):
            y = transform.inverse(y)
        return y

    def to_dict(self) -> dict:
        return {"name": "Compose", "transforms": [t.to_dict() for t in self.transforms]}

    @classmethod
    def _from_fields(cls, fields: dict) -> Compose:
        return cls([Transform.from_dict(spec) for spec in fields.get("transforms", [])])


def _chain(transforms: Iterable[Transform], x):
    for transform in transforms:
        x = transform.forward(x)
    return x


def signlog_standardize() -> Compose:
    """The microwave-sky report's normalisation: `SignLog` then `Standardize` (eqs. 5.2-5.3)."""
    return Compose([SignLog(), Standardize()])
