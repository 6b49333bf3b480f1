"""A `torch.utils.data.Dataset` view of a FieldSet file, safe with ``DataLoader(num_workers > 0)``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from astrogen.data.augment import Augment
from astrogen.data.fieldset import FieldSet
from astrogen.data.transforms import Transform
from astrogen.errors import DataError


class FieldSetDataset(Dataset):
    """Samples of a FieldSet as dicts of float32 tensors: ``image`` [C, ...], ``params`` [P]
    (the chosen columns, in order) and ``mask`` [Cm, ...] when ``masks=True``.

    The HDF5 file is opened lazily in each process that reads (h5py handles must not cross a fork),
    so the dataset pickles to its path and options only.

    Parameters
    ----------
    path : FieldSet file.
    transform : applied to each image (not to masks), e.g. a fitted `MinMax`.
    augment : random symmetry augmentation applied identically to image and mask; random shifts
        require a periodic FieldSet. An item asked for as ``dataset[(index, key)]`` draws from a generator
        seeded by ``key`` (the training loaders pass one per item and epoch, so any number of processes and
        workers draw the same); ``dataset[index]`` draws from torch's global generator.
    params : parameter columns to return (default: all, in file order).
    masks : also return the mask of each sample.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        transform: Transform | None = None,
        augment: Augment | None = None,
        params: Sequence[str] | None = None,
        masks: bool = False,
    ):
        self.path = Path(path)
        with FieldSet(self.path) as fs:
            self._len = len(fs)
            available, periodic, has_masks = fs.param_names, fs.meta.periodic, fs.masks is not None
        self.params = list(available if params is None else params)
        unknown = sorted(set(self.params) - set(available))
        if unknown:
            raise DataError(f"{self.path}: no parameter columns {unknown}; it has {available}")
        if augment is not None and augment.shift and not periodic:
            raise DataError(f"{self.path}: random periodic shifts need a periodic FieldSet")
        if masks and not has_masks:
            raise DataError(f"{self.path}: the FieldSet has no masks")
        self.transform, self.augment, self.masks = transform, augment, masks
        self._fs: FieldSet | None = None
        self._pid: int | None = None

    def _fieldset(self) -> FieldSet:
        if self._fs is None or self._pid != os.getpid():
            self._fs, self._pid = FieldSet(self.path), os.getpid()
        return self._fs

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, key = index if isinstance(index, tuple) else (index, None)
        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} samples")
        batch = self._fieldset()[index % self._len : index % self._len + 1]
        image = torch.from_numpy(batch.images)
        if self.transform is not None:
            image = self.transform.forward(image)
        mask = torch.from_numpy(batch.masks) if self.masks else None
        if self.augment is not None:
            # One draw for image and mask together: both see the same symmetry operation.
            joined = image if mask is None else torch.cat([image, mask], dim=1)
            joined = self.augment(joined, None if key is None else torch.Generator().manual_seed(key))
            image, mask = (joined, None) if mask is None else joined.split([image.shape[1], mask.shape[1]], 1)
        sample = {
            "image": image[0].float(),
            "params": torch.from_numpy(np.array([batch.params[p][0] for p in self.params], dtype=np.float32)),
        }
        if mask is not None:
            sample["mask"] = mask[0]
        return sample

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None, "_pid": None}
