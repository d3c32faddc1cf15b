"""Transfer learning: init_from loads a run's matching parameters, re-initialises heads, refuses mismatches; freeze."""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import ROOT

from hffjax import train
from hffjax.config import load_config
from hffjax.data import make_synthetic
from hffjax.errors import HFFError
from hffjax.io.workdir import source_pixel_stats
from hffjax.models.pretrained import load_pretrained
from hffjax.train.loop import evaluate_workdir

FOUR = make_synthetic(num_train=256, num_test=64, image_shape=(8, 8, 1), num_classes=4, seed=0)
THREE = make_synthetic(num_train=256, num_test=64, image_shape=(8, 8, 1), num_classes=3, seed=1)


@pytest.fixture
def bp_source(tmp_path):
  c = load_config(os.path.join(ROOT, "configs", "tiny.py"))
  c.method, c.num_epochs = "bp", 1
  train.fit(c, str(tmp_path / "bp"), dataset=FOUR, progress=False)
  return str(tmp_path / "bp")


def test_backprop_backbone_loads_heads_reinitialised_and_frozen_learner_kept(
  tiny_config, tmp_path, bp_source, capsys
):
  source = train.restore_experiment(bp_source)[1].params
  c = tiny_config
  c.init_from, c.freeze = bp_source, (0,)
  _, exp, state = train.fit(c, str(tmp_path / "hff"), dataset=THREE, progress=False)
  report = capsys.readouterr().out
  # 4 block arrays loaded of 4 + 2 prototype arrays; heads are new (the source has a linear head).
  assert "loaded 4 of 6 arrays" in report
  assert "re-initialised heads.0, heads.1" in report and "not used from the source: head" in report
  # Images are normalised as the source's were (its BatchNorm statistics and frozen features expect them).
  assert "images normalised with its pixel statistics" in report
  saved = [json.loads((tmp_path / w / "data.json").read_text()) for w in ("bp", "hff")]
  assert saved[1]["pixel_mean"] == saved[0]["pixel_mean"] and saved[1]["pixel_std"] == saved[0]["pixel_std"]
  assert not np.allclose(saved[1]["pixel_mean"], THREE.pixel_stats()[0])
  params = jax.device_get(state.params)
  for name in ("kernel", "bias"):
    np.testing.assert_array_equal(params["blocks"][0]["linear"][name], source["blocks"][0]["linear"][name])
    assert not np.array_equal(params["blocks"][1]["linear"][name], source["blocks"][1]["linear"][name])
  # The frozen block has no optimizer state at all.
  trained_only = sum(x.size for x in jax.tree.leaves(state.opt_state))
  c.freeze, c.init_from = (), ""
  unfrozen = train.setup(c, dataset=THREE).initial_state.opt_state
  frozen_size = sum(x.size for x in jax.tree.leaves(params["blocks"][0]))
  assert trained_only == sum(x.size for x in jax.tree.leaves(unfrozen)) - 2 * frozen_size  # Adam's mu and nu


def test_other_class_count_reinitialises_prototypes_and_fingerprints_show_what_changed(tiny_config, tmp_path):
  c = tiny_config
  c.num_epochs = 1
  train.fit(c, str(tmp_path / "src"), dataset=FOUR, progress=False)
  c.init_from, c.freeze = str(tmp_path / "src"), (0,)
  train.fit(c, str(tmp_path / "dst"), dataset=FOUR, progress=False)
  src, dst = evaluate_workdir(str(tmp_path / "src")), evaluate_workdir(str(tmp_path / "dst"))
  assert src["learner_fingerprints"][0] == dst["learner_fingerprints"][0]  # frozen block
  assert src["learner_fingerprints"][1] != dst["learner_fingerprints"][1]
  # The frozen learner's prototype head still trained.
  heads = [
    train.restore_experiment(str(tmp_path / w))[1].params["heads"][0]["prototypes"] for w in ("src", "dst")
  ]
  assert not np.array_equal(*heads)
  # A checkpoint folder works as well as a workdir; 3 classes here vs 4 there: prototypes re-initialised.
  step_dir = str(tmp_path / "src" / "checkpoints" / str(src["step"]))
  c.init_from, c.freeze = step_dir, ()
  exp = train.setup(c, dataset=THREE)
  _, line = exp.pretrained_state()
  assert "loaded 4 of 6 arrays" in line and "heads.0 (other class count)" in line
  # The source's statistics are found from a step folder (or its state/) as from the workdir.
  assert "images normalised with its pixel statistics" in line
  found = [source_pixel_stats(p, THREE) for p in (str(tmp_path / "src"), step_dir, f"{step_dir}/state/")]
  assert found[0] is not None and found[0] == found[1] == found[2] == exp.pixel_stats


