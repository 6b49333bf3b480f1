import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from astrogen import distributed
from astrogen.data import FieldSet
from astrogen.distributed import EpochOrder, GlobalBatchSampler, draw_rows, item_keys
from astrogen.errors import ConfigError
from astrogen.generate import sample_to_file
from astrogen.sims import simulate_to_file
from astrogen.train import train

pytestmark = pytest.mark.slow  # trains, samples or builds the site: `make test`, not `make test-fast`

ASTROGEN = Path(sys.executable).with_name("astrogen")


def as_rank(monkeypatch, size, rank):
    monkeypatch.setattr(distributed, "world", lambda: (size, rank))


def batches(sampler, epoch):
    sampler.sampler.set_epoch(epoch)
    return list(sampler)


def test_ranks_split_each_global_batch_and_share_item_keys(monkeypatch):
    sampler = GlobalBatchSampler(EpochOrder(range(10, 30), shuffle=True, seed=3), batch_size=8, drop_last=True)
    single = batches(sampler, 1)
    per_rank = []
    for rank in range(4):
        as_rank(monkeypatch, 4, rank)
        per_rank.append(batches(sampler, 1))
    assert len(single) == 2 and all(len(b) == 2 for b in per_rank)
    for step, whole in enumerate(single):  # rank r holds rows r, r + 4 of the global batch, with the same keys
        assert [per_rank[r][step][j] for j in range(2) for r in range(4)] == whole
    assert sorted(i for b in single for i, _ in b) != list(range(10, 26))  # shuffled ...
    assert {i for b in single for i, _ in b} <= set(range(10, 30))  # ... within the split
    assert batches(sampler, 2) != single  # a new order each epoch
    as_rank(monkeypatch, 3, 0)
    with pytest.raises(ConfigError, match="not divisible by the 3"):
        batches(sampler, 1)


def test_item_keys_are_deterministic_and_distinct():
    keys = item_keys(0, 0, np.arange(100_000))
    assert len(np.unique(keys)) == 100_000 and keys.min() >= 0
    np.testing.assert_array_equal(keys, item_keys(0, 0, np.arange(100_000)))
    assert not np.intersect1d(keys, item_keys(0, 1, np.arange(100_000))).size
    assert not np.intersect1d(keys, item_keys(1, 0, np.arange(100_000))).size


def test_draw_rows_picks_this_ranks_rows_of_the_global_draw(monkeypatch):
    def draw(rank):
        as_rank(monkeypatch, 2, rank)
        return draw_rows(torch.randn, 4, (3,), torch.Generator().manual_seed(5))

    whole = torch.randn(8, 3, generator=torch.Generator().manual_seed(5))
    for rank in range(2):
        torch.testing.assert_close(draw(rank), whole[rank::2], rtol=0, atol=0)


def losses(run: Path) -> dict[int, float]:
    with open(run / "logs" / "metrics.csv") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


def test_ddp_on_two_processes_matches_one_process_with_the_same_global_batch(tmp_path):
    """Two gloo processes (batch 4 each) give the loss curve and weights of one process with batch 8."""
    data = simulate_to_file("blobs", 48, tmp_path / "blobs.h5", seed=0, config={"n_blobs": 1, "size": 16, "fwhm": 4})
    config = {
        "data": {"path": str(data), "conditions": ["x0"], "batch_size": 8, "val_fraction": 0.25, "augment": True},
        "model": {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "trainer": {"out": str(tmp_path / "one"), "max_steps": 6, "val_every_steps": 3, "log_every_steps": 1,
                    "accelerator": "cpu", "seed": 7},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    one = train(tmp_path / "cfg.yaml", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ASTROGEN), "train", str(tmp_path / "cfg.yaml"), "--devices", "2",
                           "--strategy", "ddp", "--set", f"trainer.out={tmp_path / 'two'}"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 6 steps") == 1  # printed by rank 0 only
    curve_one, curve_two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(curve_one) == sorted(curve_two) == list(range(6))  # 4 batches per epoch: epoch 2 reshuffles
    np.testing.assert_allclose([curve_two[s] for s in range(6)], [curve_one[s] for s in range(6)], rtol=1e-4)
    a = torch.load(one.checkpoint, weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "two" / "final.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    # Attention key biases shift every logit of a query equally: softmax ignores them, so their gradient is 0 up
    # to round-off, which differs with the summation order and which Adam scales up to +-lr steps. Skip them.
    for key in (k for k in a if not k.endswith("to_k.bias")):
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)


def test_sampling_on_two_processes_writes_the_samples_of_one(tmp_path):
    data = simulate_to_file("blobs", 16, tmp_path / "blobs.h5", seed=0, config={"n_blobs": 1, "size": 16, "fwhm": 4})
    run = train({"data": {"path": str(data), "batch_size": 4, "val_fraction": 0.25},
                 "model": {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1},
                 "trainer": {"out": str(tmp_path / "run"), "max_steps": 1, "accelerator": "cpu"}}, progress=False)
    one = sample_to_file(run.checkpoint, tmp_path / "one.h5", n=7, steps=2, seed=3, batch_size=2, device="cpu")
    done = subprocess.run([sys.executable, str(ASTROGEN), "sample", str(run.checkpoint), "-o", str(tmp_path / "two.h5"),
                           "-n", "7", "--steps", "2", "--seed", "3", "--batch-size", "2", "--device", "cpu",
                           "--devices", "2"], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote samples") == 1
    with FieldSet(one) as a, FieldSet(tmp_path / "two.h5") as b:  # same seeds; threads change the round-off
        np.testing.assert_allclose(b[:].images, a[:].images, rtol=1e-4, atol=1e-4)
        assert b.meta.provenance["generated_from"] == a.meta.provenance["generated_from"] == str(run.checkpoint)
        assert b.meta.provenance["sampler"] == "dpm" and b.meta.seed == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs.h5", "one.h5", "run", "two.h5"]  # parts removed


@pytest.mark.parametrize("option", ["channels_last", "compile"])
def test_speed_options_keep_the_maths_and_the_checkpoints(tmp_path, option):
    """channels_last and compile change how the steps run, not what they compute."""
    from astrogen.generate import load_diffusion

    data = simulate_to_file("blobs", 16, tmp_path / "blobs.h5", seed=0, config={"n_blobs": 1, "size": 16, "fwhm": 4})
    if option == "compile" and not shutil.which("cc") and not shutil.which("gcc"):
        pytest.skip("torch.compile on CPU needs a C compiler")

    def run(name, **options):
        return train({"data": {"path": str(data), "batch_size": 4, "val_fraction": 0.25},
                      "model": {"channels": [16, 16], "attention_levels": 1, "layers_per_block": 1},
                      "trainer": {"out": str(tmp_path / name), "max_steps": 2, "accelerator": "cpu", **options}},
                     progress=False)

    plain, fast = run("plain"), run("fast", **{option: True})
    assert fast.metrics["train/loss"] == pytest.approx(plain.metrics["train/loss"], rel=1e-4)
    a = load_diffusion(plain.checkpoint).sample(2, torch.Generator().manual_seed(0), steps=2)
    b = load_diffusion(fast.checkpoint).sample(2, torch.Generator().manual_seed(0), steps=2)
    torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
