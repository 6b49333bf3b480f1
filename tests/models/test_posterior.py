"""Neural posterior estimation: the flow recovers an analytic posterior; train + evaluate-model end to end."""

import json

import numpy as np
import pytest
import torch

from astrogen.data import FieldSet
from astrogen.models.posterior import PosteriorModule

# theta ~ N(0, I_2), x = A theta + sigma eps (eps ~ N(0, I_3)): the posterior is Gaussian with covariance
# C = (I + A^T A / sigma^2)^-1 and mean C A^T x / sigma^2.
A = np.array([[1.0, 0.5], [-0.3, 1.2], [0.8, -0.7]])
SIGMA = 0.5


def _draw(n, generator):
    theta = torch.randn(n, 2, generator=generator)
    x = theta @ torch.tensor(A.T, dtype=torch.float32) + SIGMA * torch.randn(n, 3, generator=generator)
    return theta, x[:, :, None, None]  # vectors as [N, 3, 1, 1] "images"


@pytest.mark.slow
def test_flow_recovers_the_gaussian_linear_posterior():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    # The module that `astrogen train` builds, with a fully connected embedding (no conv blocks) on 1 x 1 images.
    module = PosteriorModule({"channels": [], "hidden": [64], "embedding": 16, "transforms": 2,
                              "flow_hidden": [32, 32]}, [3, 1, 1], ["a", "b"], ["a", "b"], [0.0, 0.0], [1.0, 1.0])
    steps = 600
    optimiser = torch.optim.Adam(module.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)  # a constant lr leaves ~3x the KL
    for _ in range(steps):  # fresh simulations every step: no overfitting
        theta, x = _draw(256, generator)
        optimiser.zero_grad()
        module.loss({"image": x, "params": theta}).backward()
        optimiser.step()
        schedule.step()
    cov = np.linalg.inv(np.eye(2) + A.T @ A / SIGMA**2)
    sd = np.sqrt(np.diag(cov))  # 0.36, 0.33; correlation 0.19
    theta, x = _draw(2000, torch.Generator().manual_seed(1))
    mean = x[:, :, 0, 0].double().numpy() @ A @ cov / SIGMA**2  # C symmetric: (C A^T x)^T = x^T A C
    # E_x KL(p || q) = E[log p(theta | x) - log q(theta | x)] over fresh pairs: what NPE minimises.
    delta = theta.double().numpy() - mean
    log_p = -np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(cov)) \
        - 0.5 * np.einsum("ni,ij,nj->n", delta, np.linalg.inv(cov), delta)
    kl = log_p - module.log_prob(theta.numpy(), x)
    samples = module.sample(x[:200], n_samples=2000, seed=2)
    assert samples.shape == (200, 2000, 2)
    mean_error = (samples.mean(1) - mean[:200]) / sd
    log_sd_ratio = np.log(samples.std(1) / sd)
    corr_error = np.array([np.corrcoef(s.T)[0, 1] for s in samples]) - cov[0, 1] / sd.prod()
    # Measured with two training seeds: KL 0.009 +- 0.004 nats; rms over 200 x of the mean's error 0.06-0.07 sd
    # (0.022 of it sampling error), of log(sd / sd_true) 0.04, of the correlation 0.03. Tolerances: about twice.
    assert kl.mean() < 0.03
    assert np.sqrt(np.mean(mean_error**2)) < 0.12
    assert np.sqrt(np.mean(log_sd_ratio**2)) < 0.08
    assert np.sqrt(np.mean(corr_error**2)) < 0.06
    np.testing.assert_array_equal(module.sample(x[:3], 10, seed=2), module.sample(x[:3], 10, seed=2))


@pytest.fixture(scope="module")
def gc_sets(tmp_path_factory):
    from astrogen.sims import simulate_to_file

    root = tmp_path_factory.mktemp("gc")
    config = {"size": 16, "supersample": 2, "a_dm": [0.5, 1.5]}
    train = simulate_to_file("galactic_center", 96, root / "train.h5", seed=1, config=config)
    test = simulate_to_file("galactic_center", 40, root / "test.h5", seed=2, config=config)
    other = simulate_to_file("galactic_center", 40, root / "other.h5", seed=2, config={**config, "gas_seed": 3})
    return train, test, other