def test_shape_mismatch_and_unreadable_sources_are_refused(tiny_config, tmp_path, bp_source):
  c = tiny_config
  c.init_from = bp_source
  c.model.widths = (32, 16)
  with pytest.raises(HFFError, match=r"blocks\.1\.linear\.bias has shape \(32,\) there but \(16,\) here"):
    train.setup(c, dataset=FOUR).pretrained_state()
  c.model.widths = (32, 32, 32)
  with pytest.raises(HFFError, match=r"has no array blocks\.2"):
    train.setup(c, dataset=FOUR).pretrained_state()
  c.model.widths, c.init_from = (32, 32), str(tmp_path / "nowhere")
  with pytest.raises(HFFError, match="does not exist"):
    train.setup(c, dataset=FOUR).pretrained_state()
  (tmp_path / "junk").mkdir()
  c.init_from = str(tmp_path / "junk")
  with pytest.raises(HFFError, match="not a readable checkpoint"):
    train.setup(c, dataset=FOUR).pretrained_state()
  c.init_from, c.freeze = bp_source, (2,)
  with pytest.raises(HFFError, match=r"freeze names learners \[2\]"):
    train.setup(c, dataset=FOUR)
  # A bad source is refused before the workdir is written: the corrected command then just runs.
  c.init_from, c.freeze, c.num_epochs = str(tmp_path / "nowhere"), (), 1
  with pytest.raises(HFFError, match="does not exist"):
    train.fit(c, str(tmp_path / "dst"), dataset=FOUR, progress=False)
  assert not (tmp_path / "dst" / "config.json").exists()
  c.init_from = bp_source
  record, _, _ = train.fit(c, str(tmp_path / "dst"), dataset=FOUR, progress=False)
  assert record["step"] == 8


def test_forward_forward_starts_from_a_backprop_backbone(tiny_config, bp_source):
  """FF's read-out is a head like the others: re-initialised when the source lacks it."""
  c = tiny_config
  c.method, c.init_from = "ff", bp_source
  _, line = train.setup(c, dataset=FOUR).pretrained_state()
  assert "loaded 4 of 6 arrays; re-initialised readout; not used from the source: head" in line


@pytest.mark.parametrize("damage", ["truncated", "other parameters"])
def test_a_damaged_newest_source_checkpoint_falls_back_to_an_older_one(tiny_config, tmp_path, capsys, damage):
  c = tiny_config
  train.fit(c, str(tmp_path / "src"), dataset=FOUR, progress=False)
  newest = tmp_path / "src" / "checkpoints" / "16"
  if damage == "truncated":  # every file: which one holds the parameters (not the optimizer's) varies
    for path in [p for p in (newest / "state").rglob("*") if p.is_file()]:
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  else:  # arrays that read but are not the ones saved: their fingerprint tells
    meta = newest / "meta" / "metadata"
    saved = json.loads(meta.read_text())
    saved["weights_fingerprint"] = "0" * 64
    meta.write_text(json.dumps(saved))
  capsys.readouterr()
  c.init_from = str(tmp_path / "src")
  _, line = train.setup(c, dataset=FOUR).pretrained_state()
  assert line.startswith(f"init_from {tmp_path / 'src'} (step 8): loaded 6 of 6 arrays")
  err = capsys.readouterr().err
  assert "checkpoint 16 is damaged" in err and "falling back to checkpoint 8" in err
  assert damage == "truncated" or "do not match the fingerprint" in err
  if damage == "other parameters":  # named directly, the step is refused rather than replaced
    c.init_from = str(newest)
    with pytest.raises(HFFError, match="do not match the fingerprint saved with them"):
      train.setup(c, dataset=FOUR).pretrained_state()


