import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import ROOT

from hffjax import predict, sharding, train
from hffjax.data import train_batches
from hffjax.errors import HFFError
from hffjax.io import checkpoint as ckpt_lib


def test_learns_on_a_small_set(tiny_config, tmp_path):
  c = tiny_config
  c.synthetic.num_train = 2048
  c.synthetic.num_classes = 10
  c.num_epochs = 4  # 4 * 2048 / 32 = 256 steps
  result = train.train_and_evaluate(c, str(tmp_path), progress=False)
  assert result["step"] == 256
  assert result["test_accuracy"] > 0.6  # chance is 0.1
  assert len(result["layer_accuracy"]) == 2
  assert result["train_loss"] < 2 * np.log(10)


def test_evaluation_counts_every_example(tiny_config):
  exp = train.setup(tiny_config)
  eval_fn = exp.eval_fn()
  ds = exp.dataset
  result = train.evaluate(eval_fn, exp.initial_state, ds.test_images, ds.test_labels, exp.mesh, 64)
  model = exp.model(exp.initial_state)
  expected = np.mean(np.asarray(predict(model, ds.test_images)) == ds.test_labels)
  assert result["num_examples"] == 130  # 64 + 64 + a padded batch of 2
  assert result["test_accuracy"] == pytest.approx(expected, abs=1e-12)
  ens = np.mean(np.asarray(predict(model, ds.test_images, mode="ensemble")) == ds.test_labels)
  assert result["ensemble_accuracy"] == pytest.approx(ens, abs=1e-12)
  # An eval function of one's own need not count unreadable examples (the reader is asked instead).
  counts_only = jax.jit(lambda *a: {k: v for k, v in eval_fn(*a).items() if k != "unreadable"})
  again = train.evaluate(counts_only, exp.initial_state, ds.test_images, ds.test_labels, exp.mesh, 64)
  assert again["test_accuracy"] == result["test_accuracy"]


def test_predict_rejects_unknown_mode(tiny_config):
  exp = train.setup(tiny_config)
  with pytest.raises(HFFError, match="prediction mode"):
    predict(exp.model(exp.initial_state), exp.dataset.test_images[:4], mode="vote")


