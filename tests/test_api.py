"""The Python API as the README shows it."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hffjax
from hffjax import predict, train_and_evaluate
from hffjax.errors import HFFError
from hffjax.io import writers
from hffjax.models.registry import resolve_builder
from hffjax.train import restore_experiment
from hffjax.train.evaluate import evaluate_split


def test_readme_api(tiny_config, tmp_path):
  tiny_config.num_epochs = 1
  result = train_and_evaluate(tiny_config, str(tmp_path))
  exp, state, step = restore_experiment(str(tmp_path))
  assert step == result["step"]
  model = exp.model(state)
  images = exp.dataset.test_images[:8]
  classes = predict(model, images, mode="ensemble")
  assert classes.shape == (8,) and classes.dtype == jnp.int32
  block_logits = model(images)
  assert [b.shape for b in block_logits] == [(8, 4), (8, 4)]
  np.testing.assert_array_equal(predict(model, images), np.argmax(block_logits[-1], -1))


class TwoLayer(nnx.Module):
  """A block written in the test: two dense layers, the second's input is the read-out."""

  def __init__(self, in_dim, width, *, rngs):
    self.a, self.b = nnx.Linear(in_dim, width, rngs=rngs), nnx.Linear(width, width, rngs=rngs)

  def __call__(self, x, *, train):
    h = nnx.relu(self.a(x.reshape(x.shape[0], -1)))
    return nnx.relu(self.b(h)), h


def two_layer_blocks(cfg, *, input_shape, rngs):
  dims = [int(np.prod(input_shape)), *cfg.widths]
  return [TwoLayer(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:], strict=True)]


def other_blocks(cfg, *, input_shape, rngs):
  return two_layer_blocks(cfg, input_shape=input_shape, rngs=rngs)


def test_train_and_evaluate_takes_a_block_builder(tiny_config, tmp_path):
  """model=builder: the run trains that model, resumes it, and restores it for evaluation."""
  workdir = str(tmp_path)
  tiny_config.num_epochs = 1
  first = train_and_evaluate(tiny_config, workdir, model=two_layer_blocks)
  assert tiny_config.model.kind == "mlp"  # the caller's config is left alone
  tiny_config.num_epochs = 2
  second = train_and_evaluate(tiny_config, workdir, model=two_layer_blocks)  # resumes at epoch 1
  assert [r["epoch"] for r in writers.read(os.path.join(workdir, writers.FILENAME))] == [1, 2]
  assert second["step"] == 2 * first["step"]
  exp, state, step = restore_experiment(workdir, model=two_layer_blocks)
  assert exp.config.model.kind == f"{__name__}:two_layer_blocks" and step == second["step"]
  assert all(isinstance(b, TwoLayer) for b in exp.model(state).blocks)
  again = evaluate_split(exp.eval_fn(), state, exp.dataset, "test", exp.mesh, exp.eval_batch_size)
  assert again["test_accuracy"] == second["test_accuracy"]
  with pytest.raises(HFFError, match="pass the builder it was trained with"):
    restore_experiment(workdir, model=other_blocks)


def test_a_script_builder_must_be_passed_again():
  with pytest.raises(HFFError, match="defined in the script that trained the run, which cannot be imported"):
    resolve_builder("__main__:build_blocks")
  with pytest.raises(HFFError, match="defined inside another function, which cannot be imported by name"):
    resolve_builder("my_package.models:make.<locals>.blocks")
  with pytest.raises(HFFError, match="is not a function"):
    train_and_evaluate(None, "unused", model="mlp")


def test_bfloat16_compute(tiny_config, tmp_path):
  tiny_config.num_epochs = 1
  tiny_config.model.dtype = "bfloat16"
  result = train_and_evaluate(tiny_config, str(tmp_path))
  assert np.isfinite(result["train_loss"]) and result["test_accuracy"] > 0.25


def test_public_names():
  for name in ("cosine_logits", "hff_block_loss", "HFFNet", "train_and_evaluate", "predict"):
    assert hasattr(hffjax, name)


def test_dependency_floors_are_the_pins_ci_tests():
  """pyproject.toml's floors equal .ci/floors.txt, the versions CI installs and tests."""
  import re

  from conftest import ROOT

  text = open(os.path.join(ROOT, "pyproject.toml")).read()
  deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
  floors = dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([^",]+)"', deps))
  pins = dict(
    line.split("==")
    for line in open(os.path.join(ROOT, ".ci", "floors.txt")).read().splitlines()
    if line.strip() and not line.startswith("#")
  )
  assert floors == pins
