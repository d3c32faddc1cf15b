"""Batches for training and evaluation, per process, on grain.

The order of training examples is a pure function of ``(seed, step)``: step
``s`` of epoch ``e = s // steps_per_epoch`` takes the global batch
``sort(permutation(seed, e)[t*B : (t+1)*B])`` with ``t = s % steps_per_epoch``,
and process ``p`` of ``P`` reads rows ``[p*B/P, (p+1)*B/P)`` of it. So

* a resumed run only needs its step to see the same batches (no iterator state);
* the processes read disjoint records that together cover each global batch,
  and the global batch does not depend on how many processes share it.

grain runs the reads (and, for images of any size, the decode, crop and
resize) ahead of the training step, in threads or worker processes; the
element grain produces is one process-local batch.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
from collections.abc import Iterator

import grain
import numpy as np
from absl import flags

from hffjax.data import augment
from hffjax.data.sources import ArraySource, Dataset, RecordSource
from hffjax.errors import HFFError


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order of training examples in ``epoch``: a pure function of (seed, epoch)."""
  return np.random.default_rng((seed, epoch)).permutation(n)


@functools.lru_cache(maxsize=2)
def _cached_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return epoch_permutation(seed, epoch, n)


@dataclasses.dataclass(frozen=True)
class TrainOrder:
  """Which records each process reads at each global step; the remainder of an epoch is dropped."""

  num_records: int
  global_batch: int
  seed: int
  process_index: int = 0
  process_count: int = 1

  def __post_init__(self):
    if self.global_batch % self.process_count:
      raise HFFError(
        f"batch_size {self.global_batch} is not divisible by the {self.process_count} processes; "
        f"use a multiple of {self.process_count}"
      )
    if self.global_batch > self.num_records:
      raise HFFError(
        f"batch_size {self.global_batch} is larger than the {self.num_records} training examples; lower it"
      )

  @property
  def steps_per_epoch(self) -> int:
    return self.num_records // self.global_batch

  @property
  def local_batch(self) -> int:
    return self.global_batch // self.process_count

  def global_indices(self, step: int) -> np.ndarray:
    epoch, t = divmod(int(step), self.steps_per_epoch)
    perm = _cached_permutation(self.seed, epoch, self.num_records)
    return np.sort(perm[t * self.global_batch : (t + 1) * self.global_batch])

  def local_indices(self, step: int) -> np.ndarray:
    lo = self.process_index * self.local_batch
    return self.global_indices(step)[lo : lo + self.local_batch]


def _read(
  source: ArraySource | RecordSource, indices: np.ndarray, transform
) -> tuple[np.ndarray, np.ndarray]:
  """Reads records; ``transform(position, image)`` makes every image the same size first."""
  if transform is None:
    return source.read(indices)
  if len(indices) == 0:  # a process whose share of the last eval batch is empty
    return None, np.zeros(0, np.int32)
  records = [source.record(i) for i in indices]
  images = np.stack([transform(j, image) for j, (image, _) in enumerate(records)])
  return images, np.asarray([label for _, label in records], np.int32)


def _ignore_sigint(worker_index: int, worker_count: int) -> None:
  """In each grain worker: Ctrl-C is the main process's to handle (it saves, then stops the workers)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclasses.dataclass(frozen=True)
class TrainBatch:
  """Step -> this process's batch ``{"image", "label"}``; grain maps it over step numbers."""

  source: ArraySource | RecordSource
  order: TrainOrder
  image_size: int = 0  # > 0: random-resized-crop every image to this size

  def __call__(self, step: int) -> dict:
    indices = self.order.local_indices(step)
    transform = None
    if self.image_size:
      size, seed = self.image_size, self.order.seed
      offset = self.order.process_index * self.order.local_batch

      def transform(j, image):
        # One generator per example, keyed by its global position: independent of the process count.
        rng = np.random.default_rng((seed, int(step), offset + j))
        cropped = augment.random_resized_crop(rng, image, size)
        return cropped[:, ::-1] if rng.random() < 0.5 else cropped

    images, labels = _read(self.source, indices, transform)
    return {"image": images, "label": labels}


