"""Transfer learning: init_from loads a run's matching parameters, re-initialises heads, refuses mismatches; freeze."""

import os

import jax
import numpy as np
import pytest
from conftest import ROOT

from hffjax import train
from hffjax.config import load_config
from hffjax.data import make_synthetic
from hffjax.errors import HFFError
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
