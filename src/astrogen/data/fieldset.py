"""FieldSet: an HDF5 container for a set of images or fields, with their parameters and provenance.

Layout of a FieldSet file::

    /images          float32 [N, C, H, W] (or [N, C, D, H, W] for 3D fields), one sample per chunk
    /masks           optional float32 [N, Cm, H, W]: per-pixel targets (e.g. point-source counts)
    /params/<name>   optional float64 [N] columns (e.g. redshift, amplitudes); attr ``unit``
    attrs            format, format_version, complete, channels, units, pixel_size, pixel_unit,
                     box_size, periodic, simulator, simulator_version, config (JSON), seed, provenance

Writes are atomic: a `FieldSetWriter` writes to a hidden, locked ``.NAME.partial`` file beside the target
and renames it on success; the ``complete`` attribute is set only then, so an interrupted write never
leaves a file that looks complete. A failed or interrupted write removes the partial file, and the next
writer of ``NAME`` removes one left by a killed process (see `astrogen._io`).

Readers are lazy (h5py) and reject NaN/inf and inconsistent shapes with an error naming the dataset and
the sample index. The datasets may be HDF5 virtual datasets over other FieldSet files
(`astrogen.data.merge_fieldsets(..., virtual=True)`); readers refuse such a file when a source file is
missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from astrogen import __version__
from astrogen._io import PartialFile, signals_deferred
from astrogen.errors import DataError, InputFileError

FORMAT = "astrogen.FieldSet"
FORMAT_VERSION = 1
COMPRESSIONS = (None, "gzip", "lzf")


@dataclass
class FieldMeta:
    """What the numbers in a FieldSet mean and where they came from.

    Parameters
    ----------
    channels : names of the C channels (e.g. ``["kappa", "tsz"]`` or ``["g", "r", "i", "z", "y"]``).
    units : unit of the pixel values (e.g. ``"counts"``, ``"uK"``, ``"dimensionless"``).
    pixel_size : side of one pixel in ``pixel_unit`` (None if unknown).
    pixel_unit : unit of ``pixel_size`` and ``box_size``: ``"Mpc/h"``, ``"deg"``, ``"arcmin"``, ``"pixel"``.
    box_size : physical extent of the simulated volume or sky region, in ``pixel_unit``.
    periodic : whether the fields wrap around (periodic boxes); statistics and augmentation use it.
    simulator, simulator_version, config, seed : provenance of simulated sets (config is the full
        simulator configuration, JSON-serialisable).
    provenance : anything else worth keeping (source file of an import, command line, ...).
    """

    channels: list[str]
    units: str = "dimensionless"
    pixel_size: float | None = None
    pixel_unit: str = "pixel"
    box_size: list[float] | None = None
    periodic: bool = False
    simulator: str | None = None
    simulator_version: str | None = None
    config: dict = field(default_factory=dict)
    seed: int | None = None
    provenance: dict = field(default_factory=dict)

    _JSON_FIELDS = ("channels", "box_size", "config", "provenance")

    def to_attrs(self) -> dict:
        """HDF5-storable attributes (JSON for lists and dicts; None values are left out)."""
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = json.dumps(value, sort_keys=True) if key in self._JSON_FIELDS else value
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> FieldMeta:
        """Inverse of `to_attrs` (unknown attributes are ignored)."""
        kwargs = {}
        for key in cls.__dataclass_fields__:
            if key not in attrs:
                continue
            value = attrs[key]
            if key in cls._JSON_FIELDS:
                value = json.loads(value)
            elif isinstance(value, np.generic):
                value = value.item()
            kwargs[key] = value
        return cls(**kwargs)


@dataclass
class Batch:
    """A slice of a FieldSet held in memory.

    ``images`` is ``[n, C, ...]`` (or ``[C, ...]`` for a single sample), ``params`` maps each column
    name to its ``[n]`` values (scalars for one sample), ``masks`` is like ``images`` or None.
    """

    images: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


def check_finite(array: np.ndarray, what: str, index: int | np.ndarray = 0) -> None:
    """Raise `DataError` naming the first sample of ``array`` ([n, ...]) holding NaN or inf.

    ``index`` is the file index of ``array[0]`` (an offset) or of every sample (an array).
    """
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))[0]
    label = index[bad] if isinstance(index, np.ndarray) else index + bad
    raise DataError(f"{what}[{label}] contains NaN or inf")


def _write_header(file: h5py.File, meta: FieldMeta) -> None:
    """Format marker, ``complete = False`` and the metadata attributes of a FieldSet being written."""
    file.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "complete": False})
    file.attrs.update(meta.to_attrs())
    file.attrs["astrogen_version"] = __version__


def _create(path: Path, overwrite: bool) -> tuple[h5py.File, PartialFile]:
    """A new HDF5 file written as the locked partial file of ``path`` (see `astrogen._io.PartialFile`)."""
    partial = PartialFile(path, overwrite)
    try:
        with signals_deferred():
            return h5py.File(partial, "w"), partial
    except BaseException:
        partial.discard()
        raise


def _write_failed(path: Path, err: OSError) -> InputFileError:
    return InputFileError(f"{path}: cannot write it ({err.strerror or err}); its partial file was removed")


def _commit(file: h5py.File, partial: PartialFile) -> None:
    """Mark ``file`` complete, close it and move it into place; on failure remove it and raise.

    A write that failed (disk full, I/O error), here or earlier, raises `InputFileError`.
    """
    try:
        with signals_deferred():
            file.attrs["complete"] = True
            file.close()
        partial.commit()
    except OSError as err:
        _discard(file, partial)
        raise _write_failed(partial.path, err) from err
    except BaseException:
        _discard(file, partial)
        raise


def _discard(file: h5py.File, partial: PartialFile) -> None:
    """Close ``file`` if it is open and remove its partial file."""
    with signals_deferred():
        try:
            if file.id.valid:
                file.close()
        finally:
            partial.discard()


class FieldSetWriter:
    """Create a FieldSet file and append samples to it in batches (sets larger than RAM are fine).

    Use as a context manager; the file appears at ``path`` only when the block exits without error::

        with FieldSetWriter("set.h5", (1, 128, 128), FieldMeta(channels=["intensity"]),
                            param_names=["n_blobs"]) as writer:
            for batch in batches:
                writer.append(batch.images, batch.params)

    Parameters
    ----------
    path : target file (``.h5``).
    sample_shape : shape of one sample, ``(C, H, W)`` or ``(C, D, H, W)``.
    meta : channel names, units, pixel size and provenance.
    param_names : names of the float parameter columns; `append` must give each of them.
    param_units : optional unit of each parameter column.
    mask_shape : shape of one mask sample, or None for no masks.
    compression : None, ``"gzip"`` (level 4, with shuffle) or ``"lzf"``.
    overwrite : replace an existing file at ``path`` (only once the new one is complete).

    A failed write (disk full, I/O error) raises `InputFileError`. It, an exception in the ``with``
    block and a KeyboardInterrupt (Ctrl-C; SIGTERM under the CLI) all remove the partial file. A second
    writer of the same ``path`` is refused while this one lives.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_shape: Sequence[int],
        meta: FieldMeta,
        param_names: Sequence[str] = (),
        param_units: Mapping[str, str] | None = None,
        mask_shape: Sequence[int] | None = None,
        compression: str | None = None,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        if len(self.sample_shape) not in (3, 4) or min(self.sample_shape) < 1:
            raise DataError(f"sample shape must be (C, H, W) or (C, D, H, W), got {self.sample_shape}")
        if len(meta.channels) != self.sample_shape[0]:
            raise DataError(
                f"{len(meta.channels)} channel names {meta.channels} for {self.sample_shape[0]} channels"
            )
        if compression not in COMPRESSIONS:
            raise DataError(f"unknown compression {compression!r}; choose gzip, lzf or none")
        self.param_names = list(param_names)
        if len(set(self.param_names)) != len(self.param_names):
            raise DataError(f"duplicate parameter names in {self.param_names}")
        self.mask_shape = None if mask_shape is None else tuple(int(s) for s in mask_shape)
        self.n = 0
        self._file, self._partial = _create(self.path, overwrite)
        try:
            with signals_deferred():
                self._init_file(meta, param_units or {}, compression)
        except BaseException:
            self.abort()
            raise

    def _init_file(self, meta: FieldMeta, param_units: Mapping[str, str], compression: str | None):
        f = self._file
        _write_header(f, meta)
        opts = {"compression": compression, "shuffle": compression is not None}
        if compression == "gzip":
            opts["compression_opts"] = 4

        def create(name, shape, dtype):
            return f.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), chunks=(1, *shape), dtype=dtype, **opts
            )

        self._images = create("images", self.sample_shape, "f4")
        self._masks = None if self.mask_shape is None else create("masks", self.mask_shape, "f4")
        params = f.create_group("params")
        self._params = {}
        for name in self.param_names:
            column = params.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(1024,), dtype="f8")
            if name in param_units:
                column.attrs["unit"] = param_units[name]
            self._params[name] = column

    def append(
        self,
        images,
        params: Mapping[str, Sequence[float]] | None = None,
        masks=None,
    ) -> None:
        """Append a batch: ``images`` [n, *sample_shape], ``params`` {name: [n]}, ``masks`` [n, *mask_shape]."""
        images = np.asarray(images, dtype=np.float32)
        n = len(images)
        if images.shape[1:] != self.sample_shape:
            raise DataError(f"images batch has shape {images.shape}, expected [n, {self.sample_shape}]")
        check_finite(images, f"{self.path}: images", self.n)
        params = dict(params or {})
        if set(params) != set(self.param_names):
            raise DataError(f"params {sorted(params)} given, expected {sorted(self.param_names)}")
        columns = {}
        for name, values in params.items():
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if len(values) != n:
                raise DataError(f"param {name!r} has {len(values)} values for {n} images")
            check_finite(values, f"{self.path}: params/{name}", self.n)
            columns[name] = values
        if (masks is None) != (self.mask_shape is None):
            raise DataError("masks must be given with every batch exactly when the set has masks")
        if masks is not None:
            masks = np.asarray(masks, dtype=np.float32)
            if masks.shape != (n, *self.mask_shape):
                raise DataError(f"masks batch has shape {masks.shape}, expected {(n, *self.mask_shape)}")
            check_finite(masks, f"{self.path}: masks", self.n)
        stop = self.n + n
        with signals_deferred():
            for dataset, values in [(self._images, images), (self._masks, masks)]:
                if dataset is not None:
                    dataset.resize(stop, axis=0)
                    dataset[self.n : stop] = values
            for name, values in columns.items():
                self._params[name].resize((stop,))
                self._params[name][self.n : stop] = values
        self.n = stop
        if self._partial.error is not None:  # e.g. disk full: stop now rather than after the whole set
            self.abort()
            raise _write_failed(self.path, self._partial.error)

    def update_meta(self, meta: FieldMeta) -> None:
        """Replace the metadata attributes (e.g. provenance known only once every sample is written)."""
        if len(meta.channels) != self.sample_shape[0]:
            raise DataError(f"{len(meta.channels)} channel names {meta.channels} for {self.sample_shape[0]} channels")
        with signals_deferred():
            self._file.attrs.update(meta.to_attrs())

    def close(self) -> FieldSet:
        """Mark the file complete, move it into place atomically, and open it for reading."""
        if self.n == 0:
            self.abort()
            raise DataError(f"{self.path}: no samples were written")
        _commit(self._file, self._partial)
        return FieldSet(self.path)

    def abort(self) -> None:
        """Discard the partial file."""
        _discard(self._file, self._partial)

    def __enter__(self) -> FieldSetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close().close()
        else:
            self.abort()


