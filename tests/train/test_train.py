import logging

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from astrogen.cli import main
from astrogen.data import FieldSet
from astrogen.errors import ConfigError, UnknownNameError
from astrogen.generate import batch_seed, load_diffusion, sample_to_file
from astrogen.sims import simulate_to_file
from astrogen.tasks import read_checkpoint
from astrogen.train import build_module, load_train_config, train

TINY = {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1}


def config(tmp, data, **trainer):
    return {
        "data": {"path": str(data), "conditions": ["x0"], "batch_size": 8, "val_fraction": 0.25},
        "model": TINY,
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "trainer": {"out": str(tmp / "run"), "max_steps": 4, "val_every_steps": 2, "log_every_steps": 1, **trainer},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    data = simulate_to_file("blobs", 32, tmp / "blobs.h5", seed=0, config={"n_blobs": 1, "size": 16, "fwhm": 4})
    result = train(config(tmp, data), progress=False)
    return tmp, data, result


def test_training_writes_checkpoints_logs_and_everything_needed_to_sample(trained):
    tmp, data, result = trained
    assert result.steps == 4 and result.checkpoint.is_file()
    assert (tmp / "run" / "checkpoints" / "last.ckpt").is_file()
    logged = (tmp / "run" / "logs" / "metrics.csv").read_text()
    assert "val/loss" in logged and "train/loss" in logged
    assert list((tmp / "run" / "tensorboard").glob("events.*"))
    module = load_diffusion(result.checkpoint)
    assert module.conditions == ["x0"]
    with FieldSet(data) as fs:  # transform and condition statistics come from the training split only
        train_x0 = fs.params["x0"][:24]
        assert module.hparams.data_meta["simulator"] == "blobs"
    np.testing.assert_allclose(module.cond_mean.numpy(), [train_x0.mean()], rtol=1e-6)
    assert module.transform.transforms[0].max == pytest.approx([float(FieldSet(data)[:24].images.max())])


def test_resume_continues_the_step_count(trained):
    tmp, data, _ = trained
    resumed = train(config(tmp, data, max_steps=6), resume=tmp / "run" / "checkpoints" / "last.ckpt",
                    progress=False)
    assert resumed.steps == 6


def test_last_checkpoint_follows_every_validation_when_the_metric_stalls(trained):
    tmp, data, _ = trained
    cfg = config(tmp, data, out=str(tmp / "stalled"), max_steps=6)
    cfg["optim"]["lr"] = 1e-30  # the weights cannot move: the same validation loss at steps 2, 4 and 6, no new best
    train(cfg, progress=False)
    checkpoints = tmp / "stalled" / "checkpoints"
    logged = [line.split(",") for line in (tmp / "stalled" / "logs" / "metrics.csv").read_text().splitlines()]
    column = logged[0].index("val/loss")
    assert len({row[column] for row in logged[1:] if row[column]}) == 1
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-step=2.ckpt", "last.ckpt"]
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] == 6  # Lightning's save_last stopped at 2


def test_samples_are_in_physical_units_and_reproducible(trained, tmp_path):
    _, data, result = trained
    a = sample_to_file(result.checkpoint, tmp_path / "a.h5", n=5, steps=3, cond={"x0": 7.5}, seed=1, batch_size=2)
    b = sample_to_file(result.checkpoint, tmp_path / "b.h5", n=5, steps=3, cond={"x0": 7.5}, seed=1, batch_size=2)
    assert a.read_bytes() == b.read_bytes()
    with FieldSet(a) as fs, FieldSet(data) as real:
        assert fs.shape == (5, 1, 16, 16) and fs.channels == real.channels
        assert fs.meta.units == real.meta.units and fs.meta.pixel_size == real.meta.pixel_size
        np.testing.assert_array_equal(fs.params["x0"], 7.5)
        assert fs.meta.provenance["sampler"] == "dpm"
        # The file holds the module's physical-unit output (transform inverted), batch by batch.
        module = load_diffusion(result.checkpoint)
        expected = torch.cat([
            module.sample(len(rows), torch.Generator().manual_seed(batch_seed(1, b)),
                          conditions=torch.full((len(rows), 1), 7.5), steps=3)
            for b, rows in enumerate([range(2), range(2), range(1)])
        ])
        np.testing.assert_array_equal(fs[:].images, expected.numpy())
        assert fs.meta.provenance["clamp"] == {"applied": False}


