"""Every shipped config loads, validates and builds a model whose training call traces, on data of its shape.

CIFAR and ImageNet cannot be read here, so their configs run on generated
data of the same shape and class count.
"""

import glob
import os

import jax
import jax.numpy as jnp
import pytest
from conftest import ROOT

from hffjax import train
from hffjax.config import load_config
from hffjax.data import make_synthetic

SHAPES = {
  "fashion_mnist": ((28, 28, 1), 10),
  "synthetic": (None, None),
  "cifar10": ((32, 32, 3), 10),
  "cifar100": ((32, 32, 3), 100),
  "imagenet2012": ((224, 224, 3), 1000),
}
CONFIGS = sorted(
  os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py")) if "__init__" not in p
)


def _like(c):
  shape, classes = SHAPES[c.dataset]
  if shape is None:
    shape, classes = tuple(c.synthetic.image_shape), c.synthetic.num_classes
  return make_synthetic(num_train=64, num_test=8, image_shape=shape, num_classes=classes, seed=0)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_and_its_training_call_traces(name):
  c = load_config(os.path.join(ROOT, "configs", f"{name}.py"))
  assert c.dataset in SHAPES, f"add {c.dataset}'s shape to this test"
  c.batch_size, c.eval_batch_size, c.validation_split, c.data_workers = 8, 8, "", 0
  exp = train.setup(c, dataset=_like(c))
  k = c.steps_per_call
  lead = (k, 8) if exp.stacked else (8,)
  images = jax.ShapeDtypeStruct((*lead, *exp.dataset.image_shape), jnp.uint8)
  labels = jax.ShapeDtypeStruct(lead, jnp.int32)
  _, metrics = jax.eval_shape(exp.train_fn(k), exp.initial_state, images, labels)
  assert metrics["block_loss"].shape == (exp.num_outputs,)


def test_cifar_config_trains_in_bf16_with_fused_calls(tmp_path):
  """The CIFAR-10 config (bf16, 8 steps per call) trains on generated CIFAR-shaped data, narrowed."""
  c = load_config(os.path.join(ROOT, "configs", "cifar10_resnet18.py"))
  c.model.width, c.model.depth, c.batch_size, c.eval_batch_size = 4, 10, 8, 8
  c.num_steps, c.eval_every_steps, c.validation_split, c.warmup_steps = 10, 10, "", 2
  c.steps_per_call = 4  # calls of 4, 4 and 2 steps
  ds = make_synthetic(num_train=64, num_test=16, image_shape=(32, 32, 3), num_classes=10, seed=0)
  record, exp, state = train.fit(c, str(tmp_path), dataset=ds, progress=False)
  assert record["step"] == 10 and len(record["layer_accuracy"]) == 4
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))  # parameters stay float32


def test_shipped_configs_are_found_by_name_from_anywhere(tmp_path, monkeypatch):
  from hffjax.config import find_config, shipped_configs
  from hffjax.errors import HFFError

  monkeypatch.chdir(tmp_path)  # outside the checkout
  assert shipped_configs() == CONFIGS
  for name in ("fashion_mnist_mlp", "fashion_mnist_mlp.py", "configs/fashion_mnist_mlp.py"):
    assert os.path.samefile(find_config(name), os.path.join(ROOT, "configs", "fashion_mnist_mlp.py"))
  assert load_config("fashion_mnist_resnet_bp").method == "bp"  # it loads its HFF twin by path
  with pytest.raises(HFFError, match="no shipped config of that name .*fashion_mnist_cnn"):
    find_config("fashion_mnist_transformer")
