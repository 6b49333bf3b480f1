"""Every shipped model loads, samples in its training set's units, and matches its simulator's P(k) loosely,
so a broken, swapped or untrained weight file fails."""

import numpy as np
import pytest
import torch

import astrogen.pretrained as shipped
from astrogen.data import FieldMeta
from astrogen.models.diffusion import DiffusionModule
from astrogen.sims import get_simulator, simulate
from astrogen.stats.power import power_spectrum
from astrogen.tasks import model_class

N = 48


def draw(module, n: int) -> np.ndarray:
    """``n`` fixed-seed samples of a generative model, physical units (diffusion: DPM-Solver++, 20 steps)."""
    generator = torch.Generator().manual_seed(0)
    if isinstance(module, DiffusionModule):
        return module.generate(n, "dpm", 20, generator=generator).numpy()
    return module.generate(n, generator=generator).numpy()


def spectrum_ratio(module, meta: FieldMeta, real: np.ndarray) -> np.ndarray:
    images = draw(module, N)
    assert images.shape == real.shape and np.isfinite(images).all()
    gen = power_spectrum(images, pixel_size=meta.pixel_size).power.mean(0)
    return gen / power_spectrum(real, pixel_size=meta.pixel_size).power.mean(0)


@pytest.fixture(scope="module", params=shipped.available())
def model(request):
    name = request.param
    config = shipped.config(name)
    meta = FieldMeta.from_attrs(config["hyper_parameters"]["data_meta"])
    # N maps spread over one simulator block (one box): neighbouring slabs of a box are nearly the same map
    block = get_simulator(meta.simulator, meta.config).block_size
    real = simulate(meta.simulator, max(N, block), seed=meta.seed + 1, config=meta.config).images
    real = real[np.linspace(0, len(real) - 1, N).astype(int)]
    return name, config, meta, real


def test_the_matter_models_are_shipped():
    assert {"matter-demo", "matter-z0-64"} <= set(shipped.available())


@pytest.mark.parametrize("name", shipped.available())
def test_every_model_has_its_card(name):
    card = shipped.card(name)
    for needed in (f"astrogen train configs/{name}.yaml", "Steps", "Wall time", "Hardware", "Scorecard",
                   "bench_pretrained.py"):
        assert needed in card, needed


def test_samples_follow_the_simulators_spectrum(model):
    name, _, meta, real = model
    module = shipped.load(name)
    assert module.hparams.data_meta["units"] == meta.units and list(module.hparams.image_shape) == list(real.shape[1:])
    ratio = spectrum_ratio(module, meta, real)
    # Loose: 48 maps per set. The shipped model is within ~7% on 1,000 maps (its card).
    assert np.all((ratio > 0.75) & (ratio < 1.33)), (name, ratio)


def test_the_band_catches_an_untrained_network(model):
    name, config, meta, real = model
    torch.manual_seed(0)
    untrained = model_class(config["kind"])(**config["hyper_parameters"]).eval()
    ratio = spectrum_ratio(untrained, meta, real)
    assert not np.all((ratio > 0.75) & (ratio < 1.33)), (name, ratio)