def test_a_source_read_that_fails_for_want_of_permission_is_an_error_not_a_fallback(
  tiny_config, tmp_path, capsys, monkeypatch
):
  import orbax.checkpoint as ocp

  c = tiny_config
  train.fit(c, str(tmp_path / "src"), dataset=FOUR, progress=False)
  read = ocp.CheckpointManager.restore

  def denied(self, step, *args, **kwargs):
    if step == 16:
      raise ValueError("PERMISSION_DENIED: Error reading /src/checkpoints/16/state/d/0")
    return read(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "restore", denied)
  capsys.readouterr()
  c.init_from = str(tmp_path / "src")
  with pytest.raises(HFFError, match=r"reading checkpoint 16 failed .*permission denied; fix that"):
    train.setup(c, dataset=FOUR).pretrained_state()
  assert "falling back" not in capsys.readouterr().err


def _save(path, prototypes, bias):
  tree = {
    "blocks": {"0": {"kernel": np.zeros((4, 8), np.float32)}},
    "heads": {"0": {"prototypes": prototypes}},
  }
  tree["head"] = {"bias": bias}
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(str(path), tree)
    checkpointer.wait_until_finished()
  return str(path)


def test_a_head_is_reinitialised_for_another_class_count_only(tmp_path):
  """Prototypes ``(classes, D)`` and a linear head's last axis may change with the class count; D may not."""
  params = {
    "blocks": {"0": {"kernel": np.ones((4, 8), np.float32)}},
    "heads": {"0": {"prototypes": np.ones((3, 8), np.float32)}},
    "head": {"bias": np.ones((3,), np.float32)},
  }
  five = _save(tmp_path / "five", np.zeros((5, 8), np.float32), np.zeros((5,), np.float32))
  loaded, _, report = load_pretrained(five, params, {})
  assert report.reinitialised == ["head (other class count)", "heads.0 (other class count)"]
  np.testing.assert_array_equal(loaded["blocks"]["0"]["kernel"], 0)  # loaded from the source
  np.testing.assert_array_equal(loaded["heads"]["0"]["prototypes"], 1)  # kept as initialised
  wider = _save(tmp_path / "wider", np.zeros((3, 16), np.float32), np.zeros((3,), np.float32))
  with pytest.raises(HFFError, match=r"heads\.0\.prototypes has shape \(3, 16\) there but \(3, 8\) here"):
    load_pretrained(wider, params, {})


def test_resnet_frozen_learners_keep_parameters_and_batchnorm_statistics(tmp_path, capsys):
  """A backprop ResNet backbone, two of four learners frozen: their BatchNorm runs in inference mode."""
  from hffjax.config import base_config

  def resnet(method):
    c = base_config()
    c.dataset, c.method, c.num_epochs, c.batch_size, c.eval_batch_size = "synthetic", method, 2, 8, 8
    c.model.kind, c.model.depth, c.model.width, c.model.learner = "resnet", 10, 4, "block"
    return c

  src_ds = make_synthetic(num_train=32, num_test=8, image_shape=(8, 8, 3), num_classes=5, seed=0)
  dst_ds = make_synthetic(num_train=32, num_test=8, image_shape=(8, 8, 3), num_classes=3, seed=1)
  _, _, source = train.fit(resnet("bp"), str(tmp_path / "bp"), dataset=src_ds, progress=False)
  c = resnet("hff")
  c.init_from, c.freeze = str(tmp_path / "bp"), (0, 1)
  capsys.readouterr()
  _, _, state = train.fit(c, str(tmp_path / "hff"), dataset=dst_ds, progress=False)
  out, err = capsys.readouterr()
  # The newest checkpoint passes its weights fingerprint (parameters and BatchNorm statistics).
  assert f"init_from {tmp_path / 'bp'} (step 8)" in out and "damaged" not in err
  for tree, before in ((state.params, source.params), (state.batch_stats, source.batch_stats)):
    after = jax.device_get(tree)["blocks"]
    before = jax.device_get(before)["blocks"]
    for i in (0, 1):
      jax.tree.map(np.testing.assert_array_equal, after[i], before[i])
    assert any(
      not np.array_equal(a, b)
      for a, b in zip(jax.tree.leaves(after[2]), jax.tree.leaves(before[2]), strict=True)
    )


