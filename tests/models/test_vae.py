import numpy as np
import pytest
import torch

from astrogen.data import FieldSet
from astrogen.errors import ConfigError
from astrogen.generate import sample_to_file
from astrogen.models.vae import VAEModule, negative_elbo
from astrogen.report.figures import traversal_figure
from astrogen.sims import simulate_to_file
from astrogen.tasks import load_model
from astrogen.train import train

TINY = {"base": 8, "latent": 4}


def test_negative_elbo_is_the_analytic_value():
    x = torch.zeros(2, 1, 2, 2)
    rec = torch.ones(2, 1, 2, 2)  # 1/2 * 4 pixels * 1^2 = 2 nats
    mu, log_var = torch.ones(2, 3), torch.zeros(2, 3)  # KL = 1/2 * 3 * 1^2 = 1.5 nats
    loss, recon, kl = negative_elbo(x, rec, mu, log_var, beta=2.0)
    assert (recon.item(), kl.item(), loss.item()) == pytest.approx((2.0, 1.5, 5.0))


def test_elbo_improves_on_a_tiny_set():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    grid = torch.arange(16.0)
    centres = torch.rand(16, 2, generator=gen) * 12 + 2
    x = torch.exp(-((grid[None, :, None] - centres[:, 0, None, None]) ** 2
                    + (grid[None, None, :] - centres[:, 1, None, None]) ** 2) / 8)[:, None] * 2 - 1
    module = VAEModule(TINY, {"lr": 3e-3}, [1, 16, 16])
    optimizer = module.configure_optimizers()

    def loss():
        module.eval()
        with torch.no_grad():
            mu, log_var = module.encode(x)
            return negative_elbo(x, module.decoder(mu), mu, log_var)[0].item()

    before = loss()
    module.train()
    for _ in range(150):
        optimizer.zero_grad()
        negative_elbo(x, *module(x))[0].backward()
        optimizer.step()
    after = loss()
    assert after < 0.5 * before


def test_vae_task_trains_samples_and_traverses(tmp_path):
    data = simulate_to_file("blobs", 24, tmp_path / "b.h5", seed=0, config={"n_blobs": 1, "size": 16, "fwhm": 3})
    cfg = {"kind": "vae", "model": TINY, "data": {"path": str(data), "batch_size": 8, "val_fraction": 0.25},
           "trainer": {"out": str(tmp_path / "run"), "max_steps": 4, "val_every_steps": 2, "log_every_steps": 1}}
    result = train(cfg, progress=False)
    assert result.steps == 4 and np.isfinite(result.metrics["val/loss"])
    module = load_model(result.checkpoint)
    assert isinstance(module, VAEModule)
    grid = module.latent_traversal((0, 2), n=3)
    assert grid.shape == (3, 3, 1, 16, 16)
    traversal_figure(grid)
    with pytest.raises(ConfigError):
        module.latent_traversal((1, 1))
    with FieldSet(data) as fs:
        assert module.reconstruct(torch.from_numpy(fs[:3].images)).shape == (3, 1, 16, 16)
    a = sample_to_file(result.checkpoint, tmp_path / "a.h5", n=3, seed=2)
    b = sample_to_file(result.checkpoint, tmp_path / "b2.h5", n=3, seed=2)
    with FieldSet(a) as fa, FieldSet(b) as fb:
        np.testing.assert_array_equal(fa[:].images, fb[:].images)
        assert fa.meta.channels == ["intensity"]
    with pytest.raises(ConfigError, match="conditioned on nothing"):
        sample_to_file(result.checkpoint, tmp_path / "c.h5", n=2, cond={"x0": 1.0})
    with pytest.raises(ConfigError, match="a vae model takes no sampling option clamp, steps"):
        sample_to_file(result.checkpoint, tmp_path / "c.h5", n=2, steps=5, clamp=True)
    assert not (tmp_path / "c.h5").exists()
