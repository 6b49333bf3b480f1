"""Every user mistake gives exactly one ``error:`` line on stderr and exit status 2, and writes nothing."""

import numpy as np
import pytest
import yaml
from test_tasks import Payload, tiny_checkpoint

from astrogen.sims import simulate_to_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The inputs the bad commands refer to: sets, checkpoints, configs, a finished run."""
    d = tmp_path_factory.mktemp("bad")
    simulate_to_file("blobs", 8, d / "real.h5", seed=0, config={"size": 16, "n_blobs": 1})
    simulate_to_file("blobs", 8, d / "small.h5", seed=1, config={"size": 8, "n_blobs": 1})
    simulate_to_file("blobs", 1, d / "one.h5", seed=2, config={"size": 16, "n_blobs": 1})
    tiny_checkpoint(d / "model.ckpt")
    tiny_checkpoint(d / "evil.ckpt", payload=Payload(d / "pwned"))
    (d / "notes.txt").write_text("not a checkpoint\n")
    np.save(d / "maps.npy", np.zeros((4, 8, 8), dtype=np.float32))
    config = {"data": {"path": str(d / "real.h5")}, "model": {"channels": [16, 16], "attention_levels": 1},
              "trainer": {"out": str(d / "run"), "max_steps": 1}}
    (d / "train.yaml").write_text(yaml.safe_dump(config))
    (d / "typo.yaml").write_text(yaml.safe_dump({**config, "optimm": {}}))
    (d / "run").mkdir()
    (d / "run" / "final.ckpt").write_bytes((d / "model.ckpt").read_bytes())
    (d / "exists.h5").write_bytes((d / "real.h5").read_bytes())
    return d


# Each row: arguments, with {d} for the fixture folder.
BAD = [
    "simulate nosuch --out {d}/x.h5",
    "simulate blobs --n 0 --out {d}/x.h5",
    "simulate blobs --n -5 --out {d}/x.h5",
    "simulate blobs --n 1e12 --out {d}/x.h5",
    "simulate blobs --seed -1 --out {d}/x.h5",
    "simulate blobs --n 2 --set n_blobs=abc --out {d}/x.h5",
    "simulate blobs --n 2 --set nokey=1 --out {d}/x.h5",
    "simulate blobs --n 2 --set size",
    "simulate blobs --n 2 --out {d}/missing/x.h5",
    "simulate blobs --n 2 --out {d}/exists.h5",
    "simulate blobs --n 2",
    "simulate microwave_sky --n 1 --set nside=100 --out {d}/x.h5",
    "simulate blobs --n 2 --compression zip --out {d}/x.h5",
    "simulate blobs --n 2 --shard 3/2 --out {d}/x.h5",
    "simulate blobs --n 2 --shard abc --out {d}/x.h5",
    "simulate {d}/notes.txt --out {d}/x.h5",
    "info {d}/missing.h5",
    "info {d}/notes.txt",
    "import {d}/missing.npy --out {d}/x.h5",
    "import {d}/maps.npy --pixel-size -1 --out {d}/x.h5",
    "import {d}/maps.npy --layout XYZ --out {d}/x.h5",
    "import {d}/maps.npy --out {d}/exists.h5",
    "merge {d}/real.h5 {d}/small.h5 --out {d}/x.h5",
    "train {d}/missing.yaml",
    "train {d}/typo.yaml",
    "train {d}/train.yaml --set optim.lr=-1",
    "train {d}/train.yaml --resume {d}/notes.txt",
    "train {d}/train.yaml --resume {d}/missing.ckpt",
    "train {d}/train.yaml --resume {d}/evil.ckpt",
    "train {d}/train.yaml",
    "sample {d}/missing.ckpt --out {d}/x.h5",
    "sample {d}/notes.txt --out {d}/x.h5",
    "sample {d}/evil.ckpt --out {d}/x.h5",
    "sample pretrained:nope --out {d}/x.h5",
    "sample pretrained:../run --out {d}/x.h5",
    "sample {d}/model.ckpt --n 0 --out {d}/x.h5",
    "sample {d}/model.ckpt --steps 0 --out {d}/x.h5",
    "sample {d}/model.ckpt --n 2 --steps 5000 --out {d}/x.h5",
    "sample {d}/model.ckpt --n 2 --sampler foo --out {d}/x.h5",
    "sample {d}/model.ckpt --n 2 --guidance 3 --out {d}/x.h5",
    "sample {d}/model.ckpt --n 2 --cond redshift=1 --out {d}/x.h5",
    "sample {d}/model.ckpt --n 2 --out {d}/missing/x.h5",
    "sample {d}/model.ckpt --n 2 --out {d}/exists.h5",
    "evaluate {d}/missing.h5 {d}/real.h5 --out {d}/e",
    "evaluate {d}/real.h5 {d}/small.h5 --out {d}/e",
    "evaluate {d}/real.h5 {d}/one.h5 --out {d}/e",
    "evaluate {d}/real.h5 {d}/exists.h5 --stats nope --out {d}/e",
    "evaluate-model {d}/model.ckpt {d}/real.h5 --out {d}/e",
    "export {d}/missing.ckpt --out {d}/x",
    "export {d}/evil.ckpt --out {d}/x",
    "convert-checkpoint {d}/evil.ckpt --out {d}/x.ckpt",
    "demo --minutes 0",
    "nosuchcommand",
]


@pytest.mark.parametrize("command", BAD)
def test_a_mistake_gives_one_error_line_and_status_2(command, files, cli):
    before = sorted(p.name for p in files.rglob("*"))
    code, _, err = cli(*command.format(d=files).split())
    assert code == 2, (command, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), (command, err)
    assert sorted(p.name for p in files.rglob("*")) == before  # nothing written, nothing left behind
    assert not (files / "pwned").exists()


def test_the_table_covers_at_least_forty_mistakes():
    assert len(BAD) >= 40
