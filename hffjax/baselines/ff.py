"""Supervised Forward-Forward (Hinton, 2022) on HFF's blocks.

* The one-hot label is written over the first ``C`` input values (after
  normalisation), so the input carries its label.
* Positive data: image + true label; negative data: image + a wrong label drawn
  uniformly from the *other* classes.
* Goodness of a block = mean of squared activities; each block's loss is
  ``softplus(θ - g_pos) + softplus(g_neg - θ)``; activities are scaled to unit
  length (and the gradient stopped) between blocks.
* Inference runs one forward pass per class and takes the argmax of goodness
  summed over every block but the first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax import losses
from hffjax.errors import HFFError
from hffjax.models import BlockStack, build_blocks


def wrong_labels(key: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """A label drawn uniformly from the classes other than ``labels``, per example."""
  offset = jax.random.randint(key, labels.shape, 1, num_classes)
  return (labels + offset) % num_classes


class FFNet(BlockStack):
  """Calling the net returns each block's goodness for every class, ``[B, C]`` per block."""

  def __init__(
    self,
    blocks: Sequence[nnx.Module],
    num_classes: int,
    *,
    threshold: float = 2.0,
    **stack_kwargs,
  ):
    super().__init__(blocks, stop_gradient=True, **stack_kwargs)
    if num_classes > math.prod(self.input_shape):
      raise HFFError(
        f"Forward-Forward writes the label over the first {num_classes} input values but an image "
        f"has only {math.prod(self.input_shape)}; use fewer classes or larger images"
      )
    self.num_classes = num_classes
    self.threshold = float(threshold)

  def embed(self, h: jax.Array, labels: jax.Array) -> jax.Array:
    """Writes the one-hot label over the first ``C`` values of each normalised image.

    The label is written as pixels: white (255) for the label, black (0) for
    the other classes, normalised like the rest of the image.
    """
    mean_K, std_K = self.channel_stats()
    channel_C = jnp.arange(self.num_classes) % self.input_shape[-1]  # the channel of each written value
    on_1xC = ((1.0 - mean_K[channel_C]) / std_K[channel_C])[None, :]
    off_1xC = (-mean_K[channel_C] / std_K[channel_C])[None, :]
    flat = h.reshape(h.shape[0], -1)
    onehot = jax.nn.one_hot(labels, self.num_classes, dtype=flat.dtype)
    return flat.at[:, : self.num_classes].set(off_1xC + (on_1xC - off_1xC) * onehot).reshape(h.shape)

  def goodness(self, h_embedded: jax.Array, *, train: bool) -> jax.Array:
    """``[L, B]``: every block's goodness for already-labelled inputs."""
    return jnp.stack(
      [losses.goodness(a.reshape(a.shape[0], -1)) for a, _ in self.forward(h_embedded, train=train)]
    )

  def __call__(self, x: jax.Array, *, train: bool = False) -> list[jax.Array]:
    """One forward pass per class: ``[B, C]`` goodness per block."""
    h = self.normalize_images(x)
    labels = jnp.arange(self.num_classes)

    def one_class(c):
      return self.goodness(self.embed(h, jnp.full((h.shape[0],), c)), train=train)

    g_CxLxB = jax.lax.map(one_class, labels)
    return list(jnp.transpose(g_CxLxB, (1, 2, 0)))

  def predict_scores(self, block_goodness: Sequence[jax.Array]) -> jax.Array:
    """Goodness summed over every block but the first (all of them if there is one)."""
    used = block_goodness[1:] if len(block_goodness) > 1 else block_goodness
    return sum(used)

  def loss(self, images: jax.Array, labels: jax.Array, *, key: jax.Array):
    h = self.normalize_images(images)
    wrong = wrong_labels(key, labels, self.num_classes)
    both = jnp.concatenate([self.embed(h, labels), self.embed(h, wrong)])
    g_Lx2B = self.goodness(both, train=True)
    g_pos, g_neg = jnp.split(g_Lx2B, 2, axis=1)
    block_loss = jnp.stack(
      [losses.ff_goodness_loss(p, n, self.threshold) for p, n in zip(g_pos, g_neg, strict=True)]
    )
    return jnp.sum(block_loss), block_loss, None


def build_ff_model(
  model_config, *, input_shape, num_classes, seed, pixel_mean=0.0, pixel_std=1.0, frozen=(), threshold=2.0
) -> FFNet:
  rngs = nnx.Rngs(params=seed)
  return FFNet(
    build_blocks(model_config, input_shape=input_shape, rngs=rngs),
    num_classes,
    threshold=threshold,
    input_shape=tuple(input_shape),
    interblock_norm=model_config.interblock_norm,
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
    frozen=frozen,
  )