def test_a_requested_clamp_is_recorded_with_its_fraction(trained, tmp_path):
    _, _, result = trained  # four training steps: the samples are mostly noise, far outside the training range
    path = sample_to_file(result.checkpoint, tmp_path / "c.h5", n=6, steps=3, cond={"x0": 7.5}, batch_size=4,
                          clamp=True)
    module = load_diffusion(result.checkpoint)
    clamped = 0
    for b, rows in enumerate([range(4), range(2)]):
        module.sample(len(rows), torch.Generator().manual_seed(batch_seed(0, b)),
                      conditions=torch.full((len(rows), 1), 7.5), steps=3, clamp=True)
        clamped += module.clamped_pixels
    with FieldSet(path) as fs:
        clamp = fs.meta.provenance["clamp"]
        assert clamp["applied"] and clamp["clamped_fraction"] == pytest.approx(clamped / (6 * 16 * 16))
        assert clamp["clamped_fraction"] > 0


def test_samples_from_conditions_of_a_file_and_condition_errors(trained, tmp_path):
    _, data, result = trained
    c = sample_to_file(result.checkpoint, tmp_path / "c.h5", cond_from=data, steps=2)
    with FieldSet(c) as fs, FieldSet(data) as real:
        np.testing.assert_array_equal(fs.params["x0"], real.params["x0"])
    with pytest.raises(ConfigError, match="missing"):
        sample_to_file(result.checkpoint, tmp_path / "d.h5", n=2)
    with pytest.raises(ConfigError, match="unknown"):
        sample_to_file(result.checkpoint, tmp_path / "d.h5", n=2, cond={"x0": 1, "z": 2})


def test_checkpoint_round_trip_reproduces_samples_bitwise(trained, tmp_path):
    tmp, data, _ = trained
    cfg = load_train_config(config(tmp, data))
    module, *_ = build_module(cfg)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    batch = {"image": torch.randn(8, 1, 16, 16), "params": torch.rand(8, 1) * 16}
    trainer.fit(module, torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(8)],
                                                    batch_size=4))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    cond = torch.full((3, 1), 4.0)
    before = module.sample(3, torch.Generator().manual_seed(9), conditions=cond, sampler="ddpm", steps=4, guidance=2.0)
    after = load_diffusion(tmp_path / "m.ckpt").sample(3, torch.Generator().manual_seed(9), conditions=cond,
                                                  sampler="ddpm", steps=4, guidance=2.0)
    assert torch.equal(before, after)


def test_config_errors_name_the_key(trained, tmp_path):
    tmp, data, _ = trained
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        load_train_config(config(tmp, data), {"optim.lrr": 1e-3})
    with pytest.raises(ConfigError, match="MaxNorm"):
        build_module(load_train_config(config(tmp, data), {"data.transform": [{"name": "MaxNorm"}]}))
    with pytest.raises(ConfigError, match="no columns"):
        build_module(load_train_config(config(tmp, data), {"data.conditions": ["redshift"]}))


def test_cli_train_and_sample(trained, tmp_path, capsys, caplog):
    _, data, _ = trained
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, data)))
    lightning_log = logging.getLogger("lightning.pytorch")  # does not propagate to caplog's root handler
    lightning_log.addHandler(caplog.handler)
    try:
        main(["train", str(path), "--set", "trainer.max_steps=2", "--set", "data.augment=false"])  # returns: status 0
    finally:
        lightning_log.removeHandler(caplog.handler)
    assert "trained 2 steps" in capsys.readouterr().out
    # final.ckpt is a full checkpoint on purpose: no Lightning notice that weights_only "defaulted" to False
    assert not [r for r in caplog.records if "weights_only" in r.getMessage()]
    ckpt = tmp_path / "run" / "final.ckpt"
    main(["sample", str(ckpt), "--n", "3", "--steps", "2", "--cond", "x0=3", "--out", str(tmp_path / "g.h5")])
    assert len(FieldSet(tmp_path / "g.h5")) == 3
    with pytest.raises(SystemExit) as exit_:
        main(["sample", str(ckpt), "--cond", "x0=abc", "--out", str(tmp_path / "h.h5")])
    assert exit_.value.code == 2 and "expected a number" in capsys.readouterr().err


def test_unknown_kind_is_a_one_line_error():
    kinds = "denoiser, diffusion, pixgan, posterior, regressor, segmentation, vae, vaegan, wgan"
    with pytest.raises(UnknownNameError, match=f"unknown kind 'gpt'; available: {kinds}"):
        load_train_config({"kind": "gpt", "data": {"path": "x.h5"}})
