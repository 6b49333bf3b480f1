"""Layers shared between model families."""

import math

import pytest
import torch

from astrogen.errors import ConfigError
from astrogen.models.blocks import (
    AddCoords,
    BeamGenerator,
    DCGenerator,
    Exp,
    Floor,
    Gauss,
    LinearChannel,
    PixelGenerator,
    ScaledTanh,
)


def test_dc_generator_shape_and_bounded_output():
    out = DCGenerator(8, 5, 32, 4, scale=2.0)(torch.randn(3, 8) * 100)
    assert out.shape == (3, 5, 32, 32) and out.abs().max() < 2.0


def test_output_layers():
    layer = LinearChannel(2)
    with torch.no_grad():
        layer.weight[:] = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
        layer.bias[:] = torch.tensor([0.5, 1.0]).view(1, 2, 1, 1)
    x = torch.ones(1, 2, 3, 3)
    assert torch.allclose(layer(x)[0, :, 0, 0], torch.tensor([2.5, 0.0]))
    tanh = ScaledTanh(3.0)
    small = torch.tensor([1e-3, -2e-3])
    assert torch.allclose(tanh(small), small, rtol=1e-5)  # the identity near 0
    assert tanh(torch.tensor([1e4])).item() == pytest.approx(3.0)
    y = torch.linspace(-2.9, 2.9, 11)
    assert torch.allclose(tanh(tanh.inverse(y)), y, atol=1e-5)


def test_coordinate_channels():
    out = AddCoords()(torch.zeros(2, 3, 4, 5))
    assert out.shape == (2, 5, 4, 5) and torch.equal(out[:, :3], torch.zeros(2, 3, 4, 5))
    assert torch.equal(out[1, 3, :, 2], torch.linspace(-1, 1, 4))
    assert torch.equal(out[1, 4, 3], torch.linspace(-1, 1, 5))


def test_the_floor_output_draws_an_exactly_flat_background():
    floor = Floor(1.0)
    x = torch.tensor([-5.0, -1.5, -0.5, 0.0, 3.0], requires_grad=True)
    y = floor(x)
    assert y.tolist() == [-1.0, -1.0, -0.5, 0.0, 3.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # no gradient below the floor
    generator = DCGenerator(8, 1, 16, 4, scale=1.0, output="floor")
    with torch.no_grad():
        generator.stages[-2].bias.fill_(-100.0)  # LinearChannel: everything below the floor
    assert torch.equal(generator(torch.randn(3, 8)), torch.full((3, 1, 16, 16), -1.0))


def test_the_exp_output_is_smooth_above_its_floor_and_reaches_it_exactly_far_below():
    out = Exp(1.0)
    x = torch.tensor([-40.0, -17.5, -2.0, 0.0, 0.5], requires_grad=True)
    y = out(x)
    assert y[:2].tolist() == [-1.0, -1.0]  # exp(x) < 2^-25: exactly the floor in float32
    torch.testing.assert_close(y[2:], torch.tensor([math.exp(-2.0) - 1, 0.0, math.exp(0.5) - 1]))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.exp(x.detach()))  # d/dx: positive, vanishing far below
    torch.testing.assert_close(out.inverse(y[2:]), x.detach()[2:])
    assert Exp(2.0)(torch.tensor([-40.0])).item() == -2.0  # the floor is -scale


def test_the_gauss_output_of_a_cone_is_a_gaussian_bump_with_gaussian_tails():
    out, sigma = Gauss(2.0), 2.5  # pixels
    r = torch.linspace(0, 15, 61, dtype=torch.float64)  # distance to the bump's centre
    bump = out(r / (math.sqrt(2) * sigma))  # a cone in, the bump out
    torch.testing.assert_close(bump, 4 * torch.exp(-r**2 / (2 * sigma**2)) - 2)  # 2 s exp(-r^2 / 2 sigma^2) - s
    assert out(torch.tensor([0.0])).item() == 2.0 and out(torch.tensor([-20.0])).item() == -2.0  # peak, floor
    torch.testing.assert_close(out.inverse(bump[:30]), r[:30] / (math.sqrt(2) * sigma))
    x = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
    out(x).sum().backward()
    torch.testing.assert_close(x.grad, -8 * x.detach() * torch.exp(-x.detach() ** 2))  # d/dx 2 s exp(-x^2)


def test_pixel_generator_is_one_mlp_per_pixel_of_the_latent_and_its_coordinates():
    torch.manual_seed(0)
    generator = PixelGenerator(6, 3, 8, width=5, depth=2)
    with torch.no_grad():
        generator.output[0].weight.copy_(torch.tensor([1.0, 2.0, -1.0]).view(1, 3, 1, 1))
    z = torch.randn(4, 6)
    out = generator(z)
    assert out.shape == (4, 3, 8, 8)
    coordinate = torch.linspace(-1, 1, 8)
    for row, col in [(0, 0), (2, 7), (5, 3)]:  # by hand: the MLP on (features of z) + (features of (row, col))
        h = generator.mapping(z) + generator.position(torch.stack([coordinate[row], coordinate[col]]))
        expected = torch.tanh(generator.pixels(h) * torch.tensor([1.0, 2.0, -1.0]))  # LinearChannel, ScaledTanh(1)
        torch.testing.assert_close(out[:, :, row, col], expected)
    with torch.no_grad():
        generator.pixels[-1].bias.fill_(5.0)
    assert not torch.allclose(out, generator(z))  # the output depends on the last layer


