import gzip
import os
import struct

import numpy as np
import pytest

from hffjax import data
from hffjax.config import base_config
from hffjax.data.sources import LABELS_BEGIN
from hffjax.errors import HFFError


def write_idx(path, array: np.ndarray) -> None:
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_idx_folder(folder, n_train=30, n_test=12, max_label=9, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {
    "train_images": rng.integers(0, 256, (n_train, 28, 28)),
    "train_labels": rng.integers(0, max_label + 1, n_train),
    "test_images": rng.integers(0, 256, (n_test, 28, 28)),
    "test_labels": rng.integers(0, max_label + 1, n_test),
  }
  for key, name in data.IDX_FILES.items():
    write_idx(os.path.join(folder, name), arrays[key])
  return arrays


def _config(name, data_dir):
  c = base_config()
  c.dataset = name
  c.data_dir = str(data_dir)
  return c


def test_idx_folder_round_trip(tmp_path):
  arrays = write_idx_folder(tmp_path)
  ds = data.load_dataset(_config("fashion_mnist", tmp_path))
  assert ds.train_images.shape == (30, 28, 28, 1) and ds.train_images.dtype == np.uint8
  np.testing.assert_array_equal(ds.train_images[..., 0], arrays["train_images"])
  np.testing.assert_array_equal(ds.test_labels, arrays["test_labels"])
  assert ds.num_classes == 10 and ds.image_shape == (28, 28, 1)


def test_idx_in_the_dataset_subfolder_of_data_dir(tmp_path):
  """``data_dir/fashion_mnist/`` holding IDX files is read as IDX, not taken for a TFDS folder."""
  (tmp_path / "fashion_mnist").mkdir()
  arrays = write_idx_folder(tmp_path / "fashion_mnist")
  ds = data.load_dataset(_config("fashion_mnist", tmp_path))
  np.testing.assert_array_equal(ds.test_labels, arrays["test_labels"])


def _write_labels_beginning(folder, train, test):
  """An IDX folder whose label files begin with ``train`` and ``test`` (a published dataset's start)."""
  arrays = write_idx_folder(folder)
  arrays["train_labels"][: len(train)], arrays["test_labels"][: len(test)] = train, test
  for key in ("train_labels", "test_labels"):
    write_idx(os.path.join(folder, data.IDX_FILES[key]), arrays[key])
  return arrays


@pytest.mark.parametrize("asked, other", [("fashion_mnist", "mnist"), ("mnist", "fashion_mnist")])
def test_idx_files_of_the_other_dataset_are_refused(tmp_path, asked, other):
  """MNIST and Fashion-MNIST share IDX file names: a folder of the one never loads as the other."""
  begins = LABELS_BEGIN[other]
  _write_labels_beginning(tmp_path, begins["train"], begins["test"])
  with pytest.raises(HFFError, match=f"holds {other}'s IDX files .* not {asked}'s; put {asked}'s in"):
    data.load_dataset(_config(asked, tmp_path))
  # Either file alone gives it away; the dataset's own beginning loads.
  for train, test in ((begins["train"], (0,) * 10), ((0,) * 10, begins["test"])):
    _write_labels_beginning(tmp_path, train, test)
    with pytest.raises(HFFError, match=f"holds {other}'s IDX files"):
      data.load_dataset(_config(asked, tmp_path))
  # In the dataset's own subfolder, the files are to be replaced (not moved one level down).
  (tmp_path / asked).mkdir()
  _write_labels_beginning(tmp_path / asked, begins["train"], begins["test"])
  with pytest.raises(HFFError, match=f"; replace the files in {tmp_path / asked} with {asked}'s$"):
    data.load_dataset(_config(asked, tmp_path))
  os.rename(tmp_path / asked, tmp_path / "elsewhere")
  own = LABELS_BEGIN[asked]
  arrays = _write_labels_beginning(tmp_path, own["train"], own["test"])
  np.testing.assert_array_equal(
    data.load_dataset(_config(asked, tmp_path)).train_labels, arrays["train_labels"]
  )


def test_idx_dataset_subfolder_comes_before_files_beside_it(tmp_path):
  """data_dir holding MNIST's files and a fashion_mnist/ subfolder: each dataset gets its own."""
  mnist = _write_labels_beginning(tmp_path, *LABELS_BEGIN["mnist"].values())
  (tmp_path / "fashion_mnist").mkdir()
  fashion = write_idx_folder(tmp_path / "fashion_mnist", seed=1)
  got = data.load_dataset(_config("fashion_mnist", tmp_path)).train_labels
  np.testing.assert_array_equal(got, fashion["train_labels"])
  np.testing.assert_array_equal(
    data.load_dataset(_config("mnist", tmp_path)).train_labels, mnist["train_labels"]
  )


def test_idx_found_through_environment(tmp_path, monkeypatch):
  write_idx_folder(tmp_path)
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
  assert data.load_dataset(_config("mnist", "")).train_images.shape[0] == 30


def test_a_named_data_dir_without_the_files_is_refused_rather_than_replaced(tmp_path, monkeypatch):
  """A mistyped --config.data_dir or $HFFJAX_DATA_DIR is an error even where the system holds the data."""
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  with pytest.raises(
    HFFError, match=r"data dir .*typo \(from --config.data_dir\) does not exist; put the four"
  ):
    data.load_dataset(_config("fashion_mnist", str(tmp_path / "typo")))
  with pytest.raises(HFFError, match=r"holds no fashion_mnist IDX files \(nor does its fashion_mnist/\)"):
    data.load_dataset(_config("fashion_mnist", str(tmp_path)))
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "typo"))
  with pytest.raises(HFFError, match=r"typo \(from \$HFFJAX_DATA_DIR\) does not exist"):
    data.load_dataset(_config("fashion_mnist", ""))


