"""Noise models of the denoising autoencoder: their statistics and composition."""

import numpy as np
import pytest
import torch

from astrogen.data.noise import Gaussian, Mask, Poisson, SaltPepper, make_noise
from astrogen.errors import ConfigError

GEN = lambda seed=0: torch.Generator().manual_seed(seed)  # noqa: E731


def test_mask_zeroes_the_requested_fraction():
    x = torch.full((8, 1, 64, 64), 0.5)
    out = Mask(0.3)(x, GEN())
    frac = (out == 0).float().mean().item()
    assert abs(frac - 0.3) < 4 * np.sqrt(0.3 * 0.7 / x.numel())
    assert torch.all((out == 0) | (out == 0.5))


def test_poisson_mean_and_variance():
    # Poisson(scale x) / scale: mean x, variance x / scale.
    x, scale = torch.full((16, 1, 64, 64), 0.3), 50.0
    out = Poisson(scale)(x, GEN()).double()
    n = x.numel()
    assert abs(out.mean().item() - 0.3) < 4 * np.sqrt(0.3 / scale / n)
    assert abs(out.var().item() / (0.3 / scale) - 1) < 4 * np.sqrt(2 / n)


def test_gaussian_std_and_clamp():
    x = torch.full((16, 1, 64, 64), 0.5)
    out = Gaussian(0.05)(x, GEN())
    assert abs(out.std().item() / 0.05 - 1) < 0.02
    wide = Gaussian(2.0)(x, GEN())
    assert wide.min() == 0 and wide.max() == 1  # clamped to [0, 1]


def test_salt_and_pepper_sets_min_or_max_in_equal_parts():
    x = torch.rand((8, 1, 64, 64), generator=GEN(1)) * 0.5 + 0.25
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    out = SaltPepper(0.4)(x, GEN())
    salt, pepper = (out == hi).float().mean().item(), (out == lo).float().mean().item()
    tol = 4 * np.sqrt(0.2 * 0.8 / x.numel()) + 2 / x[0].numel()
    assert abs(salt - 0.2) < tol and abs(pepper - 0.2) < tol


def test_make_noise_composes_and_validates():
    chain = make_noise([{"name": "mask", "fraction": 1.0}, {"name": "gaussian", "factor": 0.0}])
    assert torch.all(chain(torch.ones(2, 1, 4, 4), GEN()) == 0)
    assert make_noise(chain.to_list()) == chain
    same = make_noise([{"name": "poisson", "scale": 10}])
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(same(x, GEN(3)), same(x, GEN(3)))
    with pytest.raises(ConfigError, match="unknown noise"):
        make_noise([{"name": "speckle"}])
    with pytest.raises(ConfigError, match="fraction"):
        make_noise([{"name": "mask", "fraction": 1.5}])
