
import numpy as np
import pytest
import torch
from torch import nn

from astrogen.data.transforms import Log1p, MinMax
from astrogen.errors import ConfigError
from astrogen.models.diffusion import (
    Denoiser,
    DiffusionConfig,
    DiffusionModule,
    NoiseSchedule,
    make_scheduler,
    reverse_process,
)

CONFIG = DiffusionConfig()  # linear beta 1e-4 -> 0.02 over T = 1000, the reports' default
SCHEDULE = NoiseSchedule(make_scheduler(CONFIG).betas)
TINY = {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1}


def test_forward_steps_reach_the_closed_form_marginal():
    # Iterating x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps from x_0 must give
    # mean sqrt(abar_t) x_0 and variance 1 - abar_t; writing beta_t for sqrt(beta_t) would not.
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20_000, 1), 1.5, dtype=torch.float64)
    x = x0
    for t in range(600):
        x = SCHEDULE.q_step(x, torch.full((len(x),), t), torch.randn(x.shape, generator=gen, dtype=x.dtype))
    abar = SCHEDULE.alphas_cumprod[599]
    assert abs(x.mean() - abar.sqrt() * 1.5) < 4 * (1 / len(x)) ** 0.5
    assert abs(x.var() / (1 - abar) - 1) < 4 * (2 / len(x)) ** 0.5
    closed = SCHEDULE.q_sample(x0, torch.full((len(x),), 599), torch.randn(x.shape, generator=gen, dtype=x.dtype))
    assert abs(closed.var() / x.var() - 1) < 0.05


@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_reverse_mean_from_the_true_noise_is_the_posterior_mean(t):
    # Ho et al. eq. 7: mu~(x_t, x_0) = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
    #                                   + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t.
    # The eps form must equal it when given the true noise; 1/sqrt(abar_t) in place of 1/sqrt(alpha_t)
    # would not.
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(64, 1, 4, 4, generator=gen, dtype=torch.float64), torch.randn(
        64, 1, 4, 4, generator=gen, dtype=torch.float64)
    ts = torch.full((64,), t)
    xt = SCHEDULE.q_sample(x0, ts, eps)
    beta, abar, abar_prev = SCHEDULE.betas[t], SCHEDULE.alphas_cumprod[t], SCHEDULE.alphas_cumprod[t - 1]
    analytic = (abar_prev.sqrt() * beta / (1 - abar)) * x0 + ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)) * xt
    torch.testing.assert_close(SCHEDULE.posterior_mean(xt, ts, eps), analytic, rtol=1e-10, atol=1e-10)


def test_diffusers_ddpm_step_used_for_sampling_has_our_posterior_mean():
    # The production sampler is diffusers' DDPMScheduler: its step is mean + sigma_t z with
    # sigma_t^2 = (1 - abar_{t-1}) / (1 - abar_t) beta_t; recover z from the same generator seed.
    scheduler = make_scheduler(CONFIG, "ddpm")
    scheduler.set_timesteps(CONFIG.timesteps)
    x_t, eps = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    t = 700
    step = scheduler.step(eps, t, x_t, generator=torch.Generator().manual_seed(5)).prev_sample
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5))
    abar, abar_prev, beta = SCHEDULE.alphas_cumprod[t], SCHEDULE.alphas_cumprod[t - 1], SCHEDULE.betas[t]
    sigma = ((1 - abar_prev) / (1 - abar) * beta).sqrt().float()
    mean = SCHEDULE.posterior_mean(x_t.double(), torch.full((8,), t), eps.double()).float()
    torch.testing.assert_close(step - sigma * z, mean, rtol=1e-5, atol=1e-5)


