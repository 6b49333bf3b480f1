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