def test_many_sources_add_above_the_floor_and_start_from_one_source_weights():
    torch.manual_seed(0)
    one = PixelGenerator(4, 2, 8, width=6, depth=2, output="gauss", scale=0.5)
    three = PixelGenerator(4, 2, 8, width=6, depth=2, output="gauss", scale=0.5, sources=3)
    three.load_state_dict(one.state_dict())  # the same parameters: transfer learning copies them
    z = torch.randn(5, 12)
    by_hand = sum(one(z[:, 4 * k : 4 * (k + 1)]) + 0.5 for k in range(3)) - 0.5
    torch.testing.assert_close(three(z), by_hand)
    assert three(z).min() >= -0.5 and three(z).max() > 0.5  # above the same floor; overlaps exceed one source's top


def test_peak_normalised_maps_are_divided_above_the_floor_by_their_maximum():
    torch.manual_seed(0)
    generator = PixelGenerator(4, 2, 8, width=6, depth=2, output="floor", sources=2, peak_normalised=True)
    with torch.no_grad():
        generator.output[0].bias.fill_(0.3)
    out = generator(torch.randn(5, 8))
    torch.testing.assert_close(out.amax(dim=(-2, -1)), torch.ones(5, 2))
    raw = PixelGenerator(4, 2, 8, width=6, depth=2, output="floor", sources=2)
    raw.load_state_dict(generator.state_dict())
    above = raw(z := torch.randn(3, 8)) + 1
    torch.testing.assert_close(generator(z) + 1, 2 * above / above.amax(dim=(-2, -1), keepdim=True))
    with pytest.raises(ConfigError, match="sources >= 1"):
        PixelGenerator(4, 1, 8, sources=0)


def _place(generator: BeamGenerator, u: list[float], flux: list[float]) -> None:
    """Every source of ``generator`` at sigmoid-space position ``u`` (row, column) with ``flux`` per channel."""
    with torch.no_grad():
        generator.mlp[-1].weight.zero_()
        generator.mlp[-1].bias.copy_(torch.tensor([*u, *flux]))


def test_a_beam_source_is_the_beam_at_its_position_with_its_flux():
    generator = BeamGenerator(3, 2, 16, beam_fwhm=4.0, width=5, depth=2, scale=0.5)
    _place(generator, [0.3, -1.2], [0.7, 0.0])
    out = generator(torch.randn(4, 3))
    row, column = 16 / (1 + math.exp(-0.3)) - 0.5, 16 / (1 + math.exp(1.2)) - 0.5  # size sigmoid(u) - 1/2
    sigma = 4.0 / math.sqrt(8 * math.log(2))
    i, j = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    beam = torch.exp(-((i - row) ** 2 + (j - column) ** 2) / (2 * sigma**2))
    torch.testing.assert_close(out[:, 0], (0.7 * beam - 0.5).expand(4, 16, 16))
    assert torch.equal(out[:, 1], torch.full((4, 16, 16), -0.5))  # a zero flux: exactly the floor
    at_half = beam[round(row)] > 0.5 * beam.max()
    assert 3 <= int(at_half.sum()) <= 5  # a FWHM of 4 pixels across the row through the centre


def test_beam_sources_add_above_the_floor_peak_normalised_and_start_from_one_source_weights():
    torch.manual_seed(0)
    one = BeamGenerator(3, 1, 16, beam_fwhm=3.0, width=5, depth=2)
    three = BeamGenerator(3, 1, 16, beam_fwhm=3.0, width=5, depth=2, sources=3)
    three.load_state_dict(one.state_dict())  # the same parameters: transfer learning copies them
    z = torch.randn(4, 9)
    torch.testing.assert_close(three(z), sum(one(z[:, 3 * k : 3 * (k + 1)]) + 1 for k in range(3)) - 1)
    normalised = BeamGenerator(3, 1, 16, beam_fwhm=3.0, width=5, depth=2, sources=3, peak_normalised=True)
    normalised.load_state_dict(one.state_dict())
    above = three(z) + 1
    torch.testing.assert_close(normalised(z) + 1, 2 * above / above.amax(dim=(-2, -1), keepdim=True))
    with pytest.raises(ConfigError, match="beam_fwhm > 0"):
        BeamGenerator(3, 1, 16, beam_fwhm=0.0)


@pytest.mark.parametrize("output", ["floor", "exp", "gauss"])
def test_pixel_generator_can_draw_an_exactly_flat_background(output):
    generator = PixelGenerator(8, 1, 16, output=output)
    with torch.no_grad():
        generator.output[0].bias.fill_(-100.0)
    assert torch.equal(generator(torch.randn(3, 8)), torch.full((3, 1, 16, 16), -1.0))
