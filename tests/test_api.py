"""The Python API as the README shows it."""

import os

import jax.numpy as jnp
import numpy as np

import hffjax
from hffjax import predict, train_and_evaluate
from hffjax.train import restore_experiment


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
