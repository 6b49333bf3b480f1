import numpy as np
import pytest

from astrogen.data import FieldSet
from astrogen.errors import ConfigError, DataError
from astrogen.sims import Shard, get_simulator, iter_blocks, simulate_to_file
from astrogen.sims.blobs import Blobs

TINY_BLOBS = {"n_blobs": 10, "size": 8}
SMALL_GC = {"size": 16, "supersample": 2}


def read(path):
    with FieldSet(path) as fs:
        return fs[:], fs.meta


def assert_same(a, b):
    np.testing.assert_array_equal(a.images, b.images)
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert (a.masks is None) == (b.masks is None)
    if a.masks is not None:
        np.testing.assert_array_equal(a.masks, b.masks)


def concatenate(batches):
    return type(batches[0])(
        np.concatenate([b.images for b in batches]),
        {k: np.concatenate([b.params[k] for b in batches]) for k in batches[0].params},
        None if batches[0].masks is None else np.concatenate([b.masks for b in batches]),
    )


@pytest.mark.parametrize(("n", "block_size"), [(1, 1), (23, 4), (128, 128), (1000, 7), (100_000, 128)])
def test_shards_tile_the_set_in_whole_blocks(n, block_size):
    n_blocks = -(-n // block_size)
    for count in sorted({1, 2, 3, n_blocks} & set(range(1, n_blocks + 1))):
        shards = [Shard.of(i, count, n, block_size) for i in range(count)]
        assert [s.start for s in shards] == [0] + [s.stop for s in shards[:-1]] and shards[-1].stop == n
        assert all(s.start == s.blocks.start * block_size for s in shards)
        lengths = [len(s.blocks) for s in shards]
        assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1  # balanced to one block


@pytest.mark.parametrize("block_size", [3, 4, 7])
def test_sharded_blobs_equal_the_unsharded_file(tmp_path, monkeypatch, block_size):
    monkeypatch.setattr(Blobs, "block_size", block_size)
    n = 23  # an uneven last block for every block size here
    whole, meta = read(simulate_to_file("blobs", n, tmp_path / "all.h5", seed=5, config=TINY_BLOBS))
    n_blocks = -(-n // block_size)
    for count in (2, 3, n_blocks):
        parts = []
        for i in range(count):
            path = simulate_to_file("blobs", n, tmp_path / f"{count}-{i}.h5", seed=5, config=TINY_BLOBS,
                                    shard=(i, count))
            batch, shard_meta = read(path)
            shard = Shard.of(i, count, n, block_size)
            assert shard_meta.provenance["shard"] == {"index": i, "count": count, "start": shard.start,
                                                      "stop": shard.stop, "n_total": n, "seed": 5}
            assert (shard_meta.seed, shard_meta.config) == (meta.seed, meta.config)
            parts.append(batch)
        assert_same(concatenate(parts), whole)


def test_sharded_galactic_center_with_masks_equals_the_unsharded_file(tmp_path):
    n = 300  # blocks of 128: shards of 128, 128 and 44 samples
    whole, _ = read(simulate_to_file("galactic_center", n, tmp_path / "all.h5", seed=2, config=SMALL_GC))
    parts = [read(simulate_to_file("galactic_center", n, tmp_path / f"{i}.h5", seed=2, config=SMALL_GC,
                                   shard=(i, 3)))[0] for i in range(3)]
    assert [len(p) for p in parts] == [128, 128, 44] and whole.masks is not None
    assert_same(concatenate(parts), whole)


def test_iter_blocks_over_a_block_range_is_that_part_of_the_set():
    simulator = get_simulator("blobs", TINY_BLOBS)
    whole = concatenate(list(iter_blocks(simulator, 300, seed=1)))
    part = concatenate(list(iter_blocks(simulator, 300, seed=1, blocks=range(1, 3))))
    assert_same(part, type(whole)(whole.images[128:300], {k: v[128:300] for k, v in whole.params.items()}))
    with pytest.raises(DataError, match="block range"):
        next(iter_blocks(simulator, 300, seed=1, blocks=range(2, 4)))


@pytest.mark.parametrize(("shard", "match"), [((3, 3), "0 <= index < count"), ((-1, 3), "0 <= index < count"),
                                              ((0, 0), "0 <= index < count"), ((0, 4), "at most 3 shards")])
def test_impossible_shards_are_config_errors(tmp_path, shard, match):
    with pytest.raises(ConfigError, match=match):
        simulate_to_file("blobs", 300, tmp_path / "x.h5", config=TINY_BLOBS, shard=shard)
    assert not list(tmp_path.iterdir())