def host_resize_size(ds: Dataset, source) -> int:
  """The size images are cropped/resized to on the host: 0 when the source already has the model's shape."""
  shape = source.image_shape
  if ds.image_size and (shape is None or tuple(shape[:2]) != (ds.image_size, ds.image_size)):
    return ds.image_size
  return 0


def train_iterator(
  ds: Dataset,
  order: TrainOrder,
  start_step: int,
  stop_step: int,
  *,
  workers: int = 0,
  threads: int | None = None,
  prefetch: int = 4,
) -> Iterator[dict]:
  """This process's batches for steps ``[start_step, stop_step)``, read ahead by grain.

  ``workers > 0`` runs the reads in that many worker processes (for decoding
  and resizing large images); otherwise ``threads`` threads read ahead
  (default: none for in-memory arrays, whose batches are one gather and
  cheaper to make in line than to hand over between threads; one otherwise).
  """
  image_size = host_resize_size(ds, ds.train)
  dataset = grain.MapDataset.range(start_step, stop_step).map(TrainBatch(ds.train, order, image_size))
  if threads is None:
    threads = 0 if isinstance(ds.train, ArraySource) and not image_size else 1
  it = dataset.to_iter_dataset(
    grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch if threads else 0)
  )
  if workers > 0:
    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; hffjax has its own command line
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers), worker_init_fn=_ignore_sigint)
  return iter(it)


@dataclasses.dataclass(frozen=True)
class EvalBatch:
  """Batch number -> this process's padded slice ``{"image", "label", "mask"}`` of an eval split."""

  source: ArraySource | RecordSource
  global_batch: int
  process_index: int = 0
  process_count: int = 1
  image_size: int = 0  # > 0: resize and centre-crop every image to this size

  def __call__(self, i: int) -> dict:
    local = self.global_batch // self.process_count
    lo = i * self.global_batch + self.process_index * local
    indices = np.arange(lo, min(lo + local, len(self.source)))
    size = self.image_size
    transform = (lambda _, image: augment.resize_center_crop(image, size)) if size else None
    images, labels = _read(self.source, indices, transform)
    pad = local - len(indices)
    mask = np.concatenate([np.ones(len(indices), bool), np.zeros(pad, bool)])
    if pad:
      shape = self.image_shape_hint()
      images = images if images is not None else np.zeros((0, *shape), np.uint8)
      images = np.concatenate([images, np.zeros((pad, *shape), np.uint8)])
      labels = np.concatenate([labels.astype(np.int32), np.zeros(pad, np.int32)])
    return {"image": images, "label": labels, "mask": mask}

  def image_shape_hint(self) -> tuple[int, ...]:
    if self.image_size:
      channels = self.source.image_shape[2] if self.source.image_shape else self.source.channels
      return (self.image_size, self.image_size, channels)
    return tuple(self.source.image_shape)

  def num_batches(self) -> int:
    return -(-len(self.source) // self.global_batch)


def first_examples(ds: Dataset, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
  """``(images [m, H, W, K] uint8, labels [m])``: the first ``m = min(n, len)`` records of ``split`` as
  evaluation reads them (resized and centre-cropped when the run sets ``image_size``), in memory or streamed."""
  source = getattr(ds, split)
  m = min(int(n), len(source))
  batch = EvalBatch(source, max(m, 1), image_size=host_resize_size(ds, source))(0)
  return batch["image"][:m], batch["label"][:m]


def eval_iterator(
  ds: Dataset,
  split: str,
  global_batch: int,
  *,
  process_index: int = 0,
  process_count: int = 1,
  threads: int = 1,
  prefetch: int = 2,
) -> Iterator[dict]:
  """Every record of ``split`` exactly once, as this process's padded, masked slices of each batch."""
  source = getattr(ds, split)
  image_size = host_resize_size(ds, source)
  batch = EvalBatch(source, global_batch, process_index, process_count, image_size)
  dataset = grain.MapDataset.range(batch.num_batches()).map(batch)
  return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)))


