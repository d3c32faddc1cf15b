"""Batches: deterministic shuffling of the training split, padded evaluation batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hffjax.data.sources import Dataset


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order of training examples in ``epoch``: a pure function of (seed, epoch)."""
  return np.random.default_rng((seed, epoch)).permutation(n)


def train_batches(
  ds: Dataset, batch_size: int, seed: int, epoch: int, start_step: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Shuffled full batches of one epoch (the remainder is dropped), from ``start_step`` on."""
  perm = epoch_permutation(seed, epoch, len(ds.train_images))
  for i in range(start_step, len(ds.train_images) // batch_size):
    idx = np.sort(perm[i * batch_size : (i + 1) * batch_size])
    yield ds.train_images[idx], ds.train_labels[idx]


def eval_batches(
  images: np.ndarray, labels: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Every example exactly once; the last batch is zero-padded and masked."""
  n = len(images)
  for start in range(0, n, batch_size):
    x, y = images[start : start + batch_size], labels[start : start + batch_size]
    mask = np.ones(len(x), bool)
    if len(x) < batch_size:
      pad = batch_size - len(x)
      x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
      mask = np.concatenate([mask, np.zeros(pad, bool)])
    yield x, y, mask
