"""Where examples come from: IDX files, prepared TFDS datasets, generated data.

Sources:
  * MNIST-format IDX files (``fashion_mnist``, ``mnist``): a folder holding the
    four ``*-idx?-ubyte.gz`` files.
  * Any image-classification dataset a user has prepared for TFDS, read with
    ``tfds.data_source`` (no TensorFlow needed). TFDS is imported lazily.
  * ``synthetic``: class-conditional Gaussian images for tests and benchmarks.

Images stay ``uint8`` ``[N, H, W, K]`` on the host; normalisation to zero mean
and unit variance happens on the device inside the jitted step, so a batch
crosses to the device at a quarter of the float32 size.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import struct

import numpy as np
from tqdm.auto import tqdm

from hffjax.errors import HFFError

IDX_DATASETS = ("fashion_mnist", "mnist")
DEFAULT_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
IDX_FILES = {
  "train_images": "train-images-idx3-ubyte.gz",
  "train_labels": "train-labels-idx1-ubyte.gz",
  "test_images": "t10k-images-idx3-ubyte.gz",
  "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DATA_DIR_ENV = "HFFJAX_DATA_DIR"
# The first ten labels of each dataset's published train and test files. IDX files carry no name and
# MNIST's and Fashion-MNIST's share file names, so a folder of the one would otherwise load, without
# a word, as the other.
LABELS_BEGIN = {
  "fashion_mnist": {"train": (9, 0, 0, 3, 0, 2, 7, 2, 5, 5), "test": (9, 2, 1, 1, 6, 1, 4, 6, 5, 7)},
  "mnist": {"train": (5, 0, 4, 1, 9, 2, 1, 3, 1, 4), "test": (7, 2, 1, 0, 4, 1, 4, 9, 5, 9)},
}
CLASS_NAMES = {
  "fashion_mnist": [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
  ],
  "mnist": [str(d) for d in range(10)],
}


class ArraySource:
  """Records held in host memory: ``uint8`` images ``[N, H, W, K]`` and ``int32`` labels ``[N]``."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    self.images = images
    self.labels = np.asarray(labels, np.int32)

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def image_shape(self) -> tuple[int, int, int] | None:
    return tuple(self.images.shape[1:])

  def record(self, i: int) -> tuple[np.ndarray, int]:
    return self.images[i], int(self.labels[i])

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(images [b, H, W, K], labels [b])`` of the records at ``indices`` (one gather)."""
    return self.images[indices], self.labels[indices]

  def subset(self, indices: np.ndarray) -> ArraySource:
    return ArraySource(self.images[indices], self.labels[indices])


class RecordSource:
  """Records read one at a time from a random-access source (e.g. ``tfds.data_source``).

  Nothing is materialised: a batch reads (and decodes) only its own records,
  so host memory does not grow with the size of the split. Images may differ
  in size; ``image_shape`` is then ``None`` and the pipeline resizes them.
  """

  def __init__(
    self,
    source,
    image_shape: tuple | None,
    indices: np.ndarray | None = None,
    relabel=None,
    channels: int = 3,
    *,
    num_classes: int | None = None,
  ):
    self.source = source
    self._image_shape = image_shape
    self.channels = image_shape[-1] if image_shape else channels
    self.indices = indices  # a view over some records of ``source`` (a split slice or class subset)
    self.relabel = relabel  # a lookup array: stored label -> label the model sees
    self.num_classes = num_classes  # stored labels lie in [0, num_classes) (checked as records are read)

  def __len__(self) -> int:
    return len(self.source) if self.indices is None else len(self.indices)

  @property
  def image_shape(self) -> tuple[int, int, int] | None:
    return self._image_shape

  def record(self, i: int) -> tuple[np.ndarray, int]:
    """``(image [H, W, K] uint8, label)``; a record that cannot be read or decoded, or whose image
    has another shape or channel count than the split's, is a one-line error naming it."""
    position = int(i) if self.indices is None else int(self.indices[i])
    r, label = self._stored(position)
    try:
      image = np.asarray(r["image"], np.uint8)
    except Exception as e:  # noqa: BLE001 - a decode or format error, named by its record
      raise self._unreadable(position, e) from e
    image = image[..., None] if image.ndim == 2 else image
    want = self._image_shape
    if image.ndim != 3 or (want and image.shape != tuple(want)) or image.shape[-1] != self.channels:
      expected = tuple(want) if want else f"(H, W, {self.channels})"
      raise HFFError(
        f"record {position} of {self._where()} has an image of shape {image.shape}, not {expected}; fix the data"
      )
    return image, (label if self.relabel is None else int(self.relabel[label]))

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if self._image_shape is None:
      raise HFFError("this dataset's images differ in size; set --config.image_size to crop them to one size")
    if len(indices) == 0:
      return np.zeros((0, *self._image_shape), np.uint8), np.zeros(0, np.int32)
    records = [self.record(i) for i in indices]
    return np.stack([r[0] for r in records]), np.asarray([r[1] for r in records], np.int32)

  def stored_labels(self) -> np.ndarray:
    """Every record's label as stored, ``[N]``: one pass that reads (and decodes) each record once."""
    positions = range(len(self)) if self.indices is None else self.indices
    bar = tqdm(positions, desc="reading labels", unit="record", disable=None, leave=False)
    return np.asarray([self._stored(int(i))[1] for i in bar], np.int32)

  def _stored(self, position: int) -> tuple[dict, int]:
    """``(record, label)`` as stored at ``position``; a read error or a label that is not an integer
    in ``[0, num_classes)`` is a one-line error naming the record (TFDS stores -1 for an unlabelled one)."""
    try:
      r = self.source[position]
      label = int(r["label"])
    except Exception as e:  # noqa: BLE001 - a storage, decode or format error, named by its record
      raise self._unreadable(position, e) from e
    if self.num_classes is not None and not 0 <= label < self.num_classes:
      raise HFFError(
        f"record {position} of {self._where()} has label {label}, outside [0, {self.num_classes}) "
        "(TFDS marks unlabelled records -1); train and evaluate on labelled splits"
      )
    return r, label

  def _unreadable(self, position: int, e: Exception) -> HFFError:
    return HFFError(f"record {position} of {self._where()} could not be read: {type(e).__name__}: {e}")

  def _where(self) -> str:
    info, split = getattr(self.source, "dataset_info", None), getattr(self.source, "split", None)
    return f"TFDS {info.name} {split}" if info is not None and split else "a streamed split"

  def subset(self, indices: np.ndarray) -> RecordSource:
    base = indices if self.indices is None else self.indices[indices]
    return RecordSource(
      self.source, self._image_shape, base, self.relabel, self.channels, num_classes=self.num_classes
    )


