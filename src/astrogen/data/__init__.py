"""Field sets (HDF5 + torch Dataset), importers, invertible transforms and augmentation."""

from astrogen.data.augment import Augment
from astrogen.data.dataset import FieldSetDataset
from astrogen.data.fieldset import Batch, FieldMeta, FieldSet, FieldSetWriter
from astrogen.data.io import import_file
from astrogen.data.merge import merge_fieldsets

__all__ = ["Augment", "Batch", "FieldMeta", "FieldSet", "FieldSetDataset", "FieldSetWriter", "import_file",
           "merge_fieldsets"]
