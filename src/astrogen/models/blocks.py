"""Network pieces shared by more than one model family: the convolutional encoder and decoder of the GANs and the
VAE with their output layers, the VAE's reparameterisation and KL term, the CNN of the regressor and the posterior
embedding, and the weight average that diffusion models and GANs sample from.

Attribute names are part of the checkpoints' state-dict keys: renaming one breaks the shipped weights.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from astrogen.distributed import draw_rows
from astrogen.errors import ConfigError, DataError

# --------------------------------------------------------------------------------------------------
# Output layers.


class LinearChannel(nn.Module):
    """Learned per-channel affine map ``y_c = a_c x_c + b_c`` (a = 1, b = 0 at initialisation).

    Placed before `ScaledTanh` it lets each output channel choose its own range inside the tanh.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


class _OutputLayer(nn.Module):
    """An output layer with a positive ``scale`` (network units) and an ``inverse``."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        if scale <= 0:
            raise ConfigError(f"{type(self).__name__} needs scale > 0, got {scale}")
        self.scale = float(scale)


class ScaledTanh(_OutputLayer):
    """``s tanh(x / s)``: the identity for |x| << s, bounded to (-s, s). ``inverse`` is ``s atanh(y / s)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(x / self.scale)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``s atanh(y / s)``, with y clamped just inside (-s, s) so that it stays finite."""
        limit = 1 - 1e-6
        return self.scale * torch.atanh((y / self.scale).clamp(-limit, limit))


class Floor(_OutputLayer):
    """``max(x, -s)``: the identity above a hard floor at -s; ``inverse`` is the identity (on outputs >= -s).

    No gradient flows below the floor. Passing it straight through instead (Bengio et al. 2013) was measured
    worse on the 1-blob set: the critic's gradient on the flat background, applied to values the critic never
    saw, shrank the blobs (mean flux halved within 10,000 steps).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(-self.scale)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y


class Exp(_OutputLayer):
    """``exp(x) - s``: smooth and above a floor at -s; ``inverse`` is ``log(y + s)``.

    For positive fields whose zero is the floor (MinMax puts a zero minimum at -1, so s = 1): the network draws
    the log of the field. Far from any bump the output is exactly -s in float32 (where exp(x) < 2^-25 s), and the
    gradient, exp(x), is the output's distance to the floor. A piecewise-linear network (LeakyReLU) draws a
    piecewise-linear log, so bumps get exponential tails (docs/gans.md: rounder 1-blob cores than with `Floor`,
    heavier tails).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x) - self.scale

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.log((y + self.scale).clamp_min(torch.finfo(y.dtype).tiny))


class Gauss(_OutputLayer):
    """``2 s exp(-x^2) - s``: a Gaussian of the network's output, in (-s, s]; ``inverse`` is
    ``sqrt(-log((y + s) / 2 s))`` (the non-negative root).

    The Gaussian activation of compositional pattern-producing networks (Stanley 2007, doi:10.1007/s10710-007-9028-8)
    as the output layer. For fields of isolated bumps on a zero floor (MinMax puts it at -1, so s = 1): a Gaussian
    bump of width sigma at p0 is exactly exp(-x^2) with x = |p - p0| / (sqrt(2) sigma), a cone, which a
    piecewise-linear network draws with straight facets, and its tails fall as the Gaussian's as far as the drawn
    cone stays straight (a piecewise-linear log under `Exp` gives exponential tails). Overlapping bumps do not add,
    so it suits one bump per map, or per source of a `PixelGenerator` with ``sources`` (the sources add).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.scale * torch.exp(-x.square()) - self.scale

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        fraction = ((y + self.scale) / (2 * self.scale)).clamp(torch.finfo(y.dtype).tiny, 1)
        return torch.sqrt(-torch.log(fraction))


OUTPUTS = {"tanh": ScaledTanh, "floor": Floor, "exp": Exp, "gauss": Gauss}


# --------------------------------------------------------------------------------------------------
# Convolutional encoder and decoder (square images, side a power of two >= 8).


