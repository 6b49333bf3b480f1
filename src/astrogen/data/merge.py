"""Join FieldSet files (e.g. the shards of ``astrogen simulate --shard i/n``) into one set.

Two outputs: a copy (one self-contained FieldSet, streamed batch by batch) or a small *virtual*
FieldSet whose ``images``, ``masks`` and ``params`` are HDF5 virtual datasets reading from the shard
files. The virtual file stores the shards' paths relative to its own folder: move the folder with the
shards in it, but keep every shard at the same place relative to the merged file. `FieldSet` opens
both kinds alike and refuses a virtual set whose shards are missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from astrogen import __version__
from astrogen._io import signals_deferred
from astrogen.data.fieldset import (
    FieldMeta,
    FieldSet,
    FieldSetWriter,
    _commit,
    _create,
    _discard,
    _write_header,
)
from astrogen.errors import DataError, InputFileError
from astrogen.progress import progress_bar

_PHYSICAL = ("channels", "units", "pixel_size", "pixel_unit", "box_size", "periodic")
_RUN = ("simulator", "simulator_version", "config", "seed")


def _layout(fs: FieldSet) -> dict:
    """Everything that must agree between two sets for their samples to be concatenated."""
    return {
        "sample shape": fs.sample_shape,
        "image dtype": fs.images.dtype,
        **{key.replace("_", " "): getattr(fs.meta, key) for key in _PHYSICAL},
        "parameters": sorted(fs.params),
        "parameter units": fs.param_units,
        "masks": None if fs.masks is None else (fs.masks.shape[1:], fs.masks.dtype),
    }


def _check_compatible(sets: Sequence[FieldSet]) -> None:
    first = _layout(sets[0])
    for fs in sets[1:]:
        for key, value in _layout(fs).items():
            if value != first[key]:
                raise DataError(f"{fs.path}: {key} {value} differs from {first[key]} in {sets[0].path}")


def _order_shards(sets: list[FieldSet]) -> list[FieldSet]:
    """Sort shards of one run by index after checking that they are all of it, each once."""
    shards = [fs.meta.provenance.get("shard") for fs in sets]
    if all(s is None for s in shards):
        return sets
    if None in shards:
        plain, shard = (next(fs for fs, s in zip(sets, shards) if (s is None) == want) for want in (True, False))
        raise DataError(f"{plain.path}: not a shard, but {shard.path} is one; merge the shards of one run only")
    first, (count, n_total) = sets[0], (shards[0]["count"], shards[0]["n_total"])
    for fs, shard in zip(sets, shards):
        for key in _RUN:
            if getattr(fs.meta, key) != getattr(first.meta, key):
                raise DataError(f"{fs.path}: {key} differs from {first.path}; shards of different runs")
        if (shard["count"], shard["n_total"]) != (count, n_total):
            raise DataError(f"{fs.path}: shard of {shard['count']} of {shard['n_total']} samples, but "
                            f"{first.path} is a shard of {count} of {n_total}; shards of different runs")
    by_index: dict[int, FieldSet] = {}
    for fs, shard in zip(sets, shards):
        if shard["index"] in by_index:
            raise DataError(f"{fs.path}: shard {shard['index']}/{count} given twice "
                            f"(also {by_index[shard['index']].path})")
        by_index[shard["index"]] = fs
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise DataError(f"incomplete set: missing shard(s) {listed} of {count} (have {len(sets)} files, "
                        f"e.g. {first.path})")
    ordered = [by_index[i] for i in range(count)]
    stop = 0
    for fs in ordered:
        shard = fs.meta.provenance["shard"]
        if (shard["start"], shard["stop"]) != (stop, stop + len(fs)):
            raise DataError(f"{fs.path}: holds {len(fs)} samples from {shard['start']}, expected them from {stop}")
        stop = shard["stop"]
    if stop != n_total:
        raise DataError(f"{ordered[-1].path}: shards end at sample {stop}, the set has {n_total}")
    return ordered


def _merged_meta(sets: Sequence[FieldSet], virtual: bool) -> FieldMeta:
    """The shared metadata; run provenance and provenance entries kept only where all inputs agree."""
    meta = sets[0].meta
    common = {key: getattr(meta, key) if all(getattr(fs.meta, key) == getattr(meta, key) for fs in sets) else None
              for key in _RUN}
    common["config"] = common["config"] or {}
    shared = {key: value for key, value in meta.provenance.items() if key != "shard"
              and all(fs.meta.provenance.get(key) == value for fs in sets)}  # e.g. generated_from, sampler
    provenance = {**shared, "astrogen_version": __version__, "made_by": "astrogen.data.merge_fieldsets",
                  "merged_from": len(sets), "virtual": virtual}
    shard = meta.provenance.get("shard")
    if shard is not None:
        provenance["shards"] = {"count": shard["count"], "n_total": shard["n_total"]}
    return replace(meta, **common, provenance=provenance)


def _write_copy(sets, out: Path, meta, overwrite, compression, progress, batch_size: int) -> None:
    first = sets[0]
    with FieldSetWriter(
        out, first.sample_shape, meta, param_names=first.param_names, param_units=first.param_units,
        mask_shape=None if first.masks is None else first.masks.shape[1:], compression=compression,
        overwrite=overwrite,
    ) as writer, progress_bar(sum(map(len, sets)), "merging", enabled=progress) as advance:
        for fs in sets:
            for batch in fs.batches(batch_size):
                writer.append(batch.images, batch.params, batch.masks)
                advance(len(batch))


def _write_virtual(sets, out: Path, meta, overwrite) -> None:
    first, n = sets[0], sum(map(len, sets))
    home = out.parent.resolve()
    outside = [str(fs.path) for fs in sets if not fs.path.resolve().is_relative_to(home)]
    if outside:  # FieldSet refuses to read such sources
        raise InputFileError(f"{outside[0]}: a virtual set reads shards from its own folder tree only; write {out} "
                             "beside the shards or merge them as a copy (without --virtual)")
    sources = [os.path.relpath(fs.path.resolve(), home) for fs in sets]

    def link(file: h5py.File, name: str, take) -> h5py.Dataset:
        parts = [take(fs) for fs in sets]
        layout = h5py.VirtualLayout((n, *parts[0].shape[1:]), parts[0].dtype)
        start = 0
        for source, part in zip(sources, parts):
            layout[start : start + len(part)] = h5py.VirtualSource(source, part.name, shape=part.shape)
            start += len(part)
        # A source that shrank or vanished reads as NaN, which readers refuse, never as zeros.
        return file.create_virtual_dataset(name, layout, fillvalue=np.nan)

    file, partial = _create(out, overwrite)
    try:
        with signals_deferred():
            _write_header(file, meta)
            link(file, "images", lambda fs: fs.images)
            if first.masks is not None:
                link(file, "masks", lambda fs: fs.masks)
            file.create_group("params")
            for name in first.param_names:
                column = link(file, f"params/{name}", lambda fs, name=name: fs.images.file[f"params/{name}"])
                if name in first.param_units:
                    column.attrs["unit"] = first.param_units[name]
    except BaseException:
        _discard(file, partial)
        raise
    _commit(file, partial)


def merge_fieldsets(
    shards: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    virtual: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    compression: str | None = None,
    batch_size: int = 256,
) -> Path:
    """Concatenate FieldSet files into ``out`` (written atomically) and return its path.

    Parameters
    ----------
    shards : FieldSet files, e.g. the shards of one ``simulate_to_file(..., shard=(i, count))`` run
        (any order: shards are sorted by index and must be the complete set ``0..count-1`` of one run,
        same simulator, config, seed and size). Files without shard provenance are joined in the
        given order. All must agree on sample shape, dtype, channels, units, pixel size and unit, box,
        periodicity, parameter names and units, and masks.
    out : merged FieldSet file; must not be one of ``shards``.
    virtual : write a small file of HDF5 virtual datasets reading from the shards (relative paths:
        the shards must stay at the same place relative to ``out``) instead of copying the samples.
    overwrite : replace an existing ``out``.
    progress : show a progress bar while copying.
    compression : HDF5 compression of the copy (None, ``"gzip"``, ``"lzf"``); unused when virtual.
    batch_size : samples per copied batch (memory bound of the copy).
    """
    if not shards:
        raise DataError("nothing to merge: no FieldSet files given")
    out = Path(out)
    paths = [Path(p) for p in shards]
    if out.resolve() in {p.resolve() for p in paths}:
        raise InputFileError(f"{out}: the output is one of the files to merge")
    with ExitStack() as stack:
        sets = [stack.enter_context(FieldSet(p)) for p in paths]
        _check_compatible(sets)
        sets = _order_shards(sets)
        meta = _merged_meta(sets, virtual)
        if virtual:
            _write_virtual(sets, out, meta, overwrite)
        else:
            _write_copy(sets, out, meta, overwrite, compression, progress, batch_size)
    return out