def test_checkpoint_round_trip(tiny_config, tmp_path):
  exp = train.setup(tiny_config)
  step_fn = exp.train_fn()
  state = jax.tree.map(lambda x: x.copy(), exp.initial_state)
  x, y = next(train_batches(exp.dataset, 32, 0, 0))
  state, _ = step_fn(state, *sharding.global_batch(exp.mesh, x, y))
  ckpts = ckpt_lib.Checkpoints(str(tmp_path), keep=2)
  ckpts.save(1, state.to_dict(), {"epoch_meter": {"steps": 1}})
  ckpts.wait()
  step, restored, meta = ckpts.restore(exp.abstract_state())
  ckpts.close()
  assert step == 1 and meta["epoch_meter"] == {"steps": 1}
  assert meta["fingerprint"] == ckpt_lib.fingerprint(state.to_dict())
  for a, b in zip(jax.tree.leaves(state.to_dict()), jax.tree.leaves(restored), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert int(restored["step"]) == 1


def test_restore_into_a_different_model_is_refused(tiny_config, tmp_path):
  exp = train.setup(tiny_config)
  ckpts = ckpt_lib.Checkpoints(str(tmp_path))
  ckpts.save(0, exp.initial_state.to_dict())
  ckpts.wait()
  tiny_config.model.widths = (16, 16)
  other = train.setup(tiny_config)
  with pytest.raises(HFFError, match="does not match"):
    ckpts.restore(other.abstract_state())
  ckpts.close()


SHARDED = textwrap.dedent(
  """
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import numpy as np
    from hffjax import sharding, train
    from hffjax.config import load_config
    from hffjax.data import train_batches

    assert jax.device_count() == 8
    for kind in ("mlp", "cnn"):
      c = load_config("configs/tiny.py")
      c.model.kind = kind
      c.model.channels = (4, 8)
      c.model.pool = (False, True)
      c.augment_flip = kind == "cnn"
      finals = []
      for devices in (jax.devices()[:1], jax.devices()):
        exp = train.setup(c, mesh=sharding.make_mesh(devices))
        step, state = exp.train_fn(), exp.initial_state
        for x, y in list(train_batches(exp.dataset, c.batch_size, c.seed, 0))[:3]:
          gx, gy = sharding.global_batch(exp.mesh, x, y)
          assert len(gx.sharding.device_set) == len(devices)
          state, metrics = step(state, gx, gy)
        finals.append(jax.device_get(state.to_dict()))
      for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
      print(kind, "equal")
    """
)


def test_sharded_step_on_8_devices_equals_1_device():
  env = {**os.environ, "XLA_FLAGS": ""}
  proc = subprocess.run(
    [sys.executable, "-c", SHARDED], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "mlp equal" in proc.stdout and "cnn equal" in proc.stdout


def test_random_shift_translates_with_black_fill():
  from hffjax.train import random_shift

  images = np.arange(1, 2 * 6 * 6 + 1, dtype=np.uint8).reshape(2, 6, 6, 1)
  shifted = np.asarray(random_shift(jax.random.key(3), images, 2))
  assert shifted.shape == images.shape and shifted.dtype == np.uint8
  for original, moved in zip(images, shifted, strict=True):
    # Every kept pixel comes from the original at one offset within ±2; the rest is black.
    matches = [
      (dy, dx)
      for dy in range(-2, 3)
      for dx in range(-2, 3)
      if np.array_equal(
        moved, np.roll(np.pad(original, ((2, 2), (2, 2), (0, 0))), (dy, dx), (0, 1))[2:-2, 2:-2]
      )
    ]
    assert len(matches) == 1


def test_step_based_schedule_top5_and_validation_records(tiny_config, tmp_path):
  from hffjax.io import writers

  c = tiny_config
  c.synthetic.num_classes, c.synthetic.num_train = 25, 512
  c.num_steps, c.eval_every_steps, c.validation_split = 20, 6, "train[-64:]"
  result = train.train_and_evaluate(c, str(tmp_path), progress=False)
  records = writers.read(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in records] == [6, 12, 18, 20]  # every 6 steps, and at the end
  assert [r["epoch"] for r in records] == [0.4286, 0.8571, 1.2857, 1.4286]  # (512 - 64) // 32 = 14 per epoch
  for r in records:
    assert (
      r["top5_accuracy"] >= r["test_accuracy"] and r["validation_top5_accuracy"] >= r["validation_accuracy"]
    )
    assert len(r["validation_layer_accuracy"]) == 2 and r["steps_per_second"] > 0
  assert result["step"] == 20
  assert train.evaluate_workdir(str(tmp_path))["epoch"] == records[-1]["epoch"]  # eval counts epochs alike
  assert len(os.listdir(tmp_path / "tensorboard")) == 1


def test_checkpoint_from_a_newer_format_is_refused_and_the_old_one_restores(tiny_config, tmp_path):
  exp = train.setup(tiny_config)
  ckpts = ckpt_lib.Checkpoints(str(tmp_path), keep=3)
  ckpts.save(1, exp.initial_state.to_dict())
  ckpts.wait()
  # A format-1 checkpoint (hffjax 0.1: no format_version in its meta) holds the same state tree.
  meta_path = tmp_path / "checkpoints" / "1" / "meta" / "metadata"
  meta = json.loads(meta_path.read_text())
  del meta["format_version"]
  meta_path.write_text(json.dumps(meta))
  step, _, restored_meta = ckpts.restore(exp.abstract_state())
  assert step == 1 and "format_version" not in restored_meta
  meta["format_version"] = ckpt_lib.FORMAT_VERSION + 1
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(
    HFFError, match=rf"checkpoint format {ckpt_lib.FORMAT_VERSION + 1}; this one reads up to"
  ):
    ckpts.restore(exp.abstract_state())
  ckpts.close()


def test_per_channel_statistics_are_kept_with_the_run(tiny_config, tmp_path):
  c = tiny_config
  c.synthetic.image_shape, c.num_epochs = (8, 8, 3), 1
  train.train_and_evaluate(c, str(tmp_path), progress=False)
  saved = json.loads((tmp_path / "data.json").read_text())
  ds = train.setup(c).dataset
  pixels = ds.train_images.reshape(-1, 3).astype(np.float64) / 255.0  # 256 records: all of them
  np.testing.assert_allclose(saved["pixel_mean"], pixels.mean(0), rtol=1e-9)
  np.testing.assert_allclose(saved["pixel_std"], pixels.std(0), rtol=1e-6)
  exp, _, _ = train.restore_experiment(str(tmp_path))
  assert exp.pixel_stats == (tuple(saved["pixel_mean"]), tuple(saved["pixel_std"]))


def test_workdir_written_by_hffjax_0_1_restores(tiny_config, tmp_path, capsys):
  from hffjax.main import run

  c = tiny_config
  c.num_epochs = 1
  result = train.train_and_evaluate(c, str(tmp_path), progress=False)
  # What 0.1 left behind: no keys added since in config.json, no statistics in data.json, and
  # checkpoints without a format version.
  config = json.loads((tmp_path / "config.json").read_text())
  for key in ("validation_split", "classes", "image_size", "pixel_mean", "pixel_std", "num_steps"):
    del config[key]
  (tmp_path / "config.json").write_text(json.dumps(config))
  data_info = json.loads((tmp_path / "data.json").read_text())
  (tmp_path / "data.json").write_text(json.dumps({k: data_info[k] for k in ("image_shape", "num_classes")}))
  meta_path = tmp_path / "checkpoints" / str(result["step"]) / "meta" / "metadata"
  meta = json.loads(meta_path.read_text())
  del meta["format_version"]
  meta_path.write_text(json.dumps(meta))

  assert run(["eval", "--workdir", str(tmp_path)]) == 0
  evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert evaluated["step"] == result["step"]
  assert evaluated["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
  # And training resumes it (the same config), rather than refusing it as another run.
  c.num_epochs = 2
  assert train.train_and_evaluate(c, str(tmp_path), progress=False)["step"] == 2 * result["step"]


def test_call_sizes_never_cross_an_evaluation_or_checkpoint_step():
  from hffjax.train.loop import call_sizes

  assert call_sizes(0, 16, 3, (8, 0)) == [3, 3, 2, 3, 3, 2]
  assert call_sizes(5, 16, 8, (8, 6)) == [1, 2, 4, 4]  # stops at 6, 8, 12 and 16
  assert call_sizes(0, 16, 1, (8,)) == [1] * 16


def test_fused_steps_per_call_equal_single_steps(tiny_config, tmp_path):
  """K steps per call (a lax.scan), with or without the split on the device, train the same parameters.

  16 steps, evaluated every 8: K = 3 also runs the short calls (3, 3, 2) that stop at evaluations.
  """
  c = tiny_config
  c.augment_shift, c.augment_flip = 1, True  # keyed by the step, also inside the scan
  prints, records = {}, {}
  for k, on_device in ((1, False), (3, False), (8, False), (8, True), (1, True)):
    c.steps_per_call, c.data_on_device = k, on_device
    record, _, state = train.fit(c, str(tmp_path / f"k{k}{on_device}"), progress=False)
    prints[k, on_device] = ckpt_lib.fingerprint(state.params)
    records[k, on_device] = record
  assert len(set(prints.values())) == 1, prints
  for record in records.values():
    assert record["step"] == 16
    assert record["train_loss"] == pytest.approx(records[1, False]["train_loss"], rel=1e-6)
    assert record["test_accuracy"] == records[1, False]["test_accuracy"]


def test_split_on_the_device_with_a_host_resize_is_refused_before_the_workdir(tiny_config, tmp_path):
  c = tiny_config
  c.data_on_device, c.image_size = True, 12  # 8x8 synthetic images would need resizing on the host
  with pytest.raises(
    HFFError, match=r"stored 8x8 images on the device, but image_size=12 needs them resized"
  ):
    train.fit(c, str(tmp_path / "run"), progress=False)
  assert not (tmp_path / "run" / "config.json").exists()
  c.data_on_device = False
  record, _, _ = train.fit(c, str(tmp_path / "run"), progress=False)
  assert record["step"] == 16