@pytest.mark.slow
def test_posterior_trains_and_evaluates_through_the_cli(gc_sets, tmp_path, cli):
    from astrogen.tasks import export_model, load_model

    train, test, other = gc_sets
    config = tmp_path / "post.yaml"
    config.write_text(f"kind: posterior\ndata: {{path: {train}, batch_size: 16, "
                      "targets: [A_dm, frac_dm, frac_ps_disk+frac_ps_gc]}\n"
                      "model: {channels: [4, 8], hidden: [16], embedding: 8, flow_hidden: [16]}\n"
                      f"trainer: {{out: {tmp_path / 'run'}, max_steps: 6, val_every_steps: 3, accelerator: cpu, "
                      "devices: 1}\n")
    code, out, err = cli("train", str(config))
    assert code == 0, err
    ckpt = tmp_path / "run" / "best.ckpt"
    code, out, err = cli("evaluate-model", str(ckpt), str(test), "--out", str(tmp_path / "eval"), "--samples", "50")
    assert code == 0, err
    assert "coverage68_frac_dm" in out and "training set's simulator settings" in out
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    metrics, posterior = report["metrics"], report["posterior"]
    for name in ("A_dm", "frac_dm", "frac_ps_disk+frac_ps_gc"):
        assert 0 <= metrics[f"coverage68_{name}"] <= metrics[f"coverage95_{name}"] <= 1
        assert metrics[f"width68_{name}"] < metrics[f"width95_{name}"]
        assert len(posterior["coverage"][name]) == len(posterior["levels"]) == len(posterior["tarp_ecp"])
    assert np.array(posterior["per_image"]["mean"]).shape == (40, 3)
    with FieldSet(test) as fs:
        batch = fs[:]
    np.testing.assert_allclose(posterior["per_image"]["truth"], load_model(ckpt).targets_of(batch.params))
    html = (tmp_path / "eval" / "report.html").read_text()
    assert html.count("data:image/png") == 2 and "Coverage" in html
    # A test set from another gas clump field: the report names the difference.
    code, out, err = cli("evaluate-model", str(ckpt), str(other), "--out", str(tmp_path / "other"), "--samples", "20")
    assert code == 0 and "Mis-specification check" in out and "gas_seed: 3 here, 0 in training" in out
    # A model folder (safetensors) samples the same as the checkpoint.
    folder = export_model(ckpt, tmp_path / "folder")
    np.testing.assert_array_equal(load_model(folder).sample(batch.images[:3], 5),
                                  load_model(ckpt).sample(batch.images[:3], 5))


def test_preset_validates():
    from pathlib import Path

    from astrogen.train import load_train_config

    cfg = load_train_config(Path(__file__).parents[2] / "configs" / "train" / "gc-posterior.yaml")
    assert cfg.kind == "posterior" and cfg.data.targets[-1] == "frac_ps_disk+frac_ps_gc"


def test_the_report_says_plainly_when_coverage_fails():
    from astrogen.report.model_report import coverage_sentences
    from astrogen.stats.calibration import calibrate

    rng = np.random.default_rng(0)
    theta = rng.normal(size=(1000, 1))
    x = theta + 0.5 * rng.normal(size=(1000, 1))
    mean, sd = x / 1.25, 0.5 / np.sqrt(1.25)  # the exact posterior N(x / (1 + s^2), s^2 / (1 + s^2))
    exact = mean[:, None] + sd * rng.normal(size=(1000, 400, 1))
    narrow = mean[:, None] + 0.5 * sd * rng.normal(size=(1000, 400, 1))  # covers 38.1% at 68%, 67.3% at 95%
    lines = coverage_sentences(calibrate(exact, theta, ["frac_dm"]))
    assert lines[0].startswith("Coverage holds") and lines[1].startswith("Joint calibration (TARP) holds")
    lines = coverage_sentences(calibrate(narrow, theta, ["frac_dm"]))
    assert lines[0].startswith("Coverage FAILS for frac_dm: the 68% credible intervals contain the truth in 3")
    assert "(nominal 68%, tolerance +-4.4 points): the posterior is overconfident" in lines[0]
    assert lines[1].startswith("Coverage FAILS for frac_dm: the 95% credible intervals contain the truth in 6")
    assert lines[2].startswith("Joint calibration (TARP) FAILS")
