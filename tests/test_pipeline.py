"""The input pipeline: order as a pure function of (seed, step), per-process shards, streamed TFDS data."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

from hffjax import data
from hffjax.config import base_config
from hffjax.errors import HFFError
from hffjax.main import run

tfds = pytest.importorskip("tensorflow_datasets")
from tfds_fixture import build_variable_size_dataset, unlabelled_positions  # noqa: E402

TINY = os.path.join(ROOT, "configs", "tiny.py")


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_shards_are_disjoint_and_cover_each_global_batch(processes):
  orders = [
    data.TrainOrder(100, 8, seed=3, process_index=p, process_count=processes) for p in range(processes)
  ]
  assert orders[0].steps_per_epoch == 12  # 100 // 8: the remainder of each epoch is dropped
  epoch_records = []
  for step in range(24):
    shards = [o.local_indices(step) for o in orders]
    joined = np.concatenate(shards)
    assert len(set(joined.tolist())) == 8  # disjoint
    np.testing.assert_array_equal(joined, orders[0].global_indices(step))  # and they cover the batch
    epoch_records.append(joined)
  for epoch in (0, 1):
    seen = np.concatenate(epoch_records[12 * epoch : 12 * (epoch + 1)])
    assert len(set(seen.tolist())) == 96  # no record twice within an epoch
  assert not np.array_equal(epoch_records[0], epoch_records[12])  # each epoch has its own order


def test_order_is_a_pure_function_of_seed_and_step():
  a = data.TrainOrder(1000, 32, seed=5, process_index=1, process_count=2)
  b = data.TrainOrder(1000, 32, seed=5, process_index=1, process_count=2)
  for step in (0, 7, 31, 95, 400):
    np.testing.assert_array_equal(a.local_indices(step), b.local_indices(step))
  c = data.TrainOrder(1000, 32, seed=6, process_index=1, process_count=2)
  assert not np.array_equal(a.local_indices(3), c.local_indices(3))


def test_iterator_resumes_at_any_step_with_the_same_batches():
  ds = data.make_synthetic(num_train=64, num_test=8, image_shape=(4, 4, 1), num_classes=3, seed=0)
  order = data.TrainOrder(len(ds.train), 8, seed=1)
  full = list(data.train_iterator(ds, order, 0, 20))
  resumed = list(data.train_iterator(ds, order, 13, 20))
  for a, b in zip(full[13:], resumed, strict=True):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  # The same batches the in-memory helper gives, epoch by epoch.
  epoch1 = list(data.train_batches(ds, 8, seed=1, epoch=1))
  for (x, y), b in zip(epoch1, full[8:16], strict=True):
    np.testing.assert_array_equal(x, b["image"])
    np.testing.assert_array_equal(y, b["label"])


def test_iterator_with_worker_processes_gives_the_same_batches():
  ds = data.make_synthetic(num_train=64, num_test=8, image_shape=(4, 4, 1), num_classes=3, seed=0)
  order = data.TrainOrder(len(ds.train), 8, seed=1)
  threads = list(data.train_iterator(ds, order, 0, 10))
  workers = list(data.train_iterator(ds, order, 0, 10, workers=2))
  for a, b in zip(threads, workers, strict=True):
    np.testing.assert_array_equal(a["image"], b["image"])


def test_split_strings():
  assert data.split_range("train[-5000:]", 60000) == ("train", 55000, 60000)
  assert data.split_range("train[:10%]", 60000) == ("train", 0, 6000)
  assert data.split_range("test", 10) == ("test", 0, 10)
  for bad in ("train[5000]", "train[a:b]", "train[-5000:", ""):
    with pytest.raises(HFFError, match="does not parse"):
      data.parse_split(bad)
  with pytest.raises(HFFError, match="selects no records"):
    data.split_range("train[10:5]", 100)


def _config(**kw):
  c = base_config()
  c.dataset = "synthetic"
  c.synthetic.num_train, c.synthetic.num_test, c.synthetic.image_shape = 100, 20, (4, 4, 1)
  for k, v in kw.items():
    c[k] = v
  return c


def test_validation_is_carved_from_train_and_classes_are_relabelled():
  full = data.load_dataset(_config())
  ds = data.load_dataset(_config(validation_split="train[-30:]"))
  assert len(ds.train) == 70 and len(ds.validation) == 30
  np.testing.assert_array_equal(ds.validation.images, full.train.images[70:])
  np.testing.assert_array_equal(ds.train.images, full.train.images[:70])
  with pytest.raises(HFFError, match="must not be the test split"):
    data.load_dataset(_config(validation_split="test[:10]"))

  sub = data.load_dataset(_config(classes=(7, 2)))
  assert sub.num_classes == 2
  keep = np.isin(full.train.labels, [7, 2])
  np.testing.assert_array_equal(sub.train.images, full.train.images[keep])
  np.testing.assert_array_equal(sub.train.labels, np.where(full.train.labels[keep] == 7, 0, 1))
  with pytest.raises(HFFError, match="distinct labels"):
    data.load_dataset(_config(classes=(2, 2)))


def test_a_dataset_without_test_evaluates_validation_and_refuses_it_as_validation_split(tmp_path):
  build_variable_size_dataset(
    str(tmp_path), name="no_test", num_train=30, num_test=10, test_name="validation"
  )
  c = _config(dataset="no_test", data_dir=str(tmp_path), image_size=8)
  ds = data.load_dataset(c)
  assert (ds.test_split, len(ds.test)) == ("validation", 10)
  for spec in ("validation", "validation[:5]"):
    with pytest.raises(HFFError, match="no test split, so its validation split is evaluated as the test set"):
      data.load_dataset(
        _config(dataset="no_test", data_dir=str(tmp_path), image_size=8, validation_split=spec)
      )
  carved = data.load_dataset(
    _config(dataset="no_test", data_dir=str(tmp_path), image_size=8, validation_split="train[-6:]")
  )
  assert (len(carved.train), len(carved.validation), len(carved.test)) == (24, 6, 10)


def test_random_resized_crop_is_deterministic_and_independent_of_process_count(tmp_path):
  build_variable_size_dataset(str(tmp_path), num_train=40, num_test=10)
  c = _config(dataset="var_shapes", data_dir=str(tmp_path), image_size=12)
  ds = data.load_dataset(c)
  assert ds.train.image_shape is None and ds.image_shape == (12, 12, 3)
  one = data.TrainOrder(len(ds.train), 8, seed=0)
  two = [data.TrainOrder(len(ds.train), 8, seed=0, process_index=p, process_count=2) for p in (0, 1)]
  for step in (0, 3, 9):
    whole = data.pipeline.TrainBatch(ds.train, one, 12)(step)
    again = data.pipeline.TrainBatch(ds.train, one, 12)(step)
    halves = [data.pipeline.TrainBatch(ds.train, o, 12)(step) for o in two]
    assert whole["image"].shape == (8, 12, 12, 3) and whole["image"].dtype == np.uint8
    np.testing.assert_array_equal(whole["image"], again["image"])
    np.testing.assert_array_equal(whole["image"], np.concatenate([h["image"] for h in halves]))
  # 10 test records, one global batch of 16 over 8 processes: processes 5, 6 and 7 hold only padding.
  shares = [data.pipeline.EvalBatch(ds.test, 16, p, 8, 12)(0) for p in range(8)]
  assert all(s["image"].shape == (2, 12, 12, 3) for s in shares)
  assert [int(s["mask"].sum()) for s in shares] == [2, 2, 2, 2, 2, 0, 0, 0]
  fixed = data.pipeline.EvalBatch(ds.train.subset(np.arange(3)), 16, 7, 8, 0)
  with pytest.raises(HFFError, match="differ in size"):
    fixed(0)  # a streamed source of varying sizes needs image_size, even for an empty share
  batches = list(data.eval_iterator(ds, "test", 4))
  assert [int(b["mask"].sum()) for b in batches] == [4, 4, 2]
  assert all(b["image"].shape == (4, 12, 12, 3) for b in batches)


def test_variable_size_tfds_dataset_trains_through_the_cli(tmp_path, capsys):
  build_variable_size_dataset(str(tmp_path / "tfds"), num_train=96, num_test=30)
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "run")]
  argv += [f"--config.data_dir={tmp_path / 'tfds'}", "--config.dataset=var_shapes", "--config.image_size=16"]
  argv += ["--config.validation_split=train[-32:]", "--config.num_epochs=3", "--config.eval_batch_size=16"]
  assert run(argv) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert out["step"] == 6 and "validation_accuracy" in out  # (96 - 32) // 32 = 2 steps per epoch
  assert out["test_accuracy"] > 1 / 3 + 0.1  # colour tells the class
  assert run(["eval", "--workdir", str(tmp_path / "run")]) == 0


MEMORY = textwrap.dedent(
  """
  import resource, sys
  sys.path.insert(0, "tests")
  from hffjax import data
  from hffjax.config import base_config
  from tfds_fixture import build_variable_size_dataset
  n = int(sys.argv[1])
  build_variable_size_dataset(sys.argv[2], num_train=n, num_test=10, max_side=120)
  c = base_config()
  c.dataset, c.data_dir, c.image_size = "var_shapes", sys.argv[2], 32
  ds = data.load_dataset(c)
  order = data.TrainOrder(len(ds.train), 16, seed=0)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  images = sum(len(b["image"]) for b in data.train_iterator(ds, order, 0, order.steps_per_epoch))
  after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(images, (after - before) // 1024)
  """
)


def test_peak_host_memory_does_not_grow_with_the_number_of_records(tmp_path):
  growth = {}
  for n in (160, 1600):  # stored, the larger split holds ~30 MB of pixels
    proc = subprocess.run(
      [sys.executable, "-c", MEMORY, str(n), str(tmp_path / str(n))],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    images, mib = map(int, proc.stdout.split()[-2:])
    assert images == n // 16 * 16
    growth[n] = mib
  assert growth[1600] <= growth[160] + 8, growth  # MiB; reading every record once must not keep them


def test_tfds_bad_input_is_one_line(tmp_path, capsys):
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "w"), f"--config.data_dir={tmp_path}"]
  assert run([*argv, "--config.dataset=cifar10"]) == 2  # a TFDS builder, not prepared there
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "not prepared" in err[0] and f"tfds build cifar10 --data_dir {tmp_path}" in err[0]
  # Downloading is off: the message says where it looked, not what it failed to fetch.
  assert f"looked for {tmp_path}/cifar10/" in err[0] and "download" not in err[0].lower()
  assert run([*argv, "--config.dataset=var_shapes", "--config.image_size=8"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "unknown dataset 'var_shapes'" in err[0] and str(tmp_path) in err[0]

  build_variable_size_dataset(str(tmp_path), num_train=40, num_test=10)
  capsys.readouterr()  # the builder's progress output
  assert run([*argv, "--config.dataset=var_shapes"]) == 2
  assert "set --config.image_size" in capsys.readouterr().err
  assert (
    run([*argv, "--config.dataset=var_shapes", "--config.image_size=8", "--config.validation_split=val"]) == 2
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "has no split 'val'" in err[0] and "train" in err[0]
  assert run([*argv, "--config.dataset=var_shapes", "--config.validation_split=train[1:"]) == 2
  assert "does not parse" in capsys.readouterr().err


def test_an_unlabelled_tfds_split_is_refused_before_training(tmp_path, capsys):
  build_variable_size_dataset(str(tmp_path), num_train=40, num_test=10, unlabelled_test=True)
  capsys.readouterr()  # the builder's progress output
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "w"), f"--config.data_dir={tmp_path}"]
  assert run([*argv, "--config.dataset=var_shapes", "--config.image_size=8"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "record 0 of TFDS var_shapes test has label -1, outside [0, 3)" in err[0]
  assert not (tmp_path / "w").exists()
  # A label out of range further into a split is refused as its record is read, not taken for a class.
  ds = data.sources.load_tfds_dataset("var_shapes", str(tmp_path), test_split="train")
  ds.train.source = [*(ds.train.source[i] for i in range(3)), {**ds.train.source[3], "label": 3}]
  assert [ds.train.record(i)[1] for i in range(3)] == [int(r["label"]) for r in ds.train.source[:3]]
  with pytest.raises(HFFError, match="record 3 of a streamed split has label 3, outside"):
    ds.train.record(3)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_record_mid_training_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, workers):
  """Read by grain's reader thread or by a worker process, a bad label deep in the train split stops
  the run with one line naming the record and the checkpoint that is kept; nothing later is saved."""
  build_variable_size_dataset(str(tmp_path), num_train=96, num_test=10, bad_label_at=69)
  capsys.readouterr()
  (position,) = unlabelled_positions(str(tmp_path))
  order = data.TrainOrder(96, 32, 0)
  step = next(s for s in range(9) if position in order.local_indices(s))
  assert step >= 1
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "w"), f"--config.data_dir={tmp_path}"]
  argv += ["--config.dataset=var_shapes", "--config.image_size=8", "--config.num_epochs=3"]
  argv += ["--config.checkpoint_every_steps=1", f"--config.data_workers={workers}"]
  argv += ["--config.pixel_mean=(0.5, 0.5, 0.5)", "--config.pixel_std=(0.25, 0.25, 0.25)"]
  assert run(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert f"record {position} of TFDS var_shapes train has label -1" in err[-1], err[-1]
  assert err[-1].endswith(f"checkpoint {step} in {tmp_path / 'w' / 'checkpoints'} is kept"), err[-1]
  saved = sorted(int(p.name) for p in (tmp_path / "w" / "checkpoints").iterdir() if p.name.isdigit())
  assert saved[-1] == step


class _FailingRecords(list):
  """Stored records, the ones at ``bad`` raising a storage error when read."""

  def __init__(self, items, bad):
    super().__init__(items)
    self.bad = set(bad)

  def __getitem__(self, i):
    if i in self.bad:
      raise OSError(f"read failed at {i}")
    return super().__getitem__(i)


def _streamed_dataset(num_train, num_test, *, bad_test=()):
  rng = np.random.default_rng(0)

  def split(n, bad):
    items = [{"image": rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), "label": i % 4} for i in range(n)]
    return data.RecordSource(_FailingRecords(items, bad), (8, 8, 1), num_classes=4)

  return data.Dataset("records", split(num_train, ()), split(num_test, bad_test), num_classes=4)


def test_a_bad_test_record_at_an_evaluation_names_the_step_and_the_checkpoint_that_is_kept(tmp_path):
  """The training state of the evaluated step is not saved (its record could not be written), so a
  re-run trains that interval again; the last checkpoint before it is named and kept."""
  from hffjax.config import load_config
  from hffjax.train import fit

  config = load_config("tiny")  # batch 32: 8 steps per epoch of 256
  config.num_epochs, config.checkpoint_every_steps = 2, 3
  config.pixel_mean, config.pixel_std = (0.5,), (0.25,)
  workdir = tmp_path / "w"
  with pytest.raises(HFFError) as e:
    fit(config, str(workdir), dataset=_streamed_dataset(256, 70, bad_test=(65,)), progress=False)
  assert str(e.value).startswith(
    "record 65 of a streamed split could not be read: OSError: read failed at 65"
  )
  assert str(e.value).endswith(f"(evaluating step 8); checkpoint 6 in {workdir / 'checkpoints'} is kept")
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == [3, 6]
  assert not (workdir / "metrics.jsonl").exists() or not (workdir / "metrics.jsonl").read_text().strip()


@pytest.mark.parametrize("on_device", [False, True])
def test_a_negative_label_in_memory_stops_training_with_the_kept_checkpoint(tmp_path, on_device):
  """Labels < 0 that no reader failed on (an in-memory split, on the host or on the device) stop
  training at the next metrics fetch, and evaluation, each with one line."""
  from hffjax.config import load_config
  from hffjax.train import fit

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (256, 8, 8, 1), dtype=np.uint8)
  labels = (np.arange(256) % 4).astype(np.int32)
  order = data.TrainOrder(256, 32, 0)
  bad = labels.copy()
  bad[order.global_indices(4)[0]] = -1
  config = load_config("tiny")
  config.num_epochs, config.checkpoint_every_steps, config.data_on_device = 1, 2, on_device
  config.pixel_mean, config.pixel_std = (0.5,), (0.25,)
  test = data.ArraySource(images[:40], labels[:40])
  ds = data.Dataset("arrays", data.ArraySource(images, bad), test, num_classes=4)
  workdir = tmp_path / "w"
  with pytest.raises(
    HFFError, match=r"^1 training example up to step \d+ has a negative label; checkpoint 4 in "
  ):
    fit(config, str(workdir), dataset=ds, progress=False)
  assert max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == 4
  bad_test = labels[:40].copy()
  bad_test[[3, 39]] = -1
  ds = data.Dataset(
    "arrays", data.ArraySource(images, labels), data.ArraySource(images[:40], bad_test), num_classes=4
  )
  with pytest.raises(HFFError, match=r"^the test split has 2 examples with a negative label; fix the labels"):
    fit(config, str(tmp_path / "w2"), dataset=ds, progress=False)


def test_a_record_that_does_not_decode_or_has_another_shape_is_named():
  class Records(list):
    def __getitem__(self, i):
      if i == 1:
        raise ValueError("corrupt zlib stream")
      return super().__getitem__(i)

  good = {"image": np.zeros((5, 4, 3), np.uint8), "label": 0}
  source = data.RecordSource(
    Records([good, good, {"image": np.zeros((5, 4), np.uint8), "label": 1}]), None, channels=3, num_classes=2
  )
  assert source.record(0)[0].shape == (5, 4, 3)
  with pytest.raises(HFFError, match=r"^record 1 of a streamed split could not be read: ValueError: corrupt"):
    source.record(1)
  with pytest.raises(
    HFFError, match=r"record 2 of a streamed split has an image of shape \(5, 4, 1\), not \(H, W, 3\)"
  ):
    source.record(2)
  fixed = data.RecordSource([good, {"image": np.zeros((4, 4, 3), np.uint8), "label": 1}], (5, 4, 3))
  with pytest.raises(HFFError, match=r"record 1 .* shape \(4, 4, 3\), not \(5, 4, 3\); fix the data"):
    fixed.read(np.array([0, 1]))
  # The labels-only pass (config.classes) names a record it cannot read, or one without a label.
  with pytest.raises(HFFError, match=r"^record 1 of a streamed split could not be read: ValueError: corrupt"):
    source.stored_labels()
  unlabelled = data.RecordSource([good, {"image": good["image"]}], (5, 4, 3), num_classes=2)
  with pytest.raises(HFFError, match=r"^record 1 of a streamed split could not be read: KeyError: 'label'"):
    unlabelled.record(1)


def test_guarded_batches_stand_in_after_a_failure_and_keep_count():
  def batches():
    yield {"label": np.array([1, 2])}
    raise OSError("disk gone")

  stand_in = {"label": np.full(2, data.UNREADABLE, np.int32)}
  guard = data.GuardedBatches(batches(), 4, stand_in, "training batches")
  labels = [b["label"].tolist() for b in guard]
  assert labels == [[1, 2], [-1, -1], [-1, -1], [-1, -1]]
  assert isinstance(guard.error, HFFError) and isinstance(guard.error.__cause__, OSError)
  assert str(guard.error) == "reading training batches failed: OSError: disk gone"


def test_dataset_prepared_as_tfrecord_is_refused_with_the_command_to_prepare_it(tmp_path, capsys):
  # Writing real tfrecord files needs TensorFlow; a tfrecord-prepared folder differs from an
  # ArrayRecord one by its file names and the fileFormat in dataset_info.json, which is what TFDS reads.
  build_variable_size_dataset(str(tmp_path), name="var_tfr", num_train=40, num_test=10)
  folder = tmp_path / "var_tfr" / "1.0.0"
  for f in folder.iterdir():
    if ".array_record-" in f.name:
      f.rename(folder / f.name.replace(".array_record-", ".tfrecord-"))
  info = folder / "dataset_info.json"
  info.write_text(info.read_text().replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))
  capsys.readouterr()  # the builder's progress output
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "w"), f"--config.data_dir={tmp_path}"]
  assert run([*argv, "--config.dataset=var_tfr", "--config.image_size=8"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "prepared as tfrecord" in err[0]
  assert f"tfds build var_tfr --data_dir {tmp_path} --file_format=array_record" in err[0]


def test_class_subset_of_a_streamed_tfds_dataset(tmp_path):
  build_variable_size_dataset(str(tmp_path), num_train=30, num_test=12)
  c = _config(dataset="var_shapes", data_dir=str(tmp_path), image_size=8, classes=(2, 0))
  full = data.load_dataset(_config(dataset="var_shapes", data_dir=str(tmp_path), image_size=8))
  sub = data.load_dataset(c)
  assert sub.num_classes == 2 and len(sub.train) == 20 and len(sub.test) == 8  # labels cycle 0, 1, 2
  stored = full.train.stored_labels()
  kept = np.flatnonzero(stored != 1)
  for j, i in enumerate(kept):
    image, label = sub.train.record(j)
    np.testing.assert_array_equal(image, full.train.record(i)[0])
    assert label == {2: 0, 0: 1}[int(stored[i])]
