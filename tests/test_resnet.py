"""ResNet-style HFF: learners, locality through the real jitted step, and the convolutions it skips."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hffjax import sharding, train
from hffjax.config import base_config
from hffjax.data import make_synthetic
from hffjax.errors import HFFError
from hffjax.models import build_model

DS = make_synthetic(num_train=16, num_test=8, image_shape=(8, 8, 3), num_classes=5, seed=0)


def _config(learner="block", depth=10, method="hff", learner_blocks=()):
  c = base_config()
  c.method, c.batch_size, c.eval_batch_size = method, 8, 8
  c.model.kind, c.model.depth, c.model.width, c.model.learner = "resnet", depth, 4, learner
  c.model.learner_blocks = learner_blocks
  c.model.readout, c.model.interblock_norm = "grid", "rms"
  return c


@pytest.mark.parametrize(
  "learner,learner_blocks,depth,stem,num_learners,first_channels",
  [
    ("block", (), 10, "cifar", 4, 4),
    ("block", (), 18, "cifar", 8, 4),
    ("stage", (), 18, "cifar", 4, 4),
    ("stage", (), 34, "imagenet", 4, 4),
    ("groups", (4, 4), 18, "cifar", 2, 8),  # two stages per learner
    ("groups", (3, 5), 18, "cifar", 2, 8),  # a learner boundary inside the second stage
    ("groups", (1, 7), 18, "cifar", 2, 4),
  ],
)
def test_learners_and_readout_sizes(learner, learner_blocks, depth, stem, num_learners, first_channels):
  c = _config(learner, depth, learner_blocks=learner_blocks).model
  c.stem, c.readout = stem, "gap"
  model = build_model(c, input_shape=(16, 16, 3), num_classes=7, seed=0)
  assert model.num_blocks == num_learners
  if learner_blocks:
    assert [len(block.blocks) for block in model.blocks] == list(learner_blocks)
  # GAP read-outs have one value per channel; the last learner ends with the last stage (width x 8).
  assert model.heads[-1].prototypes.shape == (7, 32)
  assert model.heads[0].prototypes.shape == (7, first_channels)
  assert [s.shape for s in model(jnp.zeros((2, 16, 16, 3)))] == [(2, 7)] * num_learners


def test_bad_resnet_options_are_refused():
  for key, value, match in (
    ("depth", 50, "model.depth"),
    ("learner", "layer", "model.learner"),
    ("learner", "groups", "model.learner='groups' needs model.learner_blocks"),
    ("stem", "vit", "model.stem"),
    ("width", 0, "model.width"),
  ):
    c = _config().model
    c[key] = value
    with pytest.raises(HFFError, match=match):
      build_model(c, input_shape=(32, 32, 3), num_classes=5, seed=0)
  # Read-out sizes come from jax.eval_shape, which also finds pooling that leaves nothing.
  c = _config().model
  c.kind, c.channels, c.pool = "cnn", (4, 4, 4), (False, True, True)
  with pytest.raises(HFFError, match="too small"):
    build_model(c, input_shape=(2, 2, 3), num_classes=5, seed=0)


@pytest.mark.parametrize(
  "learner,learner_blocks,k", [("block", (), 0), ("block", (), 5), ("stage", (), 2), ("groups", (3, 5), 0)]
)
def test_only_the_weighted_learner_changes_in_a_real_step(learner, learner_blocks, k):
  """With λ = one-hot(k), one real jitted step (Adam, BatchNorm in train mode) moves learner k only.

  Adam turns an exactly-zero gradient into an exactly-zero update, so every
  other learner's parameters and prototypes stay bit-identical: no loss
  reaches a learner other than its own.
  """
  num_learners = {"block": 8, "stage": 4, "groups": len(learner_blocks)}[learner]
  images, labels = DS.train_images[:8], DS.train_labels[:8]
  c = _config(learner, depth=18, learner_blocks=learner_blocks)
  c.loss_weights = tuple(float(i == k) for i in range(num_learners))
  exp = train.setup(c, dataset=DS)
  before = jax.device_get(exp.initial_state.params)
  x, y = sharding.global_batch(exp.mesh, images, labels)
  state, _ = exp.train_fn()(exp.initial_state, x, y)
  after = jax.device_get(state.params)
  for j in range(num_learners):
    own = zip(
      jax.tree.leaves((before["blocks"][j], before["heads"][j])),
      jax.tree.leaves((after["blocks"][j], after["heads"][j])),
      strict=True,
    )
    changed = [not np.array_equal(a, b) for a, b in own]
    if j == k:
      # (Not all of them: the residual branch's last norm starts at zero scale, so its convolutions
      # get zero gradient on the first step.)
      assert any(changed), f"learner {k}: its parameters did not move with its own loss"
    else:
      assert not any(changed), f"learner {j} moved with learner {k}'s loss"


def _compiled_convolutions(method: str, learner: str, depth: int = 10, learner_blocks: tuple = ()) -> int:
  exp = train.setup(_config(learner, depth=depth, method=method, learner_blocks=learner_blocks), dataset=DS)
  x, y = sharding.global_batch(exp.mesh, DS.train_images[:8], DS.train_labels[:8])
  hlo = exp.train_fn().lower(exp.initial_state, x, y).compile().as_text()
  return len(re.findall(r"= \S+ convolution\(", hlo))


def test_hff_resnet_step_skips_input_gradients_at_learner_boundaries():
  """ResNet-10: 12 convolutions forward (stem, 4 blocks x 2, 3 projections), 12 weight gradients.

  Input gradients: backprop needs one for every convolution but the stem (11).
  HFF with a block per learner needs only those inside a learner: conv2's
  (for conv1's weights) in each block, and conv1's in the first learner (for
  the stem's) — 5; the 6 at the boundaries (conv1 and the projection of blocks
  2-4) are never computed. With a stage per learner the same holds, as each
  stage of ResNet-10 is one block.
  """
  bp = _compiled_convolutions("bp", "block")
  assert bp == 12 + 12 + 11
  assert _compiled_convolutions("hff", "block") == bp - 6
  assert _compiled_convolutions("hff", "stage") == bp - 6


def test_hff_resnet18_step_skips_input_gradients_at_block_or_stage_boundaries():
  """ResNet-18: 20 convolutions forward (stem, 8 blocks x 2, 3 projections), 20 weight gradients.

  Backprop computes 19 input gradients. A block per learner skips the 10 at
  block boundaries (conv1 of blocks 2-8, the 3 projections); a stage per
  learner only the 6 at stage boundaries (conv1 and the projection of the
  first block of stages 2-4), as the second block of a stage belongs to the
  first's learner.
  """
  bp = _compiled_convolutions("bp", "block", depth=18)
  assert bp == 20 + 20 + 19
  assert _compiled_convolutions("hff", "block", depth=18) == bp - 10
  assert _compiled_convolutions("hff", "stage", depth=18) == bp - 6


def test_grouped_learners_skip_input_gradients_only_at_their_boundaries():
  """ResNet-18 in two learners: ``(4, 4)`` splits at the start of stage 3, whose first block's conv1
  and projection get no input gradient (2); ``(3, 5)`` splits between the two blocks of stage 2,
  where only the second block's conv1 (no projection there) is skipped (1)."""
  bp = _compiled_convolutions("bp", "block", depth=18)
  assert _compiled_convolutions("hff", "groups", depth=18, learner_blocks=(4, 4)) == bp - 2
  assert _compiled_convolutions("hff", "groups", depth=18, learner_blocks=(3, 5)) == bp - 1


def test_bfloat16_program_convolves_in_bf16_and_classifies_in_float32():
  """model.dtype=bfloat16: every convolution of the step (forward and gradients) takes bf16 operands,
  while parameters, prototypes and the cosine logits (the prototype products) stay float32."""
  c = _config()
  c.model.dtype = "bfloat16"
  exp = train.setup(c, dataset=DS)
  x, y = sharding.global_batch(exp.mesh, DS.train_images[:8], DS.train_labels[:8])
  lines = exp.train_fn().lower(exp.initial_state, x, y).as_text().splitlines()

  def operand_types(line):
    return re.findall(r"tensor<[0-9x]*x(\w+)>", line.rsplit(": (", 1)[1].split(") ->")[0])

  convs = [operand_types(line) for line in lines if "stablehlo.convolution" in line]
  assert len(convs) == 12 + 12 + 5  # forward, weight gradients, input gradients inside learners (see above)
  assert all(types == ["bf16", "bf16"] for types in convs), convs
  # The cosine logits: products whose result is (batch 8, 5 classes), whatever their dtype.
  logits = [
    line for line in lines if "stablehlo.dot_general" in line and re.search(r"-> tensor<8x5x\w+>", line)
  ]
  assert logits and all(operand_types(line) == ["f32", "f32"] for line in logits)
  assert all(line.endswith("tensor<8x5xf32>") for line in logits)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(exp.initial_state.params))


@pytest.mark.parametrize("norm,biased", [("batch", False), ("layer", False), ("none", True)])
def test_convolutions_have_a_bias_only_without_a_norm(norm, biased):
  from flax import nnx

  c = _config().model
  c.norm = norm
  model = build_model(c, input_shape=(8, 8, 3), num_classes=5, seed=0)
  convs = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv)]
  assert len(convs) == 1 + 4 * 2 + 3  # stem, two per block, three projections
  assert all((conv.bias is not None) == biased for conv in convs)
