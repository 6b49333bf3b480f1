"""Importers: the user's own arrays (.npy, .npz, FITS, plain HDF5) into a FieldSet.

The image array's axes are named by a layout string over ``N`` (sample), ``C`` (channel), ``D``
(depth, 3D fields), ``H``, ``W``; the default follows the number of dimensions: HW, NHW, NCHW, NCDHW.
Channels-last data use e.g. ``NHWC``. Beside the images, the importer picks up

* ``masks``: an array/dataset named ``masks`` (layout from its own number of dimensions);
* parameter columns: every other 1-D numeric array of length N (npz entries; HDF5 datasets in the
  image's group or in a ``params`` group), or, with ``params={name: key}``, exactly the columns named
  (HDF5 keys relative to the image's group, its ``params`` group, or absolute paths in the file), renamed.
  This reads GalaxiesML-style catalogues: ``image`` [N, 5, 64, 64] beside ``specz_redshift`` [N] becomes
  ``params={"redshift": "specz_redshift"}``;
* FITS headers: ``BUNIT`` as the pixel unit and square ``CDELT1``/``CDELT2`` (in ``CUNIT1``, default
  deg) as the pixel size.

Sources are read lazily (memory-mapped .npy and FITS, h5py slices) and written in batches, so sets
larger than memory import fine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from astrogen import __version__
from astrogen.data.fieldset import FORMAT, FieldMeta, FieldSet, FieldSetWriter, check_finite
from astrogen.errors import DataError, InputFileError
from astrogen.progress import progress_bar

DEFAULT_LAYOUTS = {2: "HW", 3: "NHW", 4: "NCHW", 5: "NCDHW"}
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


@dataclass
class _Source:
    """Lazily readable arrays found in a source file, plus metadata hints from its headers."""

    images: object
    masks: object | None = None
    params: dict[str, object] = field(default_factory=dict)
    columns: dict[str, object] = field(default_factory=dict)  # more arrays addressable by key (HDF5 paths)
    units: str | None = None
    pixel_size: float | None = None
    pixel_unit: str | None = None


def _check_layout(layout: str, ndim: int, what: str) -> str:
    layout = layout.upper()
    if (
        len(layout) != ndim
        or len(set(layout)) != len(layout)
        or not set(layout) <= set("NCDHW")
        or not {"H", "W"} <= set(layout)
        or ("N" in layout and layout[0] != "N")
    ):
        raise DataError(
            f"{what}: layout {layout!r} does not fit an array of {ndim} dimensions "
            "(letters N, C, D, H, W; must hold H and W; N first)"
        )
    return layout


def _to_samples(array: np.ndarray, layout: str) -> np.ndarray:
    """Reorder ``array`` (axes named by ``layout``) to ``[n, C, (D,) H, W]``."""
    if "N" not in layout:
        array, layout = array[None], "N" + layout
    if "C" not in layout:
        array, layout = array[:, None], layout[0] + "C" + layout[1:]
    target = "NC" + ("D" if "D" in layout else "") + "HW"
    return np.transpose(array, [layout.index(axis) for axis in target])


def _npz(path: Path, key: str | None) -> _Source:
    archive = np.load(path, allow_pickle=False)
    names = archive.files
    key = key or ("images" if "images" in names else names[0] if len(names) == 1 else None)
    if key not in names:
        raise InputFileError(f"{path}: choose the image array with --key; it holds {', '.join(names)}")
    rest = [n for n in names if n not in (key, "masks")]
    return _Source(
        archive[key],
        masks=archive["masks"] if "masks" in names and key != "masks" else None,
        params={n: archive[n] for n in rest},
    )


def _hdf5(path: Path, key: str | None, stack: ExitStack) -> _Source:
    f = stack.enter_context(h5py.File(path, "r"))
    if f.attrs.get("format") == FORMAT:
        raise InputFileError(f"{path}: already an astrogen FieldSet; no import needed")
    datasets: list[str] = []
    f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    multi = [name for name in datasets if f[name].ndim >= 2]
    key = key or ("images" if "images" in f else multi[0] if len(multi) == 1 else None)
    if key is None or key not in f or not isinstance(f[key], h5py.Dataset):
        raise InputFileError(f"{path}: choose the image dataset with --key; it holds {', '.join(datasets)}")
    group = f[key].parent
    columns = {name: group[name] for name in group if isinstance(group[name], h5py.Dataset)}
    if isinstance(group.get("params"), h5py.Group):
        columns.update({n: d for n, d in group["params"].items() if isinstance(d, h5py.Dataset)})
    columns.pop(f[key].name.split("/")[-1], None)
    by_path = {name: f[name] for name in datasets}
    return _Source(f[key], masks=columns.pop("masks", None), params=columns, columns=by_path)


def _fits(path: Path, key: str | None, stack: ExitStack) -> _Source:
    from astropy.io import fits

    try:
        hdul = stack.enter_context(fits.open(path, memmap=True))
    except OSError as err:
        raise InputFileError(f"{path}: not a readable FITS file ({err})") from None
    if key is not None:
        try:
            hdu = hdul[int(key) if key.isdigit() else key]
        except (KeyError, IndexError):
            raise InputFileError(f"{path}: no HDU {key!r}; it has {len(hdul)} HDUs") from None
    else:
        hdus = [h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 2]
        if not hdus:
            raise InputFileError(f"{path}: no image HDU with 2 or more dimensions")
        hdu = hdus[0]
    if not hdu.is_image or hdu.data is None:
        raise InputFileError(f"{path}: HDU {key!r} holds no image data")
    header = hdu.header
    step_x, step_y = abs(header.get("CDELT1", 0.0)), abs(header.get("CDELT2", 0.0))
    pixel_size = None
    if step_x > 0 and np.isclose(step_x, step_y, rtol=1e-6):
        pixel_size = float(step_x)
    return _Source(
        hdu.data,
        units=header.get("BUNIT"),
        pixel_size=pixel_size,
        pixel_unit=(str(header.get("CUNIT1", "")).strip() or "deg") if pixel_size else None,
    )


def _open(path: Path, key: str | None, stack: ExitStack) -> _Source:
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return _Source(np.load(path, mmap_mode="r", allow_pickle=False))
        if name.endswith(".npz"):
            return _npz(path, key)
        if name.endswith(HDF5_SUFFIXES):
            return _hdf5(path, key, stack)
        if name.endswith(FITS_SUFFIXES):
            return _fits(path, key, stack)
    except (ValueError, OSError) as err:
        raise InputFileError(f"{path}: cannot read ({err})") from None
    raise InputFileError(
        f"{path}: unknown file type; import reads .npy, .npz, FITS ({', '.join(FITS_SUFFIXES)}) and HDF5"
    )


def import_file(
    src: str | os.PathLike,
    out: str | os.PathLike,
    key: str | None = None,
    layout: str | None = None,
    channels: Sequence[str] | None = None,
    units: str | None = None,
    pixel_size: float | None = None,
    pixel_unit: str | None = None,
    periodic: bool = False,
    params: Mapping[str, str] | None = None,
    batch_size: int = 256,
    compression: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> FieldSet:
    """Convert an array file into a FieldSet at ``out`` and return it opened for reading.

    Parameters
    ----------
    src : .npy, .npz, FITS or HDF5 file.
    key : npz entry, HDF5 dataset path, or FITS HDU name/index holding the images.
    layout : axis names of the image array (default by its dimensions: HW, NHW, NCHW, NCDHW).
    channels : channel names (default ``ch0, ch1, ...``).
    units, pixel_size, pixel_unit : override what the file's headers say (pixel_size in pixel_unit).
    periodic : whether the fields are periodic boxes.
    params : parameter columns to import, ``{name in the FieldSet: key in the source}`` (e.g.
        ``{"redshift": "specz_redshift"}``); default: every 1-D numeric column of length N, named as in the source.
    batch_size : samples read and written at a time.
    compression, overwrite : as in `FieldSetWriter`.
    """
    src = Path(src)
    if not src.is_file():
        raise InputFileError(f"{src}: no such file")
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise DataError(f"pixel size must be a positive number, got {pixel_size}")
    with ExitStack() as stack:
        source = _open(src, key, stack)
        images = source.images
        if not np.issubdtype(images.dtype, np.number):
            raise DataError(f"{src}: image array has non-numeric dtype {images.dtype}")
        layout = _check_layout(layout or DEFAULT_LAYOUTS.get(images.ndim, "?" * images.ndim), images.ndim, str(src))
        n = images.shape[0] if "N" in layout else 1
        sample_shape = _sample_shape(images.shape, layout)
        channels = list(channels) if channels else [f"ch{i}" for i in range(sample_shape[0])]
        masks = source.masks
        mask_layout = None
        if masks is not None:
            mask_layout = _check_layout(DEFAULT_LAYOUTS.get(masks.ndim, "?"), masks.ndim, f"{src}: masks")
            if ("N" in mask_layout) != ("N" in layout) or (n > 1 and masks.shape[0] != n):
                raise DataError(f"{src}: masks of shape {masks.shape} do not match {n} images")
        params = _read_params(source, params, n, src)
        meta = FieldMeta(
            channels=channels,
            units=units or source.units or "unknown",
            pixel_size=pixel_size if pixel_size is not None else source.pixel_size,
            pixel_unit=pixel_unit or source.pixel_unit or "pixel",
            periodic=periodic,
            provenance={"source": str(src), "key": key, "layout": layout, "astrogen_version": __version__},
        )
        with FieldSetWriter(
            out,
            sample_shape,
            meta,
            param_names=list(params),
            mask_shape=None if masks is None else _sample_shape(masks.shape, mask_layout),
            compression=compression,
            overwrite=overwrite,
        ) as writer, progress_bar(n, f"importing {src.name}", enabled=progress) as advance:
            for start in range(0, n, batch_size):
                rows = slice(start, min(start + batch_size, n))
                read = (lambda a, rows=rows: a[rows]) if "N" in layout else (lambda a: a[()])
                batch = _to_samples(np.asarray(read(images), dtype=np.float32), layout)
                check_finite(batch, f"{src}: sample", start)
                mask_batch = None
                if masks is not None:
                    mask_batch = _to_samples(np.asarray(read(masks), dtype=np.float32), mask_layout)
                    check_finite(mask_batch, f"{src}: masks sample", start)
                writer.append(batch, {k: v[rows] for k, v in params.items()}, mask_batch)
                advance(len(batch))
    return FieldSet(out)


def _read_params(source: _Source, wanted: Mapping[str, str] | None, n: int, src: Path) -> dict[str, np.ndarray]:
    """The parameter columns: the ``wanted`` ones ``{name: key}`` (errors if unusable), else all usable ones."""
    usable = lambda c: c.ndim == 1 and len(c) == n and np.issubdtype(c.dtype, np.number)  # noqa: E731
    if wanted is None:
        return {name: np.asarray(c[()], dtype=np.float64) for name, c in source.params.items() if usable(c)}
    params = {}
    for name, key in wanted.items():
        column = source.params.get(key, source.columns.get(key.strip("/")))
        if column is None:
            known = sorted({*source.params, *source.columns}) or ["none"]
            raise InputFileError(f"{src}: no column {key!r} for parameter {name!r}; it holds {', '.join(known)}")
        if not usable(column):
            raise DataError(f"{src}: column {key!r} of shape {column.shape} and dtype {column.dtype} is not "
                            f"a numeric column of {n} values, one per image")
        params[name] = np.asarray(column[()], dtype=np.float64)
    return params


def _sample_shape(shape: Sequence[int], layout: str) -> tuple[int, ...]:
    """Shape of one sample ``(C, (D,) H, W)`` of an array with ``shape`` named by ``layout``."""
    size = dict(zip(layout, shape))
    return tuple(size.get(axis, 1) for axis in "C" + ("D" if "D" in layout else "") + "HW")
