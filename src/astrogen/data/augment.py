"""Augmentation by the symmetries of the data: the 8 dihedral maps (or the 4 flips among them) and random
periodic shifts.

Both act on whole batches ``[N, C, ..., H, W]`` of torch tensors with one random draw per sample and
no Python loop over samples. Dihedral maps act on the last two (image) axes; shifts act on every
spatial axis and are only valid for periodic fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from astrogen.errors import DataError

# Dihedral maps (numbered as in `dihedral`) that keep the image axes: identity, half turn, left-right and
# up-down mirror. They are the symmetries of a sky with a preferred axis, e.g. a horizontal Galactic disk.
FLIPS = (0, 2, 5, 7)


def _dihedral_op(x: torch.Tensor, op: int) -> torch.Tensor:
    y = torch.rot90(x, op % 4, dims=(-2, -1))
    return y.transpose(-2, -1) if op >= 4 else y


def dihedral(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Apply dihedral map ``k[n]`` in 0..7 to sample ``n``: rotate by ``k % 4`` quarter turns, then
    transpose the image axes when ``k >= 4`` (rotation + transpose covers every flip)."""
    h, w = x.shape[-2:]
    if h != w:
        raise DataError(f"dihedral augmentation needs square images, got {(h, w)}")
    # Each map is a permutation of pixels: apply it to the pixel indices once, then one gather
    # picks every sample's own permutation (no host sync, no loop over samples).
    pixels = torch.arange(h * w, device=x.device).view(h, w)
    sources = torch.stack([_dihedral_op(pixels, op).reshape(-1) for op in range(8)])
    index = sources[k.to(x.device)].view(x.shape[0], *[1] * (x.ndim - 3), h * w)
    flat = x.reshape(*x.shape[:-2], h * w)
    return torch.gather(flat, -1, index.expand_as(flat)).view_as(x)


def periodic_shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll sample ``n`` by ``shifts[n, a]`` pixels along spatial axis ``a`` (periodic wrap-around)."""
    n, spatial = x.shape[0], x.shape[2:]
    if shifts.shape != (n, len(spatial)):
        raise DataError(f"shifts must be [{n}, {len(spatial)}], got {tuple(shifts.shape)}")
    for axis, size in enumerate(spatial):
        # out[n, ..., i, ...] = x[n, ..., (i - s_n) mod size, ...], as one gather over the batch.
        source = (torch.arange(size, device=x.device) - shifts[:, axis, None].to(x.device)) % size
        view = [n] + [1] * (x.ndim - 1)
        view[2 + axis] = size
        x = torch.gather(x, 2 + axis, source.view(view).expand_as(x))
    return x


@dataclass
class Augment:
    """Random symmetry augmentation of a batch ``[N, C, ..., H, W]``.

    Parameters
    ----------
    dihedral : apply one of the 8 dihedral maps (flips, quarter turns) per sample; ``"flips"``: one of the 4
        that keep the image axes (`FLIPS`); False: none.
    shift : roll each sample by a uniform random number of pixels along every spatial axis
        (periodic fields only).
    """

    dihedral: bool | Literal["flips"] = True
    shift: bool = False

    def __post_init__(self):
        if self.dihedral not in (True, False, "flips"):
            raise DataError(f"augmentation: dihedral must be true, false or 'flips', got {self.dihedral!r}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]
        if self.dihedral == "flips":
            x = dihedral(x, torch.tensor(FLIPS)[torch.randint(0, len(FLIPS), (n,), generator=generator)])
        elif self.dihedral:
            x = dihedral(x, torch.randint(0, 8, (n,), generator=generator))
        if self.shift:
            sizes = torch.tensor(x.shape[2:])
            x = periodic_shift(x, (torch.rand(n, len(sizes), generator=generator) * sizes).long())
        return x
