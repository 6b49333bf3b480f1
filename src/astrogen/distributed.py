"""Data-parallel training that draws the same numbers on any number of processes.

A run is defined by its *global* batch (``data.batch_size``). `GlobalBatchSampler` cuts each epoch's
permutation (seeded by ``(seed, epoch)``) into global batches and gives rank ``r`` of ``W`` the rows
``r, r + W, r + 2W, ...`` of each; `draw_rows` draws a random tensor for the whole global batch on every rank
(all ranks share the seed, hence the global generator's state) and keeps the same rows. Per-sample augmentation
draws from a key of ``(seed, epoch, index)`` that the sampler hands to the dataset with each index. Together a
run on W processes sees, for every sample, the data and random numbers of one process with the global batch, so
the gradient DDP averages is the single-process gradient up to float summation order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from astrogen.errors import ConfigError


def world() -> tuple[int, int]:
    """``(world size, rank)`` of the running torch.distributed process group; ``(1, 0)`` outside one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def draw_rows(fn: Callable[..., torch.Tensor], n: int, shape: Sequence[int] = (),
              generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """This rank's ``n`` rows of ``fn((n * W, *shape))`` drawn for the whole global batch of W ranks.

    ``fn`` is e.g. ``torch.randn``, ``torch.rand`` or ``partial(torch.randint, 0, 1000)``; it draws from
    ``generator`` (a CPU generator, e.g. fixed validation noise) when given, else from the global RNG of
    ``device``. The result is on ``device``.
    """
    size, rank = world()
    rows = fn((n * size, *shape), **({"generator": generator} if generator is not None else {"device": device}))
    return (rows if size == 1 else rows[rank::size]).to(device)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective hash of uint64 values (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def item_keys(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """Seeds (int64 >= 0) of the random draws of items ``indices`` in ``epoch``: independent streams per item."""
    with np.errstate(over="ignore"):
        base = _mix(_mix(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(epoch))
        return (_mix(base ^ np.asarray(indices, dtype=np.uint64)) >> np.uint64(1)).astype(np.int64)


class EpochOrder(Sampler[int]):
    """``indices`` in a fresh random order each epoch (seeded by ``(seed, epoch)``), or as given; with
    ``weights`` (draw probabilities, one per index), as many draws with replacement instead of a permutation."""

    def __init__(self, indices: Sequence[int], shuffle: bool, seed: int, weights: np.ndarray | None = None):
        self.indices, self.shuffle, self.seed, self.epoch = np.asarray(indices, dtype=np.int64), shuffle, seed, 0
        self.weights = weights

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        if not self.shuffle:
            return iter(self.indices.tolist())
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch,)))
        if self.weights is not None:
            return iter(rng.choice(self.indices, len(self.indices), p=self.weights).tolist())
        return iter(self.indices[rng.permutation(len(self.indices))].tolist())


class GlobalBatchSampler(BatchSampler):
    """Global batches of `EpochOrder`, split across the ranks of the running process group.

    Yields lists of ``(index, key)`` for `astrogen.data.FieldSetDataset`: rank ``r`` of ``W`` gets rows
    ``r::W`` of each global batch; ``key`` seeds the item's augmentation. Empty local batches (a last partial
    validation batch smaller than W) are skipped.
    """

    sampler: EpochOrder

    def __iter__(self):
        size, rank = world()
        if self.batch_size % size:
            raise ConfigError(f"data.batch_size {self.batch_size} (the global batch) is not divisible by the "
                              f"{size} training processes")
        if len(self.sampler) < size:
            raise ConfigError(f"{len(self.sampler)} samples cannot be split across {size} processes")
        for batch in super().__iter__():
            rows = np.asarray(batch[rank::size], dtype=np.int64)
            if len(rows):
                keys = item_keys(self.sampler.seed, self.sampler.epoch, rows)
                yield list(zip(rows.tolist(), keys.tolist()))


class ReseedAtTrainStart(L.Callback):
    """Seed every process's global RNGs with ``seed`` just before the first training step.

    Lightning's DDP and FSDP strategies re-seed each process after the model is built; one process does not.
    Seeding here in every case gives one process and N processes the same random stream from step 0 on.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_start(self, trainer, pl_module) -> None:
        L.seed_everything(self.seed, workers=True, verbose=False)


def make_loaders(train_set: Dataset, val_set: Dataset, train: range, val: range, batch_size: int,
                 num_workers: int, seed: int, weights: np.ndarray | None = None) -> tuple[DataLoader, DataLoader]:
    """Shuffled training and ordered validation loaders over index ranges of two datasets.

    ``batch_size`` is the global batch: each of W processes loads ``batch_size / W`` samples per step.
    Incomplete training batches are dropped when the split holds at least one batch. ``weights``: the training
    samples' draw probabilities (`EpochOrder`).
    """
    common = {"num_workers": num_workers, "persistent_workers": num_workers > 0,
              "pin_memory": torch.cuda.is_available()}

    def loader(dataset, indices, shuffle, drop_last, weights=None):
        sampler = GlobalBatchSampler(EpochOrder(indices, shuffle, seed, weights), batch_size, drop_last)
        # Its own generator: the workers' base seed must not consume the global RNG that training draws from.
        return DataLoader(dataset, batch_sampler=sampler, generator=torch.Generator().manual_seed(seed), **common)

    return loader(train_set, train, True, len(train) >= batch_size, weights), loader(val_set, val, False, False)
