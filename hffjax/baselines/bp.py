"""Backprop baseline: HFF's blocks trained end to end with one linear head."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import optax
from flax import nnx

from hffjax.models import BlockStack, build_blocks, output_shapes


class BPNet(BlockStack):
  """The same blocks without stop-gradient, a linear head on the last read-out, one global loss."""

  def __init__(self, blocks: Sequence[nnx.Module], num_classes: int, *, rngs: nnx.Rngs, **stack_kwargs):
    super().__init__(blocks, stop_gradient=False, **stack_kwargs)
    readout_dim = output_shapes(blocks, self.input_shape, self.interblock_norm)[-1][1][-1]
    self.head = nnx.Linear(readout_dim, num_classes, rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, x: jax.Array, *, train: bool = False) -> list[jax.Array]:
    """``[logits_BxC]``: one output, from the head on the last block."""
    _, r = self.forward(self.normalize_images(x), train=train)[-1]
    return [self.head(r)]

  def predict_scores(self, block_scores: Sequence[jax.Array]) -> jax.Array:
    return block_scores[-1]

  def loss(self, images: jax.Array, labels: jax.Array, *, key: jax.Array):
    del key
    (logits,) = self(images, train=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, loss[None], [logits]


def build_bp_model(
  model_config, *, input_shape, num_classes, seed, pixel_mean=0.0, pixel_std=1.0, frozen=()
) -> BPNet:
  rngs = nnx.Rngs(params=seed)
  return BPNet(
    build_blocks(model_config, input_shape=input_shape, rngs=rngs),
    num_classes,
    input_shape=tuple(input_shape),
    interblock_norm=model_config.interblock_norm,
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
    frozen=frozen,
    rngs=rngs,
  )
