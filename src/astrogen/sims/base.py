"""The simulator interface, the name -> simulator registry, and the block-seeded drivers.

Determinism: a set of ``n`` samples with seed ``s`` is made of blocks of ``block_size`` samples; block
``b`` draws from ``numpy.random.default_rng(SeedSequence(s, spawn_key=(b,)))``. A block never depends
on ``n``, so a smaller set is a prefix of a larger one with the same seed, and any block range (a
shard) can be simulated on its own with the same result.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from astrogen import __version__
from astrogen._io import check_free_space, format_size
from astrogen.config import validate_config
from astrogen.data.fieldset import Batch, FieldMeta, FieldSetWriter
from astrogen.errors import ConfigError, DataError, UnknownNameError
from astrogen.progress import progress_bar

_REGISTRY: dict[str, type[Simulator]] = {}


@dataclass
class SimSpec:
    """What a simulator's output looks like: sample and mask shapes, parameter columns, metadata."""

    sample_shape: tuple[int, ...]
    meta: FieldMeta
    param_names: list[str] = field(default_factory=list)
    param_units: dict[str, str] = field(default_factory=dict)
    mask_shape: tuple[int, ...] | None = None


class Simulator(ABC):
    """Base class of simulators; subclasses set ``name``, ``version``, ``Config`` and ``block_size``.

    Expensive one-off set-up (templates, spectra) belongs in ``__init__``; `simulate_block` makes
    ``n <= block_size`` samples from one random generator, vectorised over the batch.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    block_size: ClassVar[int] = 128

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.name] = cls

    def __init__(self, config: BaseModel | Mapping | None = None):
        self.config = validate_config(self.Config, config, f"simulator {self.name}")

    @abstractmethod
    def spec(self) -> SimSpec:
        """Shapes, parameter names and metadata of this simulator's output for its config."""

    @abstractmethod
    def simulate_block(self, rng: np.random.Generator, n: int) -> Batch:
        """``n`` samples (images [n, ...], params {name: [n]}, masks or None) drawn from ``rng``."""


def available() -> list[str]:
    """Names of the registered simulators."""
    return sorted(_REGISTRY)


def get_simulator(name: str, config: BaseModel | Mapping | None = None) -> Simulator:
    """Instantiate the simulator registered as ``name`` with a validated ``config``."""
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown simulator {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name](config)


def _block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))


