"""Early-exit inference: the definition (first block whose confidence is strictly above the threshold)."""

import jax
import numpy as np
import pytest

from hffjax.baselines import build_bp_model
from hffjax.config import base_config
from hffjax.errors import HFFError
from hffjax.models import build_model
from hffjax.train.predict import early_exit_reference

X = jax.random.uniform(jax.random.key(0), (16, 8, 8, 1), maxval=255.0)


def _model(kind="mlp"):
  c = base_config().model
  c.kind, c.widths, c.channels, c.pool = kind, (16, 12, 8), (4, 6, 8), (False, True, True)
  return build_model(c, input_shape=(8, 8, 1), num_classes=5, seed=0)


@pytest.mark.parametrize("confidence,top", [("softmax", 1.0), ("margin", 2.0)])
def test_threshold_bounds_pick_the_first_and_the_last_block(confidence, top):
  model = _model()
  logits = model(X)
  first, at = early_exit_reference(model, X, 0.0, confidence)
  if confidence == "softmax":  # every softmax maximum of 5 classes is above 0
    assert np.all(np.asarray(at) == 0)
    np.testing.assert_array_equal(first, np.argmax(logits[0], -1))
  last, at = early_exit_reference(model, X, top, confidence)  # nothing is strictly above the top
  assert np.all(np.asarray(at) == 2)
  np.testing.assert_array_equal(last, np.argmax(logits[-1], -1))


def test_each_example_leaves_at_its_first_confident_block():
  model = _model("cnn")
  logits = [np.asarray(jax.nn.softmax(s)) for s in model(X)]
  threshold = float(np.median(logits[1].max(-1)))
  classes, at = map(np.asarray, early_exit_reference(model, X, threshold))
  for i in range(len(X)):
    confident = [b for b in range(3) if logits[b][i].max() > threshold] + [2]
    assert at[i] == confident[0] and classes[i] == logits[at[i]][i].argmax()


def test_bad_early_exit_requests_are_one_line():
  model = _model()
  for threshold, confidence, fragment in (
    (1.5, "softmax", "[0, 1]"),
    (-0.1, "margin", "[0, 2]"),
    (0.5, "entropy", "use one of"),
  ):
    with pytest.raises(HFFError, match=fragment.replace("[", r"\[")):
      early_exit_reference(model, X, threshold, confidence)
  c = base_config().model
  c.widths = (16, 12)
  with pytest.raises(HFFError, match="classifier after every block"):
    early_exit_reference(build_bp_model(c, input_shape=(8, 8, 1), num_classes=5, seed=0), X, 0.5)


def test_batch_serving_and_batch_1_agree_with_the_definition_without_recompiling():
  from hffjax.train.early_exit import EarlyExit

  model = _model("cnn")
  images = np.asarray(jax.random.uniform(jax.random.key(3), (40, 8, 8, 1), maxval=255.0)).astype(np.uint8)
  threshold = float(np.median(np.asarray(jax.nn.softmax(model(images)[0])).max(-1)))
  want_classes, want_exits = map(np.asarray, early_exit_reference(model, images, threshold))
  assert 0 < (want_exits == 0).sum() < len(images)  # some leave early, some go on
  server = EarlyExit(model, threshold, max_bucket=8)
  classes, exits = server.predict([images[:13], images[13:20], images[20:]])  # uneven batches
  np.testing.assert_array_equal(classes, want_classes)
  np.testing.assert_array_equal(exits, want_exits)
  compiled = server.traces
  assert compiled <= 3 * len(server.buckets)
  # Another stream with other batch sizes (so other compaction) compiles nothing new.
  again = server.predict([images[i : i + 5] for i in range(0, 40, 5)])
  np.testing.assert_array_equal(again[0], want_classes)
  assert server.traces == compiled
  for i in range(0, 40, 7):
    assert server.predict_one(images[i]) == (want_classes[i], want_exits[i])
  server.warm()  # every bucket of every block: nothing compiles after this
  warmed = server.traces
  server.predict([images[:3]], 0.99)
  assert server.traces == warmed
  from hffjax import predict

  np.testing.assert_array_equal(predict(model, images, "early_exit", threshold=threshold), want_classes)
  flops = server.block_flops()
  assert len(flops) == 3 and all(f > 0 for f in flops)


def test_eval_early_exit_prints_the_curve_and_a_threshold_chosen_on_validation(tmp_path, capsys):
  import json
  import os

  from conftest import ROOT

  from hffjax.main import run

  workdir = str(tmp_path / "w")
  tiny = os.path.join(ROOT, "configs", "tiny.py")
  assert run(["train", "--config", tiny, "--workdir", workdir, "--config.validation_split=train[-64:]"]) == 0
  capsys.readouterr()
  assert run(["eval", "--workdir", workdir, "--early_exit", "--thresholds", "0.3,0.9,1.0"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert {"accuracy", "examples_per_second", "flops_per_example"} <= set(result["full"])
  rows = result["thresholds"]
  assert [r["threshold"] for r in rows] == [0.3, 0.9, 1.0]
  for r in rows:
    assert abs(sum(r["exit_fraction"]) - 1) < 1e-9 and 1 <= r["mean_blocks"] <= 2
  assert rows[-1]["mean_blocks"] == 2 and rows[-1]["accuracy"] == result["full"]["accuracy"]
  assert rows[0]["flops_per_example"] <= rows[1]["flops_per_example"] <= rows[2]["flops_per_example"]
  assert result["chosen"]["threshold"] in (0.3, 0.9, 1.0)
  assert run(["eval", "--workdir", workdir, "--early_exit", "--thresholds", "1.5"]) == 2
  assert "[0, 1]" in capsys.readouterr().err
  # `hffjax plot` draws the curve the last --early_exit evaluation saved.
  assert run(["plot", "--workdir", workdir]) == 0
  assert os.path.getsize(os.path.join(workdir, "plots", "early_exit.png")) > 0