class GuardedBatches:
  """Batches of one process that keep coming after a read fails, so the process keeps step with the others.

  A record that cannot be read (a bad label, a decode error, a storage
  error) stops only the process that reads it. In a multi-process job the
  others would then wait for it in the next collective until the job is
  killed. So the first failure is kept in :attr:`error` and the remaining
  ``count`` batches are stand-ins with the same shapes whose labels are
  :data:`UNREADABLE` (and, for an evaluation split, whose mask is false).
  The training and evaluation steps count such labels over the global batch,
  so every process sees a non-zero count in the same step's metrics; the
  loop then raises on all of them together (:func:`hffjax.sharding.raise_if_any`)
  before anything is saved.
  """

  def __init__(self, batches: Iterator, count: int, stand_in: dict, what: str):
    self._batches, self._remaining, self._what = batches, count, what
    self._stand_in = stand_in
    self.error: HFFError | None = None

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if self._remaining <= 0:
      raise StopIteration
    self._remaining -= 1
    if self.error is None:
      try:
        return next(self._batches)
      except StopIteration:
        raise
      except HFFError as e:
        self.error = e
      except Exception as e:  # noqa: BLE001 - any read failure becomes a one-line error, raised by the loop
        self.error = HFFError(f"reading {self._what} failed: {type(e).__name__}: {e}")
        self.error.__cause__ = e
    return self._stand_in

  def close(self) -> None:
    getattr(self._batches, "close", lambda: None)()


UNREADABLE = -1  # the label of a stand-in for an example a process could not read


def guarded_train_iterator(
  ds: Dataset, order: TrainOrder, start_step: int, stop_step: int, **kwargs
) -> GuardedBatches:
  """:func:`train_iterator`, guarded: see :class:`GuardedBatches`."""
  shape = (order.local_batch, *ds.image_shape)
  stand_in = {"image": np.zeros(shape, np.uint8), "label": np.full(order.local_batch, UNREADABLE, np.int32)}
  batches = train_iterator(ds, order, start_step, stop_step, **kwargs)
  return GuardedBatches(batches, stop_step - start_step, stand_in, "training batches")


def guarded_eval_iterator(
  ds: Dataset, split: str, global_batch: int, *, process_index: int = 0, process_count: int = 1
) -> GuardedBatches:
  """:func:`eval_iterator`, guarded: see :class:`GuardedBatches`."""
  source = getattr(ds, split)
  batch = EvalBatch(source, global_batch, process_index, process_count, host_resize_size(ds, source))
  local = global_batch // process_count
  stand_in = {
    "image": np.zeros((local, *batch.image_shape_hint()), np.uint8),
    "label": np.full(local, UNREADABLE, np.int32),
    "mask": np.zeros(local, bool),
  }
  batches = eval_iterator(ds, split, global_batch, process_index=process_index, process_count=process_count)
  return GuardedBatches(batches, batch.num_batches(), stand_in, f"the {split} split")


# In-memory helpers (whole global batches on one host): tests, benchmarks and notebooks use them.


def train_batches(
  ds: Dataset, batch_size: int, seed: int, epoch: int, start_step: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Shuffled full global batches of one epoch, in the order training sees them."""
  order = TrainOrder(len(ds.train), batch_size, seed)
  for t in range(start_step, order.steps_per_epoch):
    images, labels = ds.train.read(order.global_indices(epoch * order.steps_per_epoch + t))
    yield images, labels


def eval_batches(
  images: np.ndarray, labels: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Every example exactly once; the last batch is zero-padded and masked."""
  batch = EvalBatch(ArraySource(images, labels), batch_size)
  for i in range(batch.num_batches()):
    b = batch(i)
    yield b["image"], b["label"], b["mask"]
