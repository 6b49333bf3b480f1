"""One experiment shape for every kind: one `DataConfig`, one `OptimConfig`, ``init_from`` everywhere."""

import lightning as L
import pytest
import torch

from astrogen.errors import ConfigError
from astrogen.models.gan import GANModule
from astrogen.models.optim import OptimConfig
from astrogen.sims import simulate_to_file
from astrogen.train import EXPERIMENTS, DataConfig, get_task, load_train_config, train

INFERENCE = ("regressor", "segmentation", "denoiser", "posterior")
NEEDS = {"regressor": {"targets": ["x0"]}, "posterior": {"targets": ["x0"]}}


def minimal(kind: str) -> dict:
    return {"kind": kind, "data": {"path": "x.h5", **NEEDS.get(kind, {})}}


@pytest.mark.parametrize("kind", sorted(EXPERIMENTS))
def test_every_kind_has_the_same_data_and_optimiser_sections(kind):
    cfg = load_train_config(minimal(kind))
    assert type(cfg.data) is DataConfig and isinstance(cfg.optim, OptimConfig)
    shared = OptimConfig.model_fields
    assert {k: getattr(cfg.optim, k) for k in shared} == {"lr": 1e-4, "weight_decay": 0.0, "grad_clip": 1.0}
    assert cfg.init_from is None and cfg.data.val_fraction == 0.1
    transform, augment = ([{"name": "Log1p"}, {"name": "MinMax"}], False) if kind in INFERENCE else \
        ([{"name": "MinMax"}], True)
    assert (cfg.data.transform, cfg.data.augment) == (transform, augment)
    given = load_train_config({**minimal(kind), "data": {**minimal(kind)["data"], "transform": [{"name": "Log1p"}],
                                                        "augment": "flips", "val_fraction": 0}})
    assert (given.data.transform, given.data.augment, given.data.val_fraction) == ([{"name": "Log1p"}], "flips", 0)


def test_moved_and_misplaced_keys_are_one_line_errors():
    for key, value in (("targets", ["x0"]), ("inputs", ["kappa"])):
        with pytest.raises(ConfigError, match=rf"^train config: {key} moved to data\.{key}$"):
            load_train_config({**minimal("regressor"), key: value})
    with pytest.raises(ConfigError, match=r"targets moved to data\.targets"):
        load_train_config(minimal("regressor"), {"targets": ["x0"]})
    with pytest.raises(ConfigError, match=r"data\.targets: a regressor experiment needs at least one"):
        load_train_config({"kind": "regressor", "data": {"path": "x.h5"}})
    with pytest.raises(ConfigError, match=r"data\.targets: a diffusion experiment takes no targets"):
        load_train_config({"data": {"path": "x.h5", "targets": ["x0"]}})
    with pytest.raises(ConfigError, match=r"data\.conditions: a vae experiment takes no conditions"):
        load_train_config({"kind": "vae", "data": {"path": "x.h5", "conditions": ["x0"]}})


def test_gan_learning_rates():
    cfg = load_train_config({**minimal("wgan"), "optim": {"lr_generator": 3e-4}})  # the key before OptimConfig
    assert cfg.optim.lr == 3e-4
    generator, critic = GANModule("wgan", {"base": 4, "latent": 8}, cfg.optim.model_dump(), [1, 16, 16],
                                  ["intensity"]).configure_optimizers()
    assert generator.param_groups[0]["lr"] == critic.param_groups[0]["lr"] == 3e-4  # lr_critic None: lr
    _, critic = GANModule("wgan", {"base": 4, "latent": 8}, {"lr_critic": 5e-5}, [1, 16, 16],
                          ["intensity"]).configure_optimizers()
    assert critic.param_groups[0]["lr"] == 5e-5


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return simulate_to_file("blobs", 16, tmp_path_factory.mktemp("cfg") / "b.h5", seed=0,
                            config={"n_blobs": 1, "size": 16, "fwhm": 3})


class FirstState(L.Callback):
    """Keeps the module's state when fitting starts and the largest gradient norm before any optimiser step."""

    def __init__(self):
        self.state, self.largest_norm = None, 0.0

    def on_train_start(self, trainer, module):
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def on_before_optimizer_step(self, trainer, module, optimizer):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.largest_norm = max(self.largest_norm, torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])).item())


def run(kind, blobs, out, **extra):
    model = {"wgan": {"base": 4, "latent": 8}, "vae": {"base": 4, "latent": 4},
             "regressor": {"channels": [4], "hidden": [4]}}[kind]
    cfg = {"kind": kind, "data": {"path": str(blobs), "batch_size": 4, "val_fraction": 0.25,
                                  **({"targets": ["x0"]} if kind == "regressor" else {})}, "model": model,
           "trainer": {"out": str(out), "max_steps": 2, "val_every_steps": 2, "accelerator": "cpu", "devices": 1},
           **extra}
    return load_train_config(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wgan", "vae", "regressor"])
def test_init_from_starts_any_kind_from_another_checkpoint(blobs, tmp_path, kind):
    source, *_ = get_task(kind).build(run(kind, blobs, tmp_path / "a"))
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "source.ckpt")
    first = FirstState()
    train(run(kind, blobs, tmp_path / "b", init_from=str(tmp_path / "source.ckpt")), progress=False, callbacks=[first])
    for key, value in source.state_dict().items():
        torch.testing.assert_close(first.state[key], value, msg=key)


@pytest.mark.slow
def test_gans_clip_their_gradients(blobs, tmp_path):
    clipped = FirstState()
    train(run("wgan", blobs, tmp_path / "clip", optim={"grad_clip": 1e-3}), progress=False, callbacks=[clipped])
    assert 0 < clipped.largest_norm <= 1e-3 * 1.001
    free = FirstState()
    train(run("wgan", blobs, tmp_path / "free", optim={"grad_clip": None}), progress=False, callbacks=[free])
    assert free.largest_norm > 1e-2
