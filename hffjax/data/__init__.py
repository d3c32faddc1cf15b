"""Input: data sources, batching and augmentation."""

from hffjax.data.pipeline import epoch_permutation, eval_batches, train_batches
from hffjax.data.sources import (
  CLASS_NAMES,
  DATA_DIR_ENV,
  IDX_DATASETS,
  IDX_FILES,
  Dataset,
  find_idx_dir,
  load_dataset,
  load_idx_dataset,
  load_tfds_dataset,
  make_synthetic,
  read_idx,
  validate,
)

__all__ = [
  "CLASS_NAMES",
  "DATA_DIR_ENV",
  "IDX_DATASETS",
  "IDX_FILES",
  "Dataset",
  "epoch_permutation",
  "eval_batches",
  "find_idx_dir",
  "load_dataset",
  "load_idx_dataset",
  "load_tfds_dataset",
  "make_synthetic",
  "read_idx",
  "train_batches",
  "validate",
]