def iter_blocks(
    simulator: Simulator, n: int, seed: int, progress: bool = False, blocks: range | None = None
) -> Iterator[Batch]:
    """Yield samples of the ``n``-sample set of seed ``seed`` as consecutive batches of at most ``block_size``.

    ``blocks`` picks a range of block indices (block ``b`` holds samples ``b * block_size`` up to
    ``(b + 1) * block_size``, the last one cut at ``n``); default: all blocks, i.e. the whole set.
    """
    if n < 1:
        raise DataError(f"number of samples must be >= 1, got {n}")
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
    size = simulator.block_size
    n_blocks = -(-n // size)
    blocks = range(n_blocks) if blocks is None else blocks
    if blocks.step != 1 or not 0 <= blocks.start <= blocks.stop <= n_blocks:
        raise DataError(f"block range {blocks} is not a contiguous part of the set's {n_blocks} blocks")
    check_block_memory(simulator)
    total = min(blocks.stop * size, n) - min(blocks.start * size, n)
    with progress_bar(total, f"simulating {simulator.name}", enabled=progress) as advance:
        for block in blocks:
            batch = simulator.simulate_block(_block_rng(seed, block), size)
            keep = min(size, n - block * size)
            yield Batch(
                batch.images[:keep],
                {k: v[:keep] for k, v in batch.params.items()},
                None if batch.masks is None else batch.masks[:keep],
            )
            advance(keep)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` of an ``n``-sample set: a contiguous range of whole blocks.

    Shard ``i`` holds blocks ``i * B // count`` up to ``(i + 1) * B // count`` of the set's ``B`` blocks,
    so shards ``0..count-1`` concatenated in order are the unsharded set, bit for bit.
    """

    index: int
    count: int
    blocks: range
    start: int
    stop: int

    @classmethod
    def of(cls, index: int, count: int, n: int, block_size: int) -> Shard:
        """Shard ``index`` of ``count`` of ``n`` samples in blocks of ``block_size`` (ConfigError if impossible)."""
        n_blocks = -(-n // block_size)
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"shard {index}/{count}: need 0 <= index < count")
        if count > n_blocks:
            raise ConfigError(
                f"shard {index}/{count}: {n} samples make only {n_blocks} blocks of {block_size}; "
                f"use at most {n_blocks} shards"
            )
        blocks = range(index * n_blocks // count, (index + 1) * n_blocks // count)
        return cls(index, count, blocks, blocks.start * block_size, min(blocks.stop * block_size, n))


def _meta(simulator: Simulator, seed: int, shard: Shard | None = None, n: int | None = None) -> FieldMeta:
    provenance = {"astrogen_version": __version__, "made_by": "astrogen.sims.simulate_to_file"}
    if shard is not None:
        provenance["shard"] = {"index": shard.index, "count": shard.count, "start": shard.start,
                               "stop": shard.stop, "n_total": n, "seed": seed}
    return replace(
        simulator.spec().meta,
        simulator=simulator.name,
        simulator_version=simulator.version,
        config=simulator.config.model_dump(mode="json"),
        seed=seed,
        provenance=provenance,
    )


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else the physical total)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_block_memory(simulator: Simulator) -> None:
    """Refuse a config whose block of ``block_size`` samples would take more than half the available memory.

    Every sample comes from its seed block (so a set's first samples do not depend on ``n``), and a whole block
    is rendered even for one sample: its output alone must fit, with room left for the simulator's work arrays.
    """
    spec = simulator.spec()
    need, free = simulator.block_size * _sample_bytes(spec), available_memory()
    if 2 * need > free:
        shape = " x ".join(map(str, spec.sample_shape))
        raise DataError(f"{simulator.name}: a block of {simulator.block_size} samples of {shape} takes "
                        f"{format_size(need)}, more than half the {format_size(free)} of available memory; "
                        "choose a smaller image size")


def _sample_bytes(spec: SimSpec) -> int:
    """Bytes of one stored sample: float32 image and mask, float64 parameters."""
    mask = 0 if spec.mask_shape is None else 4 * math.prod(spec.mask_shape)
    return 4 * math.prod(spec.sample_shape) + mask + 8 * len(spec.param_names)


def simulate(name: str, n: int, seed: int = 0, config: BaseModel | Mapping | None = None) -> Batch:
    """Simulate ``n`` samples in memory and return them as one `Batch`."""
    simulator = get_simulator(name, config)
    blocks = list(iter_blocks(simulator, n, seed))
    return Batch(
        np.concatenate([b.images for b in blocks]),
        {k: np.concatenate([b.params[k] for b in blocks]) for k in blocks[0].params},
        None if blocks[0].masks is None else np.concatenate([b.masks for b in blocks]),
    )


def simulate_to_file(
    name: str,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    config: BaseModel | Mapping | None = None,
    compression: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    shard: tuple[int, int] | None = None,
) -> Path:
    """Simulate ``n`` samples block by block into the FieldSet file ``out`` (written atomically).

    ``shard=(i, count)`` writes only shard ``i`` of ``count`` of the ``n``-sample set (see `Shard`; needs
    ``count <=`` the number of blocks) and records it in the file's provenance under ``"shard"``
    (index, count, start, stop, n_total, seed), which `astrogen.data.merge_fieldsets` checks.
    Refuses (`InputFileError`) an uncompressed set larger than the free space of ``out``'s file system.
    """
    simulator = get_simulator(name, config)
    spec = simulator.spec()
    part = None if shard is None else Shard.of(*shard, n=n, block_size=simulator.block_size)
    n_written = n if part is None else part.stop - part.start
    with FieldSetWriter(
        out,
        spec.sample_shape,
        _meta(simulator, seed, part, n),
        param_names=spec.param_names,
        param_units=spec.param_units,
        mask_shape=spec.mask_shape,
        compression=compression,
        overwrite=overwrite,
    ) as writer:
        if compression is None:  # a compressed set is smaller by a factor unknown until it is written
            check_free_space(out, n_written * _sample_bytes(spec))
        for batch in iter_blocks(simulator, n, seed, progress, None if part is None else part.blocks):
            writer.append(batch.images, batch.params, batch.masks)
    return Path(out)
