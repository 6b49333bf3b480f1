"""Inference networks: each overfits a tiny batch; targets round-trip; training through `astrogen.train`."""

import csv

import numpy as np
import pytest
import torch

from astrogen.errors import ConfigError, DataError
from astrogen.models.blocks import CNNRegressor
from astrogen.models.denoiser import DenoisingAutoencoder
from astrogen.models.regressor import TargetScaler, target_matrix
from astrogen.models.segmentation import UNet, segmentation_loss


def _fit(net, loss_fn, steps, lr=3e-3):
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    return first, loss.item()


@pytest.mark.slow
@pytest.mark.parametrize("bands", [1, 5])  # gamma-ray maps; five-band galaxy cutouts (the redshift CNN)
def test_regressor_overfits_a_tiny_batch(bands):
    torch.manual_seed(0)
    x, y = torch.rand(8, bands, 16, 16), torch.rand(8, 2)
    net = CNNRegressor(bands, (16, 16), [8, 16], [32], n_out=2)
    first, last = _fit(net, lambda: torch.nn.functional.mse_loss(net(x), y), 300)
    assert last < 1e-3 < first


@pytest.mark.slow
def test_unet_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16)
    target = (torch.rand(4, 1, 16, 16) < 0.3).float()
    net = UNet(1, [4, 8, 8, 8], 16, dropout=0.0)
    first, last = _fit(net, lambda: segmentation_loss(net(x), target, 0.1), 100, lr=1e-2)
    assert last < 0.1 * first
    assert net(x).shape == (4, 1, 16, 16)


@pytest.mark.slow
def test_dae_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16)
    net = DenoisingAutoencoder(1, 16, [8, 16], latent=6)
    first, last = _fit(net, lambda: torch.nn.functional.mse_loss(net(x), x), 300)
    assert last < 0.2 * first


def test_count_penalty_is_differentiable_and_vanishes_for_the_right_count():
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = 1
    logits = torch.tensor([[[[5.0, -5.0], [-5.0, -5.0]]]], requires_grad=True)
    with_penalty = segmentation_loss(logits, target, 1.0) - segmentation_loss(logits, target, 0.0)
    assert with_penalty.item() < 0.01
    wrong = torch.full((1, 1, 2, 2), 5.0, requires_grad=True)  # predicts 4 pixels for 1
    penalty = segmentation_loss(wrong, target, 1.0) - segmentation_loss(wrong, target, 0.0)
    assert penalty.item() == pytest.approx(3 * torch.sigmoid(torch.tensor(5.0)).item() / 4 - 0.25 * 0, abs=0.01)
    penalty.backward()
    assert torch.all(wrong.grad > 0)  # pushes every probability down


def test_target_scaling_round_trips_and_sums_columns():
    rng = np.random.default_rng(0)
    values = np.stack([rng.uniform(0.5, 1.5, 50), rng.integers(1000, 4000, 50)], 1).astype(float)
    scaler = TargetScaler.fit(values)
    u = scaler.forward(values)
    assert u.min() == 0 and u.max() == 1
    np.testing.assert_allclose(scaler.inverse(u), values)
    t = torch.tensor(values)
    torch.testing.assert_close(scaler.inverse(scaler.forward(t)), t)
    m = target_matrix(["A_dm", "n_ps_disk+n_ps_gc"], ["A_dm", "n_ps_disk", "n_ps_gc"])
    np.testing.assert_array_equal(np.array([[1.0, 10, 20]]) @ m, [[1, 30]])
    with pytest.raises(ConfigError, match="n_ps"):
        target_matrix(["n_ps"], ["A_dm"])
    with pytest.raises(DataError, match="constant"):
        TargetScaler.fit(np.ones((5, 1)))


@pytest.fixture(scope="module")
def gc_file(tmp_path_factory):
    from astrogen.sims import simulate_to_file

    path = tmp_path_factory.mktemp("gc") / "gc.h5"
    return simulate_to_file("galactic_center", 320, path, seed=1, config={"size": 32, "a_dm": [0.5, 1.5]})


