"""The training / validation split of a FieldSet, the fitted transform and the loaders: one for every kind.

The last ``val_fraction`` of the file is held out (at least one sample when the fraction is > 0). The transform
(``data.transform``, `Compose` stages) is fitted on the training split and travels in the checkpoint. With
``data.balance`` the training loader draws sparse values of a parameter column more often (`balance_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import DataLoader

from astrogen.data import Augment, FieldMeta, FieldSet
from astrogen.data.dataset import FieldSetDataset
from astrogen.data.transforms import MaxNorm, Transform
from astrogen.distributed import make_loaders
from astrogen.errors import ConfigError, DataError
from astrogen.train.config import BalanceConfig, DataConfig


@dataclass
class Split:
    """A FieldSet split into training and validation loaders, with the fitted transform and metadata."""

    transform: Transform
    image_shape: list[int]
    meta: FieldMeta
    n_train: int
    params: dict[str, np.ndarray]  # every parameter column over the training split
    train: DataLoader
    val: DataLoader


def balance_weights(values: np.ndarray, balance: BalanceConfig) -> np.ndarray:
    """Draw probabilities of the samples with parameter ``values``: n^-power, n the number of samples in the same
    one of ``balance.bins`` equal-width bins over their range, normalised to sum to 1."""
    if not np.all(np.isfinite(values)):
        raise DataError(f"data.balance: column {balance.column!r} holds NaN or infinite values")
    counts, edges = np.histogram(values, balance.bins)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, balance.bins - 1)  # the top edge: last
    weights = counts[index].astype(np.float64) ** -balance.power
    return weights / weights.sum()


def prepare_split(data: DataConfig, seed: int, columns: Sequence[str] = (), masks: bool = False,
                  min_channels: int = 1, invertible: bool = False) -> Split:
    """Split ``data``, fit its transform on the training split, build loaders.

    Parameters
    ----------
    data : the experiment's ``data`` section.
    seed : seed of the shuffling and augmentation.
    columns : parameter columns the loaders yield (``batch["params"]``); each must be in the file.
    masks : also yield the FieldSet's masks (segmentation).
    min_channels : fewest image channels the kind accepts.
    invertible : refuse per-image transforms (`MaxNorm`) that generated samples cannot be mapped back through.
    """
    with FieldSet(data.path) as fs:
        n_total = len(fs)
        n_train = n_total - (max(1, round(data.val_fraction * n_total)) if data.val_fraction > 0 else 0)
        if n_train < 2:
            raise DataError(f"{fs.path}: {n_total} samples are too few for val_fraction {data.val_fraction}")
        if len(fs.sample_shape) != 3 or fs.sample_shape[0] < min_channels:
            raise DataError(f"{fs.path}: need 2D images [N, C, H, W] with C >= {min_channels}, got {fs.shape}")
        needed = set(columns) | ({data.balance.column} if data.balance else set())
        missing = sorted(needed - set(fs.param_names))
        if missing:
            raise ConfigError(f"{fs.path} has no columns {missing}; it has {fs.param_names}")
        transform = Transform.from_dict({"name": "Compose", "transforms": data.transform})
        if invertible and any(isinstance(t, MaxNorm) for t in transform.transforms):
            raise ConfigError("data.transform: MaxNorm is per image and cannot be inverted for generated samples")
        transform.fit(fs.image_batches(stop=n_train))
        params = {name: np.asarray(fs.params[name][:n_train]) for name in fs.param_names}
        shape, meta = list(fs.sample_shape), fs.meta
    augment = Augment(dihedral=data.augment, shift=data.shift) if (data.augment or data.shift) else None
    train_set = FieldSetDataset(data.path, transform, augment, params=list(columns), masks=masks)
    val_set = FieldSetDataset(data.path, transform, None, params=list(columns), masks=masks)
    weights = balance_weights(params[data.balance.column], data.balance) if data.balance else None
    train, val = make_loaders(train_set, val_set, range(n_train), range(n_train, n_total), data.batch_size,
                              data.num_workers, seed, weights)
    return Split(transform, shape, meta, n_train, params, train, val)