def test_velocity_target_inverts_to_the_clean_image():
    x0, eps, t = torch.randn(5, 1, 3, 3), torch.randn(5, 1, 3, 3), torch.tensor([0, 10, 100, 500, 999])
    xt, v = SCHEDULE.q_sample(x0, t, eps), SCHEDULE.velocity(x0, eps, t)
    abar = SCHEDULE.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    torch.testing.assert_close(abar.sqrt() * xt - (1 - abar).sqrt() * v, x0, rtol=1e-5, atol=1e-5)


class GaussianOracle(nn.Module):
    """The exact eps-predictor for data x_0 ~ N(m, s^2) per pixel: E[eps | x_t]."""

    def __init__(self, mean, var):
        super().__init__()
        self.mean, self.var = mean, var

    def forward(self, x, t, cond=None, keep=None):
        abar = SCHEDULE.alphas_cumprod[t].to(x.dtype).view(-1, *[1] * (x.ndim - 1)).to(x.device)
        return (1 - abar).sqrt() * (x - abar.sqrt() * self.mean) / (abar * self.var + 1 - abar)


@pytest.mark.parametrize(
    ("sampler", "steps", "mean", "var"),
    [("ddpm", 1000, 0.3, 0.25), ("ddpm", 1000, 0.5, 0.01), ("ddim", 200, 0.3, 0.25), ("dpm", 20, 0.3, 0.25),
     ("dpm", 20, 0.5, 0.01)],
)
def test_samplers_with_the_exact_denoiser_reproduce_the_data_distribution(sampler, steps, mean, var):
    # No mean bias, no lost spread: each configured sampler, driven by the exact denoiser of a
    # Gaussian, returns that Gaussian's mean and variance. (DPM-Solver with diffusers' default
    # uniform-t steps fails the narrow case: variance ratio 0.24.)
    n = 4000
    out = reverse_process(GaussianOracle(mean, var), CONFIG, (n, 1, 1, 1), sampler, steps,
                 generator=torch.Generator().manual_seed(2)).double()
    assert abs(out.mean() - mean) < 4 * (var / n) ** 0.5
    assert abs(out.var() / var - 1) < 0.1


def test_generate_writes_physical_units_through_the_inverse_transform():
    transform = MinMax(min=[10.0], max=[30.0])  # physical [10, 30] <-> network [-1, 1]
    module = DiffusionModule(model=TINY, image_shape=[1, 4, 4], transform=transform.to_dict())
    module.ema.module = GaussianOracle(0.5, 0.01)  # network-space data N(0.5, 0.1^2)
    images = module.sample(500, torch.Generator().manual_seed(3), steps=20)
    # Physical mean 10 + (0.5 + 1) / 2 * 20 = 25, std 0.1 * 10 = 1.
    assert abs(images.mean().item() - 25.0) < 0.05
    assert abs(images.std().item() - 1.0) < 0.05


def test_periodic_padding_makes_the_denoiser_shift_equivariant():
    torch.manual_seed(0)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 600])
    for periodic in (True, False):
        net = Denoiser(DiffusionConfig(**TINY, periodic=periodic), 1, 16).eval()
        with torch.no_grad():
            shifted_in = net(torch.roll(x, (4, 6), (-2, -1)), t)  # multiples of 2^(levels-1) = 2
            shifted_out = torch.roll(net(x, t), (4, 6), (-2, -1))
        assert torch.allclose(shifted_in, shifted_out, atol=1e-5) == periodic


def test_conditioning_changes_the_output_and_dropout_removes_it():
    torch.manual_seed(0)
    net = Denoiser(DiffusionConfig(**TINY), 1, 8, n_conditions=2).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 500])
    a, b = torch.zeros(3, 2), torch.ones(3, 2)
    with torch.no_grad():
        assert not torch.allclose(net(x, t, a), net(x, t, b))
        dropped = torch.zeros(3)
        torch.testing.assert_close(net(x, t, a, dropped), net(x, t, b, dropped))