@pytest.mark.slow
def test_dae_beats_the_noisy_input_on_held_out_images(gc_file, tmp_path):
    from astrogen.tasks import load_model
    from astrogen.train import train

    cfg = {"kind": "denoiser", "data": {"path": str(gc_file), "val_fraction": 0.2, "transform": [{"name": "MaxNorm"}],
                                         "batch_size": 32},
           "model": {"channels": [16, 32, 32], "latent": 6, "noise": [{"name": "gaussian", "factor": 0.2}]},
           "optim": {"lr": 3e-3},
           "trainer": {"out": str(tmp_path / "dae"), "max_steps": 120, "val_every_steps": 60, "accelerator": "cpu",
                       "devices": 1}}
    result = train(cfg, progress=False)
    module = load_model(result.checkpoint)
    from astrogen.data import FieldSet

    with FieldSet(gc_file) as fs:
        held_out = fs[256:].images
    clean, noisy = module.corrupt(held_out, seed=5)
    mse_noisy = np.mean((noisy - clean) ** 2)
    mse_dae = np.mean((module.denoise(noisy) - clean) ** 2)
    assert mse_dae < 0.5 * mse_noisy


@pytest.mark.slow
def test_regressor_and_unet_train_from_configs_and_reload(gc_file, tmp_path):
    from astrogen.tasks import load_model
    from astrogen.train import train

    common = {"trainer": {"max_steps": 6, "val_every_steps": 2, "accelerator": "cpu", "devices": 1}}
    reg = train({"kind": "regressor",
                 "data": {"path": str(gc_file), "batch_size": 16, "targets": ["A_dm", "n_ps_disk+n_ps_gc"]},
                 "model": {"channels": [8, 8], "hidden": [16]},
                 "optim": {"lr": 0.03}, "trainer": {**common["trainer"], "out": str(tmp_path / "reg")}},
                progress=False)
    module = load_model(reg.checkpoint)
    # best.ckpt holds the weights of the validation with the lowest val/loss (logged after steps 2, 4, 6;
    # lr 0.03 makes it jump, so the best is not simply the last).
    with open(reg.out / "logs" / "metrics.csv") as f:
        logged = [(float(row["val/loss"]), int(row["step"])) for row in csv.DictReader(f) if row["val/loss"]]
    assert len(logged) == 3 and reg.best == reg.out / "best.ckpt"
    assert torch.load(reg.best, weights_only=False)["global_step"] == min(logged)[1] + 1
    assert isinstance(load_model(reg.best), type(module))
    from astrogen.data import FieldSet

    with FieldSet(gc_file) as fs:
        batch = fs[:5]
    assert module.predict(batch.images).shape == (5, 2)
    truth = module.targets_of(batch.params)
    np.testing.assert_allclose(truth[:, 1], batch.params["n_ps_disk"] + batch.params["n_ps_gc"])
    seg = train({"kind": "segmentation", "data": {"path": str(gc_file), "batch_size": 16},
                 "trainer": {**common["trainer"], "out": str(tmp_path / "seg")}}, progress=False)
    prob = load_model(seg.checkpoint).predict(batch.images)
    assert prob.shape == (5, 1, 32, 32) and prob.min() >= 0 and prob.max() <= 1
    with pytest.raises(ConfigError, match="nope"):
        train({"kind": "regressor", "data": {"path": str(gc_file), "targets": ["nope"]},
               "trainer": {**common["trainer"], "out": str(tmp_path / "bad")}}, progress=False)


@pytest.mark.parametrize("preset", ["gc-regressor", "gc-unet", "gc-dae", "galaxies-zcnn"])
def test_presets_validate(preset):
    from pathlib import Path

    from astrogen.train import load_train_config

    cfg = load_train_config(Path(__file__).parents[2] / "configs" / "train" / f"{preset}.yaml")
    assert cfg.kind in ("regressor", "segmentation", "denoiser")
