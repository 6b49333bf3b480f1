from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from astrogen.data import FieldSet, FieldSetWriter
from astrogen.errors import ConfigError, DataError
from astrogen.generate import sample_to_file
from astrogen.models.blocks import AddCoords, PixelGenerator
from astrogen.models.gan import Critic, GANModule, UNetGenerator, VAEGenerator, gradient_penalty
from astrogen.sims import simulate_to_file
from astrogen.tasks import load_model
from astrogen.train import train

TINY = {"base": 4, "latent": 8, "scale": 1.5}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_critic_matches_the_reports_table_for_128_pixels_and_5_channels():
    critic = Critic(5, 128)
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1024]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert critic.linear.in_features == 1024 * 4 * 4 and critic.linear.out_features == 1
    assert n_params(critic) == 11_164_609
    assert critic(torch.zeros(2, 5, 128, 128)).shape == (2,)
    assert n_params(Critic(10, 128)) == 11_164_609 + 5 * 64 * 16  # VAEGAN: 10 input channels


def test_generators_shapes():
    assert UNetGenerator(1, 4, 32, 4)(torch.randn(3, 1, 32, 32)).shape == (3, 4, 32, 32)
    out, mu, log_var = VAEGenerator(5, 16, 6, 4)(torch.randn(3, 5, 16, 16))
    assert out.shape == (3, 5, 16, 16) and mu.shape == log_var.shape == (3, 6)
    with pytest.raises(DataError, match="power of two"):
        Critic(1, 48)


def test_coordinate_channels_before_every_convolution():
    module = GANModule("wgan", {**TINY, "coords": True}, {}, [1, 16, 16], ["intensity"])
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    coords = [m for m in module.modules() if isinstance(m, AddCoords)]
    assert len(coords) == len(convs) == 6  # generator, its average and critic: 2 convolutions each
    assert module.critic.features[1].in_channels == 1 + 2  # the image and its two coordinates
    assert module.sample(3).shape == (3, 1, 16, 16) and module.critic(torch.zeros(3, 1, 16, 16)).shape == (3,)


def test_a_wgan_with_the_pixel_generator():
    module = GANModule("wgan", {**TINY, "generator": "pixel", "width": 6, "depth": 2}, {}, [2, 16, 16], ["a", "b"])
    assert isinstance(module.generator, PixelGenerator) and isinstance(module.generator_ema.module, PixelGenerator)
    assert module.generator.pixels[1].in_features == 6 and len(module.generator.pixels) == 6
    z = torch.randn(3, TINY["latent"], generator=torch.Generator().manual_seed(0))
    sample = module.sample(3, torch.Generator().manual_seed(0))  # from the average, in the transform's units
    torch.testing.assert_close(sample, module.generator_ema.module.eval()(z))
    assert sample.shape == (3, 2, 16, 16)
    with pytest.raises(ValueError, match="generator"):  # pydantic's ValidationError
        GANModule("wgan", {**TINY, "generator": "stylegan"}, {}, [1, 16, 16], ["intensity"])
    with pytest.raises(ConfigError, match="pixel is a wgan generator"):
        GANModule("vaegan", {**TINY, "generator": "pixel"}, {}, [1, 16, 16], ["intensity"])


def test_a_wgan_with_many_sources_draws_one_latent_per_source():
    net = {**TINY, "generator": "pixel", "width": 6, "depth": 2, "output": "gauss", "sources": 3,
           "peak_normalised": True}
    module = GANModule("wgan", net, {}, [1, 16, 16], ["intensity"])
    assert module.latent == 3 * TINY["latent"] and module.generator.sources == 3
    z = torch.randn(4, 3 * TINY["latent"], generator=torch.Generator().manual_seed(0))
    sample = module.sample(4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample, module.generator_ema.module.eval()(z))
    torch.testing.assert_close(sample.amax(dim=(-2, -1)), torch.full((4, 1), TINY["scale"]))  # at +scale
    with pytest.raises(ConfigError, match=r"need model\.generator: pixel or beam"):
        GANModule("wgan", {**TINY, "sources": 2}, {}, [1, 16, 16], ["intensity"])


def test_a_beam_wgan_draws_sources_of_the_given_beam_and_checks_its_options():
    net = {**TINY, "generator": "beam", "beam_fwhm": 3.0, "width": 6, "depth": 2, "sources": 4}
    module = GANModule("wgan", net, {}, [1, 16, 16], ["intensity"])
    assert module.latent == 4 * TINY["latent"] and module.generator.beam_fwhm == 3.0
    z = torch.randn(2, 4 * TINY["latent"], generator=torch.Generator().manual_seed(0))
    sample = module.sample(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample, module.generator_ema.module.eval()(z))
    for bad, match in [({"beam_fwhm": None}, r"goes with model\.generator: beam"),
                       ({"output": "gauss"}, "no output layer")]:
        with pytest.raises(ConfigError, match=match):
            GANModule("wgan", {**net, **bad}, {}, [1, 16, 16], ["intensity"])
    with pytest.raises(ConfigError, match=r"goes with model\.generator: beam"):
        GANModule("wgan", {**TINY, "beam_fwhm": 3.0}, {}, [1, 16, 16], ["intensity"])
    with pytest.raises(ConfigError, match="beam is a wgan generator"):
        GANModule("vaegan", net, {}, [1, 16, 16], ["intensity"])