class AddCoords(nn.Module):
    """CoordConv (Liu et al. 2018, arXiv:1807.03247): appends two channels, the row and the column coordinate
    scaled to [-1, 1]. A plain convolution is translation-equivariant, so a network that must draw an object at
    a given place (a blob at (x0, y0)) has to infer where it is from the padding; with the coordinates it can
    read it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        cols = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([x, rows, cols], 1)


def _conv(conv: type[nn.Module], c_in: int, c_out: int, coords: bool) -> list[nn.Module]:
    """A 4x4 stride-2 (transposed) convolution, preceded by `AddCoords` when ``coords``."""
    return [AddCoords(), conv(c_in + 2, c_out, 4, 2, 1)] if coords else [conv(c_in, c_out, 4, 2, 1)]


def stride2_levels(size: int) -> int:
    """Stride-2 stages between a ``size`` x ``size`` image and a 4 x 4 map."""
    levels = round(math.log2(size)) - 2
    if size < 8 or 2 ** (levels + 2) != size:
        raise DataError(f"GAN and VAE networks need square images whose side is a power of two >= 8, got {size}")
    return levels


def doubling_widths(levels: int, base: int) -> list[int]:
    """Channels of ``levels`` stages: ``base``, doubling at each stage."""
    return [base * 2**i for i in range(levels)]


class ConvEncoder(nn.Module):
    """Conv 4x4 stride 2 (+ optional BatchNorm) + LeakyReLU(0.2) stages down to 4 x 4, then Linear.

    Parameters
    ----------
    in_channels : image channels.
    size : image side (pixels, a power of two >= 8).
    out_features : outputs of the final Linear layer.
    base : channels of the first stage (doubling at each stage).
    norm : BatchNorm after every convolution but the first (the VAE encoder); the critic has none, as the
        gradient penalty is per sample.
    coords : `AddCoords` before every convolution.
    """

    def __init__(self, in_channels: int, size: int, out_features: int, base: int = 64, norm: bool = False,
                 coords: bool = False):
        super().__init__()
        widths = doubling_widths(stride2_levels(size), base)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([in_channels, *widths[:-1]], widths)):
            layers += _conv(nn.Conv2d, c_in, c_out, coords)
            if norm and i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Linear(widths[-1] * 16, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


class DCGenerator(nn.Module):
    """Latent ``[N, latent]`` -> Linear -> 4 x 4 map -> transposed-conv 4x4 stride 2 + BN + LeakyReLU(0.2)
    stages -> transposed conv -> `LinearChannel` -> output layer (one of `OUTPUTS`) ->
    ``[N, channels, size, size]``: the DCWGAN-GP generator and the VAE decoder.

    The widths mirror the `ConvEncoder`'s (1024 ... 64 for 128 x 128 with ``base`` = 64); ``coords`` puts
    `AddCoords` before every transposed convolution.
    """

    def __init__(self, latent: int, channels: int, size: int, base: int = 64, scale: float = 1.0,
                 output: str = "tanh", coords: bool = False):
        super().__init__()
        widths = doubling_widths(stride2_levels(size), base)[::-1]
        self.latent = latent
        self.linear = nn.Linear(latent, widths[0] * 16)
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [*_conv(nn.ConvTranspose2d, c_in, c_out, coords), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        layers += [*_conv(nn.ConvTranspose2d, widths[-1], channels, coords), LinearChannel(channels),
                   OUTPUTS[output](scale)]
        self.stages = nn.Sequential(*layers)
        self.width = widths[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.stages(self.linear(z).view(z.shape[0], self.width, 4, 4))


class PixelGenerator(nn.Module):
    """Latent ``[N, latent]`` -> MLP -> features broadcast to every pixel and added to a linear map of the
    pixel's coordinates (in [-1, 1]) -> ``depth`` per-pixel layers (Linear + LeakyReLU(0.2) on the channels) ->
    Linear -> `LinearChannel` -> output layer -> ``[N, channels, size, size]``.

    The spatial broadcast decoder (Watters et al. 2019, arXiv:1901.07017) with only per-pixel layers, as in
    conditionally independent pixel synthesis (Anokhin et al. 2021, arXiv:2011.13775): every pixel sees the whole
    latent and its own position, so where an object lies is a function of the latent that each pixel reads,
    instead of a hand-over between the cells of a 4 x 4 seed map that transposed convolutions must learn.
    ``width`` hidden channels; the layers act on channels-last ``[N, H, W, width]`` maps (1x1 convolutions as
    matrix products).

    ``sources`` > 1: the map is a sum of sources, each drawn by the same layers from its own ``latent`` slice of
    the input ``[N, sources * latent]``, added above the output layer's floor -scale (``sum_k (y_k + s) - s``):
    a sky is a sum of sources, and overlapping ones add. A 1-source generator's weights start a many-source one
    (transfer learning: the 1-blob set's network draws each blob of the 10- and 50-blob sets). ``peak_normalised``:
    each map and channel is divided above the floor by its maximum, so it peaks at exactly +scale, for sets whose
    maps are divided by their maximum (the 10-blob set). Sources are drawn one after another: memory grows with
    ``sources`` only when gradients are kept.
    """

    def __init__(self, latent: int, channels: int, size: int, width: int = 64, depth: int = 3, scale: float = 1.0,
                 output: str = "tanh", sources: int = 1, peak_normalised: bool = False):
        super().__init__()
        if sources < 1:
            raise ConfigError(f"PixelGenerator needs sources >= 1, got {sources}")
        self.size, self.sources, self.peak_normalised, self.scale = size, sources, peak_normalised, float(scale)
        self.mapping = nn.Sequential(nn.Linear(latent, width), nn.LeakyReLU(0.2), nn.Linear(width, width))
        self.position = nn.Linear(2, width)
        layers: list[nn.Module] = [nn.LeakyReLU(0.2)]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.LeakyReLU(0.2)]
        self.pixels = nn.Sequential(*layers, nn.Linear(width, channels))
        self.output = nn.Sequential(LinearChannel(channels), OUTPUTS[output](scale))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        axis = torch.linspace(-1, 1, self.size, device=z.device, dtype=z.dtype)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)  # [H, W, 2]: row, column
        position = self.position(grid)

        def draw(latent: torch.Tensor) -> torch.Tensor:
            return self.output(self.pixels(self.mapping(latent)[:, None, None, :] + position).permute(0, 3, 1, 2))

        if self.sources == 1 and not self.peak_normalised:
            return draw(z)
        above_floor = sum(draw(latent) + self.scale for latent in z.chunk(self.sources, dim=1))
        return above_the_floor(above_floor, self.scale, self.peak_normalised)


def above_the_floor(above_floor: torch.Tensor, scale: float, peak_normalised: bool) -> torch.Tensor:
    """A sum of sources ``[N, C, H, W]`` (network units above the floor -scale) placed on the floor, each map and
    channel first divided by its maximum (so it peaks at exactly +scale) when ``peak_normalised``."""
    if peak_normalised:
        peak = above_floor.amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(above_floor.dtype).tiny)
        above_floor = above_floor * (2 * scale / peak)
    return above_floor - scale


class BeamGenerator(nn.Module):
    """Point sources seen through a circular Gaussian beam: latent ``[N, sources * latent]`` -> for each source,
    from its own ``latent`` slice, an MLP (``depth`` hidden layers of ``width``, LeakyReLU(0.2)) -> a position and
    a flux per channel -> Gaussians of full width at half maximum ``beam_fwhm`` pixels, summed above the floor
    -scale -> ``[N, channels, size, size]``.

    Position (row, column) = size sigmoid(u) - 1/2 pixels: a centre anywhere over the map's area (pixel centres at
    0 ... size - 1, as in `astrogen.sims.blobs`); flux = ReLU(v) in network units above the floor, exactly zero for
    a source the network switches off. The beam is the instrument's, known and fixed (the blob sets': FWHM 6
    pixels); the network learns where sources lie and how bright they are. A source's shape is then exact by
    construction, where a per-pixel network (`PixelGenerator`) draws it only to about 1e-3, which a chi2 of
    noise-free maps detects (docs/gans.md). The flux bias starts at 2 scale, a source reaching the top of the
    range. ``peak_normalised`` as in `PixelGenerator`. Rendered separably (`astrogen.sims.blobs.blob_images`).
    """

    def __init__(self, latent: int, channels: int, size: int, beam_fwhm: float, width: int = 64, depth: int = 3,
                 scale: float = 1.0, sources: int = 1, peak_normalised: bool = False):
        super().__init__()
        if sources < 1 or not beam_fwhm > 0:
            raise ConfigError(f"BeamGenerator needs sources >= 1 and beam_fwhm > 0, got {sources} and {beam_fwhm}")
        self.latent, self.channels, self.size, self.sources = latent, channels, size, sources
        self.beam_fwhm, self.scale, self.peak_normalised = float(beam_fwhm), float(scale), peak_normalised
        layers: list[nn.Module] = [nn.Linear(latent, width), nn.LeakyReLU(0.2)]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.LeakyReLU(0.2)]
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 2 + channels))
        with torch.no_grad():
            self.mlp[-1].bias[2:] = 2 * self.scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        from astrogen.sims.blobs import blob_images  # here: importing astrogen.sims loads every simulator

        n, c = len(z), self.channels
        out = self.mlp(z.reshape(n, self.sources, self.latent))  # [N, K, 2 + C]
        row, column = (self.size * torch.sigmoid(out[..., :2]) - 0.5).repeat_interleave(c, 0).unbind(-1)  # [N C, K]
        flux = torch.relu(out[..., 2:]).transpose(1, 2).reshape(n * c, self.sources)  # map-major, as the positions
        above_floor = blob_images(column, row, flux, self.size, self.beam_fwhm).view(n, c, self.size, self.size)
        return above_the_floor(above_floor, self.scale, self.peak_normalised)


# --------------------------------------------------------------------------------------------------
# Variational latents.


def reparameterise(mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(log_var / 2) eps, eps ~ N(0, 1) (drawn from ``generator`` on the CPU when given)."""
    eps = draw_rows(torch.randn, len(mu), mu.shape[1:], generator, mu.device).to(mu.dtype)
    return mu + torch.exp(0.5 * log_var) * eps


