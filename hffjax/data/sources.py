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
import struct

import numpy as np

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


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A train and a test split held in host memory."""

  name: str
  train_images: np.ndarray  # [N, H, W, K] uint8
  train_labels: np.ndarray  # [N] int32
  test_images: np.ndarray  # [M, H, W, K] uint8
  test_labels: np.ndarray  # [M] int32
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  @property
  def mean(self) -> float:
    return float(self.train_images.mean(dtype=np.float64)) / 255.0

  @property
  def std(self) -> float:
    return max(float(self.train_images.std(dtype=np.float64)) / 255.0, 1e-6)


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
  """The first of ``data_dir``, ``$HFFJAX_DATA_DIR``, the system folder that holds IDX files."""
  candidates = [d for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
  candidates += [os.path.join(d, name) for d in list(candidates)]
  if name in DEFAULT_DIRS:
    candidates.append(DEFAULT_DIRS[name])
  for d in candidates:
    present = [f for f in IDX_FILES.values() if os.path.isfile(os.path.join(d, f))]
    if len(present) == len(IDX_FILES):
      return d
    if present:
      missing = [f for f in IDX_FILES.values() if f not in present]
      raise HFFError(f"data dir {d} lacks {', '.join(missing)}; put all four IDX .gz files of {name} there")
  if data_dir:
    missing = [f for f in IDX_FILES.values() if not os.path.isfile(os.path.join(data_dir, f))]
    raise HFFError(
      f"data dir {data_dir} lacks {', '.join(missing)}; put the four IDX .gz files of {name} there"
    )
  hint = "apt-get install dataset-fashion-mnist" if name == "fashion_mnist" else "download the IDX files"
  raise HFFError(
    f"no {name} IDX files found (looked in {', '.join(candidates) or 'nowhere'}); "
    f"{hint}, or set --config.data_dir / ${DATA_DIR_ENV}"
  )


def load_idx_dataset(name: str, data_dir: str | None, num_classes: int = 10) -> Dataset:
  folder = find_idx_dir(name, data_dir)
  arrays = {k: read_idx(os.path.join(folder, f)) for k, f in IDX_FILES.items()}
  for split in ("train", "test"):
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise HFFError(
        f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match; "
        "replace the IDX files"
      )
  return Dataset(
    name=name,
    train_images=arrays["train_images"][..., None],
    train_labels=arrays["train_labels"].astype(np.int32),
    test_images=arrays["test_images"][..., None],
    test_labels=arrays["test_labels"].astype(np.int32),
    num_classes=num_classes,
  )


# ----------------------------------------------------------------------------- TFDS


def load_tfds_dataset(name: str, data_dir: str | None) -> Dataset:
  """Reads a prepared TFDS image dataset with ``tfds.data_source`` into memory."""
  try:
    import tensorflow_datasets as tfds  # noqa: PLC0415  (heavy; only this path needs it)
  except ImportError:
    raise HFFError(f"dataset {name!r} needs tensorflow-datasets; pip install tensorflow-datasets") from None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # TFDS raises several types for an unknown name.
    raise HFFError(
      f"unknown dataset {name!r} ({type(e).__name__}); use fashion_mnist, mnist, synthetic "
      "or a TFDS dataset prepared in --config.data_dir"
    ) from None
  try:
    num_classes = int(builder.info.features["label"].num_classes)
  except (KeyError, AttributeError):
    raise HFFError(
      f"TFDS dataset {name!r} has no class label feature; use an image classification dataset"
    ) from None

  def read(split):
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    records = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
    images = images[..., None] if images.ndim == 3 else images
    return images, np.asarray([r["label"] for r in records], np.int32)

  out = {}
  for split, names in (("train", ("train",)), ("test", ("test", "validation"))):
    for split_name in names:
      try:
        out[split] = read(split_name)
        break
      except Exception as e:  # TFDS raises several types for a missing split or data dir.
        error = e
    else:
      raise HFFError(
        f"cannot read TFDS {name}/{split} from {data_dir or 'the default data dir'} "
        f"({type(error).__name__}); prepare the dataset there first"
      )
  return Dataset(name, *out["train"], *out["test"], num_classes=num_classes)


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
  return Dataset("synthetic", xtr, ytr, xte, yte, num_classes)


# ----------------------------------------------------------------------------- entry point


def load_dataset(config) -> Dataset:
  """Loads and validates the dataset a config names."""
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
  elif name in IDX_DATASETS and _tfds_prepared(name, config.data_dir) and not _has_idx(config.data_dir):
    ds = load_tfds_dataset(name, config.data_dir)  # e.g. prepared by TFDS in a notebook
  elif name in IDX_DATASETS:
    ds = load_idx_dataset(name, config.data_dir or None)
  else:
    ds = load_tfds_dataset(name, config.data_dir or None)
  validate(ds)
  return ds


def _has_idx(data_dir: str) -> bool:
  return bool(data_dir) and os.path.isfile(os.path.join(data_dir, IDX_FILES["train_images"]))


def _tfds_prepared(name: str, data_dir: str) -> bool:
  return bool(data_dir) and os.path.isdir(os.path.join(data_dir, name))


def validate(ds: Dataset) -> None:
  """Refuses labels outside ``[0, num_classes)`` and mismatched image shapes."""
  for split, labels in (("train", ds.train_labels), ("test", ds.test_labels)):
    if labels.size and (labels.min() < 0 or labels.max() >= ds.num_classes):
      bad = labels[(labels < 0) | (labels >= ds.num_classes)][0]
      raise HFFError(
        f"{ds.name} {split} split has label {bad} outside [0, {ds.num_classes}); fix the labels file"
      )
  if ds.train_images.shape[1:] != ds.test_images.shape[1:]:
    raise HFFError(
      f"{ds.name}: train images {ds.train_images.shape[1:]} and test images "
      f"{ds.test_images.shape[1:]} differ in shape; fix the data"
    )
  if len(ds.train_images) == 0 or len(ds.test_images) == 0:
    raise HFFError(f"{ds.name} has an empty split; fix the data")
