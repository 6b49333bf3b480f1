from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from astrogen.errors import ConfigError, InputFileError
from astrogen.models.gan import GANModule
from astrogen.train.callbacks import ConvergenceStop, ModeCollapseWarning, batch_diversity, load_weights, plateaued


def feed(stop: ConvergenceStop, g, d) -> int | None:
    """Feed per-step losses (generator every other step, as with n_critic = 2); the step it stops at."""
    trainer = SimpleNamespace(should_stop=False, global_step=0, strategy=SingleDeviceStrategy("cpu"))
    for step, d_value in enumerate(d):
        trainer.global_step = step
        losses = {"d_loss": d_value, **({"g_loss": g[step // 2]} if step % 2 == 0 else {})}
        stop.on_train_batch_end(trainer, None, losses, None, step)
        if trainer.should_stop:
            return step
    return None


def test_convergence_stop_fires_on_a_plateau_and_not_on_a_trend():
    rng = np.random.default_rng(0)
    plateau_d = 2.0 + 0.05 * rng.standard_normal(400)
    plateau_g = -1.0 + 0.05 * rng.standard_normal(200)
    stopped = feed(ConvergenceStop(window=50, rtol=0.1), plateau_g, plateau_d)
    # the generator loss needs 2 windows = 100 values, i.e. 200 steps with n_critic = 2
    assert stopped == 198
    trend_d = np.linspace(10.0, 0.1, 400)  # falls ~25% per window: never within 10%
    assert feed(ConvergenceStop(window=50, rtol=0.1), plateau_g, trend_d) is None
    assert feed(ConvergenceStop(window=50, rtol=0.1), np.linspace(-5, 5, 200), plateau_d) is None


def test_plateaued_edge_cases():
    assert not plateaued([1.0] * 99, 50, 0.1)  # fewer than two windows
    assert plateaued([1.0] * 50 + [1.09] * 50, 50, 0.1)
    assert not plateaued([1.0] * 50 + [1.11] * 50, 50, 0.1)
    with pytest.raises(ConfigError):
        ConvergenceStop(window=0)


def test_batch_diversity_is_the_per_pixel_std_and_collapse_warns():
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(400, 1, 8, 8, generator=gen)
    assert batch_diversity(x) == pytest.approx(3.0, rel=0.05)
    module = SimpleNamespace(last_real=x[:16], last_fake=x[:1].repeat(16, 1, 1, 1) + 1e-3 * x[16:32],
                             log=lambda *a, **k: None)
    callback = ModeCollapseWarning(every_steps=1, threshold=0.2)
    with pytest.warns(UserWarning, match="mode collapse"):
        callback.on_train_batch_end(SimpleNamespace(global_step=5), module, {}, None, 0)
    module.last_fake = x[16:32]
    callback.on_train_batch_end(SimpleNamespace(global_step=6), module, {}, None, 0)
    assert callback.ratios[0] < 0.01 and 0.6 < callback.ratios[1] < 1.6


def test_transfer_learning_copies_weights_and_checks_the_architecture(tmp_path):
    torch.manual_seed(0)
    source = GANModule("wgan", {"base": 4, "latent": 8}, {}, [1, 16, 16], ["intensity"])
    path = tmp_path / "source.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = GANModule("wgan", {"base": 4, "latent": 8}, {}, [1, 16, 16], ["intensity"])
    assert not torch.equal(target.critic.linear.weight, source.critic.linear.weight)
    load_weights(target, path)
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))
    wider = GANModule("wgan", {"base": 8, "latent": 8}, {}, [1, 16, 16], ["intensity"])
    with pytest.raises(ConfigError, match="different architecture"):
        load_weights(wider, path)
    with pytest.raises(InputFileError):
        load_weights(target, tmp_path / "missing.ckpt")
