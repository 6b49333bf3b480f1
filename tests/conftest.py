"""Shared fixtures: small FieldSets written with the real HDF5 writer."""

import numpy as np
import pytest
import torch

from astrogen.data import FieldMeta, FieldSetWriter

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Each available torch device: CPU here, CPU and CUDA on a GPU machine."""
    return torch.device(request.param)


@pytest.fixture
def make_fieldset(tmp_path):
    """Write a FieldSet of ``n`` random [C, H, W] images (with params and masks) and return its path."""

    def make(n=10, shape=(2, 8, 8), masks=True, periodic=False, name="set.h5", seed=0):
        rng = np.random.default_rng(seed)
        images = rng.normal(size=(n, *shape)).astype(np.float32)
        params = {"redshift": rng.uniform(0, 3, n), "amplitude": rng.uniform(0, 1, n)}
        mask_values = rng.uniform(size=(n, 1, *shape[1:])).astype(np.float32) if masks else None
        meta = FieldMeta(channels=[f"c{i}" for i in range(shape[0])], units="uK", pixel_size=0.5,
                         pixel_unit="arcmin", box_size=[4.0, 4.0], periodic=periodic)
        path = tmp_path / name
        with FieldSetWriter(path, shape, meta, param_names=list(params), param_units={"redshift": ""},
                            mask_shape=None if mask_values is None else mask_values.shape[1:]) as w:
            for start in range(0, n, 4):
                stop = start + 4
                w.append(images[start:stop], {k: v[start:stop] for k, v in params.items()},
                         None if mask_values is None else mask_values[start:stop])
        return path, images, params, mask_values

    return make


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli(*args)`` returns (exit status, stdout, stderr)."""
    from astrogen.cli import main

    def run(*args):
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


# One tiny configuration per model kind, all trained on the same small gamma-ray set (6 channels of 16 x 16,
# point-source masks, the simulator's parameters as targets): `tiny_model` trains each once per test session.
TINY_MODELS = {
    "diffusion": {"model": {"channels": [8, 8], "attention_levels": 0, "layers_per_block": 1}},
    "wgan": {"model": {"base": 4, "latent": 8}, "optim": {"n_critic": 1}},
    "pixgan": {"data": {"inputs": ["counts"]}, "model": {"base": 4, "latent": 8}, "optim": {"n_critic": 1}},
    "vaegan": {"model": {"base": 4, "latent": 8}, "optim": {"n_critic": 1}},
    "vae": {"model": {"base": 4, "latent": 4}},
    "regressor": {"data": {"targets": ["A_dm", "n_ps_disk"]}, "model": {"channels": [4, 4], "hidden": [8]}},
    "segmentation": {"model": {"channels": [4, 4, 4, 4], "bridge": 8}},
    "denoiser": {"data": {"transform": [{"name": "MaxNorm"}]}, "model": {"channels": [4, 4]}},
    "posterior": {"data": {"targets": ["A_dm", "frac_dm"]},
                  "model": {"channels": [4, 8], "hidden": [16], "embedding": 8, "flow_hidden": [16]}},
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A small `galactic_center` FieldSet (48 maps of 6 x 16 x 16: counts and its components; masks), written once."""
    from astrogen.sims import simulate_to_file

    return simulate_to_file("galactic_center", 48, tmp_path_factory.mktemp("tiny-data") / "gc.h5", seed=2,
                            config={"size": 16, "supersample": 2, "a_dm": [0.5, 1.5], "return_components": True})


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_data):
    """``tiny_model(kind)``: the final checkpoint of a tiny model of ``kind`` (`TINY_MODELS`) trained for two steps
    on `tiny_data` with the real `astrogen.train.train`, built on first use and shared by the whole session, for
    tests that need *a* trained model of a kind rather than a particular training."""
    from astrogen.train import train

    built = {}

    def get(kind: str):
        if kind not in built:
            extra = TINY_MODELS[kind]
            config = {"kind": kind, **extra,
                      "data": {"path": str(tiny_data), "batch_size": 8, **extra.get("data", {})},
                      "trainer": {"out": str(tmp_path_factory.mktemp(kind)), "max_steps": 2, "val_every_steps": 2,
                                  "accelerator": "cpu", "devices": 1, "seed": 0}}
            built[kind] = train(config, progress=False).checkpoint
        return built[kind]

    return get