@dataclasses.dataclass(frozen=True)
class Dataset:
  """The splits a run uses, as sources, with what the model needs to know about them.

  ``train`` and ``test`` always exist; ``validation`` when the config carves
  one (``validation_split``). In-memory sources (IDX, synthetic) also expose
  their arrays as ``train_images`` etc.
  """

  name: str
  train: ArraySource | RecordSource
  test: ArraySource | RecordSource
  num_classes: int
  validation: ArraySource | RecordSource | None = None
  image_size: int = 0  # crop/resize size for datasets whose images vary in size
  class_names: tuple[str, ...] | None = None
  test_split: str = "test"  # the split ``test`` reads: "validation" for a dataset without "test"

  @property
  def image_shape(self) -> tuple[int, int, int]:
    shape = self.train.image_shape
    if shape is None:
      return (self.image_size, self.image_size, self.train.channels)
    if self.image_size and tuple(shape[:2]) != (self.image_size, self.image_size):
      return (self.image_size, self.image_size, shape[2])
    return tuple(shape)

  def _arrays(self, split: str) -> ArraySource:
    source = getattr(self, split)
    if not isinstance(source, ArraySource):
      raise HFFError(f"{self.name} is streamed from disk; its {split} split has no in-memory arrays")
    return source

  @property
  def train_images(self) -> np.ndarray:
    return self._arrays("train").images

  @property
  def train_labels(self) -> np.ndarray:
    return self._arrays("train").labels

  @property
  def test_images(self) -> np.ndarray:
    return self._arrays("test").images

  @property
  def test_labels(self) -> np.ndarray:
    return self._arrays("test").labels

  def pixel_stats(self, max_records: int = 10_000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of training pixels scaled to ``[0, 1]``.

    From at most ``max_records`` evenly spaced training records (a pure
    function of the split), so a split is never read whole for this.
    """
    n = len(self.train)
    idx = np.unique(np.linspace(0, n - 1, num=min(n, max_records)).astype(np.int64))
    if self.train.image_shape is not None:
      pixels = self.train.read(idx)[0].astype(np.float64)
      pixels = pixels.reshape(-1, pixels.shape[-1])
      count, total, total_sq = len(pixels), pixels.sum(0), (pixels**2).sum(0)
    else:  # sizes vary: pool per-record sums
      count = total = total_sq = 0.0
      for i in idx:
        image = self.train.record(i)[0].astype(np.float64).reshape(-1, self.train.channels)
        count, total, total_sq = count + len(image), total + image.sum(0), total_sq + (image**2).sum(0)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(m) / 255.0 for m in mean), tuple(max(float(s) / 255.0, 1e-6) for s in std)

  def full_split_pixel_stats(self) -> tuple[tuple[float], tuple[float]]:
    """One mean and std over every training pixel: how hffjax 0.1 normalised in-memory datasets."""
    images = self._arrays("train").images
    mean = float(images.mean(dtype=np.float64)) / 255.0
    return (mean,), (max(float(images.std(dtype=np.float64)) / 255.0, 1e-6),)


# ----------------------------------------------------------------------------- IDX


def read_idx(path: str) -> np.ndarray:
  """Reads one (optionally gzipped) IDX file of unsigned bytes.

  Raises:
    HFFError: the file is missing, truncated, or not an unsigned-byte IDX file.
  """
  if not os.path.isfile(path):
    raise HFFError(f"missing data file {path}; put the dataset's IDX files there")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise HFFError(f"cannot read {path} ({e}); the file is corrupt, replace it") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise HFFError(f"{path} is not an IDX file (bad magic number); replace it")
  dtype_code, ndim = raw[2], raw[3]
  if dtype_code != 0x08:
    raise HFFError(f"{path} holds IDX type 0x{dtype_code:02x}; only unsigned bytes (0x08) are supported")
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise HFFError(f"{path} is truncated (header cut short); replace it")
  shape = struct.unpack(f">{ndim}I", raw[4:header])
  expected = int(np.prod(shape, dtype=np.int64))
  if len(raw) - header != expected:
    raise HFFError(
      f"{path} has {len(raw) - header} data bytes but its header promises {expected} "
      "(truncated or corrupt); replace it"
    )
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_dir(name: str, data_dir: str | None) -> str:
  """The folder holding ``name``'s four IDX files: ``data_dir``'s ``<name>/`` subfolder or ``data_dir``
  itself when given (the subfolder first: a folder may hold one dataset's files beside another's
  subfolder), else ``$HFFJAX_DATA_DIR``'s, else the system folder. A folder named but lacking the
  files is an error, never a fall-through to another copy of the data."""
  named = data_dir or os.environ.get(DATA_DIR_ENV)
  if named:
    candidates = [os.path.join(named, name), named]
  else:
    candidates = [DEFAULT_DIRS[name]] if name in DEFAULT_DIRS else []
  for d in candidates:
    present = _idx_files_in(d)
    if len(present) == len(IDX_FILES):
      return d
    if present:
      missing = [f for f in IDX_FILES.values() if f not in present]
      raise HFFError(f"data dir {d} lacks {', '.join(missing)}; put all four IDX .gz files of {name} there")
  if named:
    how = "--config.data_dir" if data_dir else f"${DATA_DIR_ENV}"
    state = (
      "does not exist" if not os.path.isdir(named) else f"holds no {name} IDX files (nor does its {name}/)"
    )
    raise HFFError(
      f"data dir {named} (from {how}) {state}; put the four IDX .gz files of {name} there, "
      f"or prepare {name} there with TFDS"
    )
  hint = "apt-get install dataset-fashion-mnist" if name == "fashion_mnist" else "download the IDX files"
  raise HFFError(
    f"no {name} IDX files found (looked in {', '.join(candidates) or 'nowhere'}); "
    f"{hint}, or set --config.data_dir / ${DATA_DIR_ENV}"
  )


def load_idx_dataset(name: str, data_dir: str | None) -> Dataset:
  """An IDX dataset; its class count is the labels seen (capped at the dataset's own, e.g. 10 for Fashion-MNIST)."""
  folder = find_idx_dir(name, data_dir)
  arrays = {k: read_idx(os.path.join(folder, f)) for k, f in IDX_FILES.items()}
  for split in ("train", "test"):
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise HFFError(
        f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match; "
        "replace the IDX files"
      )
  for other, begins in LABELS_BEGIN.items():
    if other != name and any(
      tuple(arrays[f"{s}_labels"][:10].tolist()) == begins[s] for s in ("train", "test")
    ):
      where = (
        f"put {name}'s in {os.path.join(folder, name)} or point data_dir at them"
        if os.path.basename(os.path.normpath(folder)) not in (name, os.path.basename(DEFAULT_DIRS[name]))
        else f"replace the files in {folder} with {name}'s"
      )
      raise HFFError(
        f"{folder} holds {other}'s IDX files (their labels begin as {other}'s do), not {name}'s; {where}"
      )
  seen = int(max(arrays["train_labels"].max(initial=0), arrays["test_labels"].max(initial=0))) + 1
  known = len(CLASS_NAMES.get(name, ())) or None
  # Labels past the dataset's own classes are reported by validate(); fewer classes are a subset.
  num_classes = known if known and seen > known else seen
  return Dataset(
    name=name,
    train=ArraySource(arrays["train_images"][..., None], arrays["train_labels"]),
    test=ArraySource(arrays["test_images"][..., None], arrays["test_labels"]),
    num_classes=num_classes,
    class_names=tuple(CLASS_NAMES[name]) if known == num_classes else None,
  )


# ----------------------------------------------------------------------------- TFDS


PREPARE_HINT = (
  "prepare it with `tfds build {name} --data_dir {data_dir} --file_format=array_record` "
  "(needs tensorflow; see README, 'Preparing a TFDS dataset')"
)


def _tfds():
  try:
    import tensorflow_datasets as tfds  # noqa: PLC0415  (heavy; only this path needs it)
  except ImportError:
    raise HFFError("TFDS datasets need tensorflow-datasets; pip install 'hffjax[tfds]'") from None
  return tfds


def tfds_split(name: str, split: str, data_dir: str | None):
  """``tfds.data_source`` for one split, or an HFFError saying why it cannot be read and how to fix it."""
  tfds = _tfds()
  try:
    # Never download: a dataset is prepared on purpose (README), not fetched in the middle of a run.
    return tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  except Exception as e:  # TFDS raises many types; diagnose below.
    reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}" if str(e) else type(e).__name__
    error = e
  where = data_dir or "the default TFDS data dir"
  hint = PREPARE_HINT.format(name=name, data_dir=data_dir or "DIR")
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except Exception as e:
    raise HFFError(
      f"unknown dataset {name!r}: TFDS knows no such builder and none is prepared in {where} "
      f"({type(e).__name__}); use fashion_mnist, mnist, synthetic, or a TFDS dataset prepared there"
    ) from None
  if not os.path.isdir(str(builder.data_path)):
    raise HFFError(f"TFDS {name} is not prepared (looked for {builder.data_path}); {hint}") from None
  file_format = str(getattr(builder.info, "file_format", "") or "")
  if file_format and "array_record" not in file_format.lower():
    raise HFFError(
      f"TFDS {name} in {where} is prepared as {file_format.split('.')[-1].lower()}, which random access "
      f"cannot read; {hint}"
    ) from None
  base = split.split("[")[0]
  if base not in builder.info.splits:
    known = ", ".join(sorted(builder.info.splits)) or "none"
    raise HFFError(
      f"TFDS {name} in {where} has no split {base!r} (it has: {known}); use one of those"
    ) from None
  raise HFFError(f"cannot read TFDS {name}/{split} from {where} ({reason}); {hint}") from error


def load_tfds_dataset(name: str, data_dir: str | None, *, test_split: str | None = None) -> Dataset:
  """A prepared TFDS image dataset, streamed with ``tfds.data_source`` (no TensorFlow needed)."""
  tfds = _tfds()
  train = tfds_split(name, "train", data_dir)
  info = getattr(train, "dataset_info", None)
  if info is None:
    info = tfds.builder(name, data_dir=data_dir or None).info
  label = info.features["label"] if "label" in info.features else None
  if label is None or not hasattr(label, "num_classes") or "image" not in info.features:
    raise HFFError(
      f"TFDS dataset {name!r} has no image and class label features; use an image classification dataset"
    )
  if test_split is None:
    test_split = "test" if "test" in info.splits else "validation"
  test = tfds_split(name, test_split, data_dir)
  shape = tuple(info.features["image"].shape)
  shape = shape if len(shape) == 3 else (*shape, 1)
  fixed = None if any(s is None for s in shape) else shape
  channels = shape[-1] or 3
  names = tuple(label.names) if getattr(label, "names", None) else None
  return Dataset(
    name=name,
    train=RecordSource(train, fixed, channels=channels, num_classes=int(label.num_classes)),
    test=RecordSource(test, fixed, channels=channels, num_classes=int(label.num_classes)),
    num_classes=int(label.num_classes),
    class_names=names,
    test_split=parse_split(test_split)[0],
  )


# ----------------------------------------------------------------------------- synthetic


def make_synthetic(
  *,
  num_train: int,
  num_test: int,
  image_shape: tuple[int, int, int],
  num_classes: int,
  seed: int,
  noise: float = 60.0,
) -> Dataset:
  """Each class is a random template image; examples are template + Gaussian noise."""
  rng = np.random.default_rng(seed)
  templates = rng.uniform(40, 215, size=(num_classes, *image_shape))

  def split(n):
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    images = templates[labels] + rng.normal(0, noise, size=(n, *image_shape))
    return np.clip(images, 0, 255).astype(np.uint8), labels

  (xtr, ytr), (xte, yte) = split(num_train), split(num_test)
  return Dataset("synthetic", ArraySource(xtr, ytr), ArraySource(xte, yte), num_classes)


# ----------------------------------------------------------------------------- entry point


_SPLIT = re.compile(r"^(\w+)(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")


def parse_split(spec: str) -> tuple[str, str | None, str | None]:
  """``"train[-5000:]"`` -> ``("train", "-5000", None)``; TFDS's slice syntax (counts or percents)."""
  m = _SPLIT.match(spec.replace(" ", ""))
  if not m:
    raise HFFError(
      f"split {spec!r} does not parse; write NAME or NAME[START:STOP] with counts or percents, "
      "e.g. train[-5000:] or train[:10%]"
    )
  return m.group(1), m.group(2), m.group(3)


def split_range(spec: str, n: int) -> tuple[str, int, int]:
  """The split name and the ``[start, stop)`` record range ``spec`` selects from a split of ``n`` records."""
  name, lo, hi = parse_split(spec)

  def bound(text, default):
    if text is None:
      return default
    value = round(n * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    return min(max(value + n if value < 0 else value, 0), n)

  start, stop = bound(lo, 0), bound(hi, n)
  if stop <= start:
    raise HFFError(f"split {spec!r} selects no records of the {n} in {name}; widen it")
  return name, start, stop


def _carve_validation(ds: Dataset, spec: str, data_dir: str) -> Dataset:
  """Takes ``spec`` out of train (``train[...]``) or reads another split as validation."""
  name, _, _ = parse_split(spec)
  if name == "train":
    _, start, stop = split_range(spec, len(ds.train))
    if stop - start >= len(ds.train):
      raise HFFError(f"validation_split {spec!r} takes every training record; leave some to train on")
    keep = np.concatenate([np.arange(0, start), np.arange(stop, len(ds.train))])
    return dataclasses.replace(
      ds, train=ds.train.subset(keep), validation=ds.train.subset(np.arange(start, stop))
    )
  if name == "test":
    raise HFFError("validation_split must not be the test split; carve it from train, e.g. train[-5000:]")
  if name == ds.test_split:
    raise HFFError(
      f"validation_split {spec!r}: {ds.name} has no test split, so its {name} split is evaluated as "
      f"the test set; carve validation from train instead, e.g. train[-10000:]"
    )
  if isinstance(ds.train, ArraySource):
    raise HFFError(
      f"{ds.name} has only train and test splits; carve validation from train, e.g. train[-5000:]"
    )
  source = tfds_split(ds.name, name, data_dir)
  _, start, stop = split_range(spec, len(source))
  return dataclasses.replace(
    ds,
    validation=RecordSource(
      source,
      ds.train.image_shape,
      np.arange(start, stop),
      ds.train.relabel,
      ds.train.channels,
      num_classes=ds.train.num_classes,
    ),
  )


def _keep_classes(ds: Dataset, classes: tuple[int, ...]) -> Dataset:
  """Keeps the records of ``classes``, relabelled ``0 .. k-1`` in the order given."""
  bad = [c for c in classes if not 0 <= c < ds.num_classes]
  if bad or len(set(classes)) != len(classes):
    raise HFFError(
      f"classes {tuple(classes)} must be distinct labels in [0, {ds.num_classes}); e.g. (5, 6, 7, 8, 9)"
    )
  lookup = np.full(ds.num_classes, -1, np.int32)
  lookup[list(classes)] = np.arange(len(classes), dtype=np.int32)

  def keep(source):
    if source is None:
      return None
    if isinstance(source, RecordSource):
      idx = np.flatnonzero(lookup[source.stored_labels()] >= 0)
      base = idx if source.indices is None else source.indices[idx]
      return RecordSource(
        source.source, source.image_shape, base, lookup, source.channels, num_classes=source.num_classes
      )
    idx = np.flatnonzero(lookup[source.labels] >= 0)
    return ArraySource(source.images[idx], lookup[source.labels[idx]])

  names = tuple(ds.class_names[c] for c in classes) if ds.class_names else None
  return dataclasses.replace(
    ds,
    train=keep(ds.train),
    test=keep(ds.test),
    validation=keep(ds.validation),
    num_classes=len(classes),
    class_names=names,
  )


def load_dataset(config) -> Dataset:
  """Loads and validates the dataset a config names, with its validation split and class subset."""
  name = config.dataset
  if name == "synthetic":
    s = config.synthetic
    ds = make_synthetic(
      num_train=s.num_train,
      num_test=s.num_test,
      image_shape=tuple(s.image_shape),
      num_classes=s.num_classes,
      seed=config.seed,
    )
  elif name in IDX_DATASETS:
    # IDX files where the user points (data_dir, else $HFFJAX_DATA_DIR), else TFDS's prepared copy there.
    named = config.data_dir or os.environ.get(DATA_DIR_ENV, "")
    if _tfds_subfolder(name, named):
      ds = load_tfds_dataset(name, named)  # e.g. prepared by TFDS in a notebook
    else:
      ds = load_idx_dataset(name, config.data_dir or None)
  else:
    ds = load_tfds_dataset(name, config.data_dir or None)
  image_size = int(config.get("image_size", 0) or 0)
  if image_size:
    ds = dataclasses.replace(ds, image_size=image_size)
  elif ds.train.image_shape is None:
    raise HFFError(
      f"{name}'s images differ in size; set --config.image_size (e.g. 224) to crop them to one size"
    )
  if config.get("validation_split"):
    ds = _carve_validation(ds, config.validation_split, config.data_dir)
  if config.get("classes"):
    ds = _keep_classes(ds, tuple(int(c) for c in config.classes))
  validate(ds)
  return ds


def _idx_files_in(folder: str) -> list[str]:
  """The IDX file names of :data:`IDX_FILES` present in ``folder``."""
  return [f for f in IDX_FILES.values() if os.path.isfile(os.path.join(folder, f))]


def _tfds_subfolder(name: str, data_dir: str) -> bool:
  """Whether ``data_dir``'s ``<name>/`` subfolder is a TFDS-prepared copy: it exists and holds no IDX
  file. The subfolder comes first, as in :func:`find_idx_dir`: IDX files beside it are another
  dataset's, and a subfolder with only some IDX files is refused there, never read as TFDS."""
  if not data_dir:
    return False
  sub = os.path.join(data_dir, name)
  return os.path.isdir(sub) and not _idx_files_in(sub)


def validate(ds: Dataset) -> None:
  """Refuses labels outside ``[0, num_classes)``, mismatched image shapes and empty splits."""
  splits = [("train", ds.train), ("test", ds.test)] + (
    [("validation", ds.validation)] if ds.validation else []
  )
  if ds.num_classes < 2:
    raise HFFError(
      f"{ds.name} has labels of {ds.num_classes} class{'es' * (ds.num_classes != 1)}; a classifier needs at "
      "least 2: fix the labels file"
    )
  for split, source in splits:
    if len(source) == 0:
      raise HFFError(f"{ds.name} has an empty {split} split; fix the data")
    if not isinstance(source, ArraySource):
      source.record(0)  # streamed (TFDS): one record now (an unlabelled split is refused before training)
      continue  # and each record's label as it is read
    labels = source.labels
    if labels.min() < 0 or labels.max() >= ds.num_classes:
      bad = labels[(labels < 0) | (labels >= ds.num_classes)][0]
      raise HFFError(
        f"{ds.name} {split} split has label {bad} outside [0, {ds.num_classes}); fix the labels file"
      )
  if ds.train.image_shape != ds.test.image_shape and not ds.image_size:
    raise HFFError(
      f"{ds.name}: train images {ds.train.image_shape} and test images "
      f"{ds.test.image_shape} differ in shape; fix the data"
    )