class FieldSet:
    """A FieldSet file opened lazily for reading (see the module docstring for the layout).

    Indexing returns a `Batch`: ``fs[3]`` one sample, ``fs[10:20]`` or ``fs[[1, 5, 2]]`` several.
    Pixel data are read from disk only when indexed; parameter columns are small and held in memory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(f"{self.path}: no such file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise InputFileError(f"{self.path}: not a readable HDF5 file ({err})") from None
        try:
            self._validate()
        except BaseException:
            self._file.close()
            raise

    def _validate(self) -> None:
        f, where = self._file, self.path
        if f.attrs.get("format") != FORMAT:
            raise InputFileError(f"{where}: not an astrogen FieldSet (use `astrogen import` to convert it)")
        if not bool(f.attrs.get("complete", False)):
            raise InputFileError(f"{where}: incomplete FieldSet (its writer was interrupted)")
        if "images" not in f or f["images"].ndim not in (4, 5):
            raise DataError(f"{where}: images must be [N, C, H, W] or [N, C, D, H, W]")
        self.meta = FieldMeta.from_attrs(f.attrs)
        self.images = f["images"]
        n, channels = self.images.shape[:2]
        if n == 0:
            raise DataError(f"{where}: holds no samples (N = 0)")
        if len(self.meta.channels) != channels:
            raise DataError(f"{where}: {len(self.meta.channels)} channel names for {channels} channels")
        self.masks = f.get("masks")
        if self.masks is not None and len(self.masks) != n:
            raise DataError(f"{where}: masks has {len(self.masks)} samples, images has {n}")
        self.params = {name: column[()] for name, column in f.get("params", {}).items()}
        self.param_units = {
            name: column.attrs["unit"] for name, column in f.get("params", {}).items() if "unit" in column.attrs
        }
        self._check_virtual_sources()
        for name, values in self.params.items():
            if values.shape != (n,):
                raise DataError(f"{where}: params/{name} has shape {values.shape}, expected ({n},)")
            check_finite(values, f"{where}: params/{name}")

    def _check_virtual_sources(self) -> None:
        """Refuse a virtual FieldSet (see `merge_fieldsets`) whose source files are gone or lie outside its folder.

        HDF5 would read a missing source's samples as the fill value; relative source paths are
        resolved from this file's folder, as HDF5 does. A source outside that folder tree (``../x.h5``, an
        absolute path) is refused: a crafted virtual file must not read whatever HDF5 file sits there.
        """
        datasets = [self.images, self.masks, *self._file.get("params", {}).values()]
        files = {src.file_name for d in datasets if d is not None and d.is_virtual for src in d.virtual_sources()}
        home = self.path.parent.resolve()
        for name in sorted(files - {"."}):
            if not (home / name).resolve().is_relative_to(home):
                raise InputFileError(f"{self.path}: virtual FieldSet reads from {name}, outside its folder; keep "
                                     "the shards in the merged file's folder tree (or merge them as a copy)")
            if not (self.path.parent / name).is_file():
                raise InputFileError(
                    f"{self.path}: virtual FieldSet reads from {name}, which is missing "
                    f"(keep the shard files at the same place relative to the merged file)"
                )

    @classmethod
    def open(cls, path: str | os.PathLike) -> FieldSet:
        """Open a FieldSet file for lazy reading."""
        return cls(path)

    @staticmethod
    def create(path: str | os.PathLike, sample_shape: Sequence[int], meta: FieldMeta, **kwargs) -> FieldSetWriter:
        """Start writing a new FieldSet; see `FieldSetWriter` for the arguments."""
        return FieldSetWriter(path, sample_shape, meta, **kwargs)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole image array, ``(N, C, H, W)`` or ``(N, C, D, H, W)``."""
        return tuple(self.images.shape)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def channels(self) -> list[str]:
        return self.meta.channels

    @property
    def param_names(self) -> list[str]:
        return list(self.params)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> Batch:
        if isinstance(index, (int, np.integer)):
            i = int(index) + len(self) if index < 0 else int(index)
            if not 0 <= i < len(self):
                raise IndexError(f"{self.path}: index {index} out of range for {len(self)} samples")
            batch = self[i : i + 1]
            return Batch(batch.images[0], {k: v[0] for k, v in batch.params.items()},
                         None if batch.masks is None else batch.masks[0])
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            rows, labels, order = slice(start, stop), start, None
            params = {k: v[rows] for k, v in self.params.items()}
        else:
            wanted = np.asarray(index, dtype=np.int64).reshape(-1)
            wanted = np.where(wanted < 0, wanted + len(self), wanted)
            if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
                raise IndexError(f"{self.path}: indices out of range for {len(self)} samples")
            # h5py reads only increasing, unique indices: read those, then reorder.
            rows, order = np.unique(wanted, return_inverse=True)
            labels = rows
            params = {k: v[wanted] for k, v in self.params.items()}
        images = self._read(self.images, rows, labels, "images")
        masks = None if self.masks is None else self._read(self.masks, rows, labels, "masks")
        if order is not None:
            images = images[order]
            masks = None if masks is None else masks[order]
        return Batch(images, params, masks)

    def _read(self, dataset: h5py.Dataset, rows, labels, name: str) -> np.ndarray:
        values = dataset[rows]
        check_finite(values, f"{self.path}: {name}", labels)
        return values

    def batches(self, batch_size: int = 256, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        """Iterate over samples ``start..stop`` in batches of ``batch_size`` (the last may be smaller)."""
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        stop = len(self) if stop is None else min(stop, len(self))
        for begin in range(start, stop, batch_size):
            yield self[begin : min(begin + batch_size, stop)]

    def image_batches(self, batch_size: int = 256, start: int = 0, stop: int | None = None) -> ImageBatches:
        """A re-iterable over the image arrays of samples ``start..stop`` (e.g. to fit transforms)."""
        return ImageBatches(self, batch_size, start, stop)

    def torch_dataset(self, **kwargs):
        """A `torch.utils.data.Dataset` view of this file; see `FieldSetDataset` for the arguments."""
        from astrogen.data.dataset import FieldSetDataset

        return FieldSetDataset(self.path, **kwargs)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FieldSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FieldSet({str(self.path)!r}, shape={self.shape}, channels={self.channels})"


@dataclass
class ImageBatches:
    """Re-iterable view of a FieldSet's images in batches: each ``iter()`` streams the range again."""

    fieldset: FieldSet
    batch_size: int = 256
    start: int = 0
    stop: int | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return (batch.images for batch in self.fieldset.batches(self.batch_size, self.start, self.stop))