def test_samples_come_from_the_generator_average():
    module = GANModule("wgan", TINY, {"ema_decay": 0.5}, [1, 16, 16], ["intensity"])
    raw = {k: v.clone() for k, v in module.generator.state_dict().items()}
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.generator_ema.update_parameters(module.generator)  # the first update copies
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.generator_ema.update_parameters(module.generator)  # decay min(0.5, 1 / 10): 0.1 old + 0.9 new
    averaged = module.generator_ema.module.linear.weight
    torch.testing.assert_close(averaged, raw["linear.weight"] + 1.9)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, TINY["latent"], generator=gen)
    sample = module.sample(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample, module.generator_ema.module.eval()(z))
    state = module.exported_state()  # the model folder keeps the average, under the generator's names
    assert set(state) == {f"generator.{k}" for k in module.generator.state_dict()}
    torch.testing.assert_close(state["generator.linear.weight"], averaged)
    fresh = GANModule("wgan", TINY, {}, [1, 16, 16], ["intensity"])
    fresh.load_exported_state(state)
    torch.testing.assert_close(fresh.sample(2, torch.Generator().manual_seed(0)), sample)


def test_checkpoints_from_before_the_average_still_load():
    module = GANModule("wgan", TINY, {}, [1, 16, 16], ["intensity"])
    old = {k: v for k, v in module.state_dict().items() if not k.startswith("generator_ema.")}
    fresh = GANModule("wgan", TINY, {}, [1, 16, 16], ["intensity"])
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.generator_ema.module.linear.weight, module.generator.linear.weight)


class LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = w

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_vanishes_only_for_a_unit_gradient_critic():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(6, 2, 4, 4, generator=gen), torch.randn(6, 2, 4, 4, generator=gen)
    w = torch.randn(32, generator=gen)
    unit = gradient_penalty(LinearCritic(w / w.norm()), real, fake)
    assert unit.item() == pytest.approx(0.0, abs=1e-10)
    double = gradient_penalty(LinearCritic(2 * w / w.norm()), real, fake)
    assert double.item() == pytest.approx(1.0, rel=1e-5)  # (2 - 1)^2
    assert gradient_penalty(LinearCritic(0.5 * w / w.norm()), real, fake).item() == pytest.approx(0.25, rel=1e-5)


@pytest.fixture(scope="module")
def two_channel_set(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gan")
    path = simulate_to_file("blobs", 24, tmp / "b.h5", seed=0, config={"n_blobs": 1, "size": 16, "fwhm": 3})
    with FieldSet(path) as fs:
        images, meta = fs[:].images, fs.meta
    two = tmp / "two.h5"
    meta = replace(meta, channels=["kappa", "tsz"])
    with FieldSetWriter(two, (2, 16, 16), meta) as writer:  # tsz = kappa^2: a learnable map
        writer.append(np.concatenate([images, images**2], 1), {})
    return path, two


def config(tmp, data, kind, **extra):
    return {"kind": kind, "data": {"path": str(data), "batch_size": 8, "val_fraction": 0.25}, "model": TINY,
            "optim": {"n_critic": 2}, "collapse": {"every_steps": 1},
            "trainer": {"out": str(tmp / kind), "max_steps": 6, "val_every_steps": 3, "log_every_steps": 1},
            **extra}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wgan", "pixgan", "vaegan"])
def test_each_gan_trains_a_few_steps_with_finite_losses_and_samples(two_channel_set, tmp_path, kind):
    one, two = two_channel_set
    data = one if kind == "wgan" else two
    cfg = config(tmp_path, data, kind)
    if kind == "pixgan":
        cfg["data"]["inputs"], cfg["optim"]["l1_weight"] = ["kappa"], 1.0
    result = train(cfg, progress=False)
    assert result.steps == 6  # critic and generator steps together
    logged = (tmp_path / kind / "logs" / "metrics.csv").read_text().splitlines()
    header = logged[0].split(",")
    for key in ("train/d_loss", "train/g_loss", "val/wasserstein"):
        values = [float(row.split(",")[header.index(key)]) for row in logged[1:] if row.split(",")[header.index(key)]]
        assert values and np.all(np.isfinite(values)), key
    module = load_model(result.checkpoint)
    assert isinstance(module, GANModule) and module.kind == kind
    out = sample_to_file(result.checkpoint, tmp_path / "gen.h5", n=5, seed=3, batch_size=2,
                         inputs_from=None if kind == "wgan" else data)
    with FieldSet(out) as gen, FieldSet(data) as real:
        assert gen.sample_shape == real.sample_shape and len(gen) == 5
        assert np.isfinite(gen[:].images).all()
        # samples are in physical units: inside the training range widened by the output bound
        low, high = real[:].images.min(), real[:].images.max()
        assert gen[:].images.min() >= low - (high - low) and gen[:].images.max() <= high + (high - low)
        if kind == "pixgan":  # the input channel passes through unchanged
            np.testing.assert_allclose(gen[:].images[:, 0], real[:5].images[:, 0], rtol=1e-5, atol=1e-6)


def test_conditional_gans_need_inputs():
    with pytest.raises(ConfigError, match="pixgan needs"):
        GANModule("pixgan", TINY, {}, [2, 16, 16], ["kappa", "tsz"])
    module = GANModule("vaegan", TINY, {}, [2, 16, 16], ["kappa", "tsz"])
    with pytest.raises(ConfigError, match="maps input images"):
        module.sample(3)