def test_samples_are_clamped_only_when_asked_and_the_clamp_is_counted():
    transform = Log1p()  # an exponential inverse: unclamped outliers overflow
    module = DiffusionModule(model=TINY, image_shape=[1, 4, 4], transform=transform.to_dict(),
                             data_range=[[0.0], [2.0]])
    module.ema.module = GaussianOracle(100.0, 0.01)  # network-space "data" far beyond the training range
    raw = module.sample(4, torch.Generator().manual_seed(0), steps=5)
    assert module.clamped_pixels == 0 and (raw > np.expm1(50)).all()  # nothing adjusted by default
    images = module.sample(4, torch.Generator().manual_seed(0), steps=5, clamp=True)
    assert torch.allclose(images, torch.expm1(torch.tensor(2.5)))  # max 2 + 25% of the width 2
    assert module.clamped_pixels == images.numel()
    module.ema.module = GaussianOracle(1.0, 0.01)
    inside = module.sample(4, torch.Generator().manual_seed(0), steps=5, clamp=True)
    assert (inside < np.expm1(2.5)).all() and module.clamped_pixels == 0


@pytest.mark.slow
def test_ema_warm_up_forgets_the_initialisation():
    # decay min(d, (1 + s) / (10 + s)): after 1,000 updates at d = 0.9995 the initial weights keep
    # prod_s beta_s of their weight, far below the fixed-decay 0.9995^1000 = 0.61.
    module = DiffusionModule(model=TINY, image_shape=[1, 4, 4], ema_decay=0.9995)
    first = [p.detach().clone() for p in module.denoiser.parameters()]
    module.ema.update_parameters(module.denoiser)  # the first call copies
    with torch.no_grad():
        for p in module.denoiser.parameters():
            p.zero_()
    kept = 1.0
    for s in range(1000):
        module.ema.update_parameters(module.denoiser)
        kept *= min(0.9995, (1 + s) / (10 + s))
    for averaged, start in zip(module.ema.module.parameters(), first):
        torch.testing.assert_close(averaged, start * kept, rtol=1e-4, atol=1e-7)
    assert kept < 0.05


def test_min_snr_weights_follow_the_x0_loss():
    from astrogen.models.diffusion import min_snr_weight

    snr = torch.tensor([0.1, 1.0, 5.0, 100.0])
    # eps loss = SNR x0 loss, v loss = (SNR + 1) x0 loss: both weighted to min(SNR, 5) x0 loss.
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "epsilon") * snr, snr.clamp(max=5))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "v") * (snr + 1), snr.clamp(max=5))


@pytest.mark.slow
def test_tiny_model_overfits_a_small_batch():
    torch.manual_seed(0)
    module = DiffusionModule(model=TINY, image_shape=[1, 8, 8], lr=3e-3, warmup_steps=1)
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    images = torch.stack([torch.exp(-((xx - c) ** 2 + (yy - c) ** 2) / 4) * 2 - 1 for c in (2, 5)])[:, None]
    batch = {"image": images.repeat(4, 1, 1, 1), "params": torch.zeros(8, 0)}
    fixed = lambda: module._loss(batch, torch.Generator().manual_seed(0), train=False).item()  # noqa: E731
    before = fixed()
    optimizer = torch.optim.AdamW(module.denoiser.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        module._loss(batch).backward()
        optimizer.step()
    assert fixed() < before / 10


def test_config_and_sampler_errors():
    with pytest.raises(ValueError, match="divisible"):
        DiffusionConfig(channels=[18, 18], attention_levels=1)
    with pytest.raises(ConfigError, match="unknown sampler"):
        make_scheduler(CONFIG, "euler")
    module = DiffusionModule(model=TINY, image_shape=[1, 4, 4], conditions=["z"], cond_mean=[1.0],
                             cond_std=[0.5], cond_jitter=[0.01])
    with pytest.raises(ConfigError, match="conditioned on"):
        module.sample(2, sampler="ddim", steps=2)
    assert np.allclose(module.standardise(torch.tensor([[2.0]])).numpy(), 2.0)