def test_only_parameters_and_batch_statistics_are_read_from_a_training_state(bp_source):
  from hffjax.models import pretrained

  step, tree, _ = pretrained._read(bp_source)
  assert step == 8 and jax.tree.leaves(tree["params"])
  optimizer = jax.tree.leaves(tree["opt_state"], is_leaf=lambda x: x is ocp.PLACEHOLDER)
  assert optimizer and all(x is ocp.PLACEHOLDER for x in optimizer)
  params, batch_stats, _ = pretrained.read_checkpoint(bp_source)
  assert batch_stats == {}  # the tiny MLP has no BatchNorm
  source = train.restore_experiment(bp_source)[1]
  read, trained = pretrained._flat(params), pretrained._flat(jax.device_get(source.params))
  assert read.keys() == trained.keys()
  for key in read:
    np.testing.assert_array_equal(read[key], trained[key])


def _save_tree(path, tree):
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(str(path), tree)
    checkpointer.wait_until_finished()
  return str(path)


def test_report_names_exactly_what_was_reinitialised_and_left_unused(tmp_path):
  """A head's learned temperature and a deeper source's extra block are named, not whole heads."""
  ones = lambda *shape: np.ones(shape, np.float32)  # noqa: E731
  block = {"kernel": ones(4, 8)}
  fixed = {"blocks": {"0": block, "1": block}, "heads": {"0": {"prototypes": ones(3, 8)}}}
  learned = {"blocks": {"0": block}, "heads": {"0": {"prototypes": ones(3, 8), "log_scale": ones()}}}
  _, _, report = load_pretrained(_save_tree(tmp_path / "fixed", fixed), learned, {})
  assert report.reinitialised == ["heads.0.log_scale"] and report.unused == ["blocks.1"]
  assert report.loaded == 2 and report.total == 3
  _, _, report = load_pretrained(
    _save_tree(tmp_path / "learned", learned), fixed | {"blocks": {"0": block}}, {}
  )
  assert report.reinitialised == [] and report.unused == ["heads.0.log_scale"]


def test_batchnorm_source_and_target_must_agree_on_the_norm(tmp_path):
  ones = lambda *shape: np.ones(shape, np.float32)  # noqa: E731
  params = {"blocks": {"0": {"norm": {"scale": ones(4), "bias": ones(4)}}}}
  stats = {"blocks": {"0": {"norm": {"mean": ones(4), "var": ones(4)}}}}
  batch = _save_tree(tmp_path / "batch", {"params": params, "batch_stats": stats, "step": 3})
  # The same arrays would load into a LayerNorm's scale and bias: refused, not a silent change.
  with pytest.raises(
    HFFError, match=r"BatchNorm running statistics \(blocks\.0\.norm\.mean, \.\.\.\).*model\.norm"
  ):
    load_pretrained(batch, params, {})
  _, _, report = load_pretrained(batch, params, stats)
  assert report.loaded == report.total == 4
  # A source without running statistics cannot give a BatchNorm model its own.
  bare = _save_tree(tmp_path / "bare", params)
  with pytest.raises(HFFError, match="holds no batch statistics, but this model has BatchNorm"):
    load_pretrained(bare, params, stats)


def test_learner_fingerprints_have_one_entry_per_learner_in_order():
  from hffjax.io.checkpoint import fingerprint
  from hffjax.models.pretrained import learner_fingerprints

  first, third = {"kernel": np.ones((2, 2), np.float32)}, {"kernel": np.zeros((2, 2), np.float32)}
  hashes = learner_fingerprints({"blocks": {0: first, 2: third}, "heads": {}}, 3)  # block 1 has no parameters
  assert hashes == [fingerprint(first)[:16], fingerprint({})[:16], fingerprint(third)[:16]]
  assert len(set(hashes)) == 3


def test_freeze_beyond_a_resnets_learners_is_refused_by_the_config_check():
  """validate_config counts a ResNet's learners, so a bad freeze stops a run before anything loads or trains."""
  from hffjax.config import base_config, validate_config

  c = base_config()
  c.model.kind, c.model.depth, c.model.learner, c.model.learner_blocks = "resnet", 18, "groups", (4, 4)
  c.init_from, c.freeze = "runs/bp04", (0, 1)
  validate_config(c)
  c.freeze = (0, 2)
  with pytest.raises(HFFError, match=r"^freeze names learners \[2\] but the model has 2 \(0\.\.1\)$"):
    validate_config(c)
  c.model.learner, c.model.learner_blocks = "stage", ()
  validate_config(c)  # four stage learners: 2 is one
  c.freeze = (4,)
  with pytest.raises(HFFError, match=r"freeze names learners \[4\] but the model has 4 \(0\.\.3\)"):
    validate_config(c)