def kl_divergence(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(log_var)) || N(0, 1)) summed over latent dimensions, ``[N]`` (nats)."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(1)


# --------------------------------------------------------------------------------------------------
# Image summaries.


class CNNRegressor(nn.Module):
    """(conv 3x3 + ReLU + max-pool 2x2) x len(channels) -> flatten -> (linear + ReLU) x len(hidden) -> linear."""

    def __init__(self, in_channels: int, size: tuple[int, int], channels: list[int], hidden: list[int],
                 n_out: int, dropout: float = 0.0):
        super().__init__()
        h, w = size[0] >> len(channels), size[1] >> len(channels)
        if h < 1 or w < 1:
            raise DataError(f"images of {size[0]} x {size[1]} are too small for {len(channels)} pooling blocks")
        layers, c = [], in_channels
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = out
        self.features = nn.Sequential(*layers)
        head, width = [nn.Flatten()], c * h * w
        for out in hidden:
            head += [nn.Dropout(dropout), nn.Linear(width, out), nn.ReLU()]
            width = out
        self.head = nn.Sequential(*head, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --------------------------------------------------------------------------------------------------
# Weight average.


def ema_warmup_avg_fn(decay: float):
    """EMA update with warm-up for `AveragedModel`: decay min(d, (1 + s) / (10 + s)) at update s = 0, 1, ...
    (diffusers' EMAModel), so the average forgets its random initialisation within the first few hundred
    steps (a fixed 0.9995 keeps 61% of it after 1,000 steps). Integer buffers are copied, not averaged."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        step = int(num_averaged) - 1  # AveragedModel copies on the first call and counts it
        beta = min(decay, (1 + step) / (10 + step))
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - beta)
        for a, c in zip(averaged, current):  # counters (BatchNorm's num_batches_tracked) are copied
            if not a.is_floating_point():
                a.copy_(c)

    return update


__all__ = ["OUTPUTS", "AddCoords", "CNNRegressor", "ConvEncoder", "DCGenerator", "Floor", "Gauss", "LinearChannel",
           "PixelGenerator", "ScaledTanh", "doubling_widths", "ema_warmup_avg_fn", "kl_divergence", "reparameterise",
           "stride2_levels"]