def test_fashion_mnist_prepared_by_tfds_is_found_through_the_environment(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  from tfds_fixture import build_variable_size_dataset

  version = str(tfds.builder_cls("fashion_mnist").VERSION)
  build_variable_size_dataset(
    str(tmp_path), name="fashion_mnist", version=version, image_shape=(28, 28, 1), num_classes=10, png=True
  )
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
  ds = data.load_dataset(_config("fashion_mnist", ""))
  assert isinstance(ds.train, data.RecordSource) and (len(ds.train), len(ds.test)) == (60, 20)
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10


def test_tfds_subfolder_comes_before_the_other_datasets_idx_files_beside_it(tmp_path):
  """MNIST's IDX files in data_dir beside a fashion_mnist/ that TFDS prepared: each is read as itself."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from tfds_fixture import build_variable_size_dataset

  version = str(tfds.builder_cls("fashion_mnist").VERSION)
  build_variable_size_dataset(
    str(tmp_path), name="fashion_mnist", version=version, image_shape=(28, 28, 1), num_classes=10, png=True
  )
  mnist = _write_labels_beginning(tmp_path, *LABELS_BEGIN["mnist"].values())
  fashion = data.load_dataset(_config("fashion_mnist", tmp_path))
  assert isinstance(fashion.train, data.RecordSource) and len(fashion.train) == 60
  np.testing.assert_array_equal(
    data.load_dataset(_config("mnist", tmp_path)).train_labels, mnist["train_labels"]
  )


def test_subfolder_with_some_idx_files_is_refused_not_read_as_tfds(tmp_path):
  """A fashion_mnist/ subfolder missing an IDX file is named as such, even with all four files beside it."""
  write_idx_folder(tmp_path)
  (tmp_path / "fashion_mnist").mkdir()
  write_idx_folder(tmp_path / "fashion_mnist")
  os.remove(tmp_path / "fashion_mnist" / "train-images-idx3-ubyte.gz")
  with pytest.raises(HFFError, match=r"fashion_mnist lacks train-images-idx3-ubyte.gz; put all four"):
    data.load_dataset(_config("fashion_mnist", tmp_path))


def test_labels_of_one_class_are_refused(tmp_path):
  write_idx_folder(tmp_path, max_label=0)
  with pytest.raises(HFFError, match=r"^fashion_mnist has labels of 1 class; a classifier needs at least 2"):
    data.load_dataset(_config("fashion_mnist", tmp_path))


def test_missing_file_is_named(tmp_path):
  write_idx_folder(tmp_path)
  os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
  with pytest.raises(HFFError, match="t10k-labels-idx1-ubyte.gz"):
    data.load_dataset(_config("fashion_mnist", tmp_path))


def test_truncated_file_is_refused(tmp_path):
  write_idx_folder(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  raw = gzip.decompress(path.read_bytes())
  path.write_bytes(gzip.compress(raw[:-100]))
  with pytest.raises(HFFError, match="truncated or corrupt"):
    data.load_dataset(_config("fashion_mnist", tmp_path))


def test_corrupt_gzip_is_refused(tmp_path):
  write_idx_folder(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:500])
  with pytest.raises(HFFError, match="corrupt"):
    data.load_dataset(_config("fashion_mnist", tmp_path))


def test_label_out_of_range_is_refused(tmp_path):
  write_idx_folder(tmp_path, max_label=12, seed=3)
  with pytest.raises(HFFError, match=r"outside \[0, 10\)"):
    data.load_dataset(_config("fashion_mnist", tmp_path))


def test_tfds_data_source_under_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load_dataset(_config("cifar10", ""))
    assert isinstance(ds.train, data.RecordSource)  # streamed, not materialised
    assert len(ds.train) == 20 and len(ds.test) == 20
    images, labels = ds.train.read(np.array([0, 3, 7]))
  assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
  assert ds.image_shape == (32, 32, 3)
  assert ds.num_classes == 10
  assert labels.dtype == np.int32


def test_unknown_dataset_is_refused():
  with pytest.raises(HFFError, match="unknown dataset"):
    data.load_dataset(_config("no_such_dataset_xyz", ""))


def test_synthetic_is_deterministic():
  c = _config("synthetic", "")
  a, b = data.load_dataset(c), data.load_dataset(c)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  assert a.image_shape == tuple(c.synthetic.image_shape)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
  p = data.epoch_permutation(3, 5, 100)
  np.testing.assert_array_equal(p, data.epoch_permutation(3, 5, 100))
  assert not np.array_equal(p, data.epoch_permutation(3, 6, 100))
  assert not np.array_equal(p, data.epoch_permutation(4, 5, 100))
  np.testing.assert_array_equal(np.sort(p), np.arange(100))


def test_train_batches_resume_mid_epoch():
  ds = data.make_synthetic(num_train=50, num_test=5, image_shape=(2, 2, 1), num_classes=3, seed=0)
  full = list(data.train_batches(ds, 8, seed=1, epoch=2))
  assert len(full) == 6  # 50 // 8; the remainder is dropped
  resumed = list(data.train_batches(ds, 8, seed=1, epoch=2, start_step=4))
  for (xa, ya), (xb, yb) in zip(full[4:], resumed, strict=True):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_eval_batches_cover_every_example_once():
  images = np.arange(23)[:, None, None, None].astype(np.uint8)
  labels = np.arange(23, dtype=np.int32)
  batches = list(data.eval_batches(images, labels, 10))
  assert [len(x) for x, _, _ in batches] == [10, 10, 10]
  seen = np.concatenate([y[m] for _, y, m in batches])
  np.testing.assert_array_equal(seen, labels)
