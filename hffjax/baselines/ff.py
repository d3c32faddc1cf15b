"""Supervised Forward-Forward (Hinton, 2022) on HFF's blocks.

* The one-hot label is written over the first ``C`` input values (after
  normalisation), so the input carries its label.
* Positive data: image + true label; negative data: image + a wrong label drawn
  uniformly from the *other* classes.
* Goodness of a block ``g`` = mean of squared activities. Each block's loss is
  ``softplus(s (θ - g_pos)) + softplus(s (g_neg - θ))`` with ``s`` the block's
  number of units (``goodness="sum"``, Hinton's logistic on the *sum* of squares
  against a threshold of ``θ`` per unit) or ``s = 1`` (``goodness="mean"``).
  Activities are normalised (and the gradient stopped) between blocks.
* Optional peer normalisation (Hinton, 2022, section 3.2): a penalty on each
  unit's mean positive activity over the batch straying from the layer's
  average, which keeps units from dying or staying always on.
* Inference runs one forward pass per class and takes the argmax of goodness
  summed over every block but the first.
* A second, one-pass rule some Forward-Forward implementations use instead: a
  linear softmax read-out of the normalised activities of every block but the
  first, computed with a *neutral* label (every label value ``1/C``). It is
  trained alongside, on stop-gradient features, so it does not change the
  blocks (but adds a forward pass to each step; ``readout=False`` leaves it
  out); :meth:`FFNet.extra_rules` reports it as ``readout``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hffjax import losses
from hffjax.errors import HFFError
from hffjax.models import BlockStack, build_blocks, output_shapes
from hffjax.models.stack import interblock_normalize

GOODNESS = ("sum", "mean")


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
    threshold: float = 1.0,
    goodness: str = "sum",
    peer_norm: float = 0.0,
    readout: bool = True,
    rngs: nnx.Rngs | None = None,
    **stack_kwargs,
  ):
    super().__init__(blocks, stop_gradient=True, **stack_kwargs)
    if goodness not in GOODNESS:
      raise HFFError(f"unknown ff_goodness {goodness!r}; use one of {GOODNESS}")
    if num_classes > math.prod(self.input_shape):
      raise HFFError(
        f"Forward-Forward writes the label over the first {num_classes} input values but an image "
        f"has only {math.prod(self.input_shape)}; use fewer classes or larger images"
      )
    self.num_classes = num_classes
    self.threshold = float(threshold)
    self.goodness_kind = goodness
    self.peer_norm = float(peer_norm)
    shapes = output_shapes(blocks, self.input_shape, self.interblock_norm)
    self.units = tuple(math.prod(a) for a, _ in shapes)
    rngs = rngs if rngs is not None else nnx.Rngs(params=0)
    features = sum(self.units[i] for i in self._readout_blocks())
    self.readout = nnx.Linear(features, num_classes, rngs=rngs) if readout else None

  def _readout_blocks(self) -> tuple[int, ...]:
    n = len(self.blocks)
    return tuple(range(1, n)) if n > 1 else (0,)

  def embed(self, h: jax.Array, labels: jax.Array) -> jax.Array:
    """Writes the one-hot label over the first ``C`` values of each normalised image.

    The label is written as pixels: white (255) for the label, black (0) for
    the other classes, normalised like the rest of the image.
    """
    return self._write_label(h, jax.nn.one_hot(labels, self.num_classes, dtype=h.dtype))

  def embed_neutral(self, h: jax.Array) -> jax.Array:
    """Writes the neutral label: every one of the ``C`` label pixels at ``1/C`` of white."""
    return self._write_label(h, jnp.full((h.shape[0], self.num_classes), 1.0 / self.num_classes, h.dtype))

  def _write_label(self, h: jax.Array, intensity_BxC: jax.Array) -> jax.Array:
    mean_K, std_K = self.channel_stats()
    channel_C = jnp.arange(self.num_classes) % self.input_shape[-1]  # the channel of each written value
    on_1xC = ((1.0 - mean_K[channel_C]) / std_K[channel_C])[None, :]
    off_1xC = (-mean_K[channel_C] / std_K[channel_C])[None, :]
    flat = h.reshape(h.shape[0], -1)
    return flat.at[:, : self.num_classes].set(off_1xC + (on_1xC - off_1xC) * intensity_BxC).reshape(h.shape)

  def goodness(self, h_embedded: jax.Array, *, train: bool) -> jax.Array:
    """``[L, B]``: every block's goodness for already-labelled inputs."""
    return jnp.stack([losses.goodness(a) for a in self._activities(h_embedded, train=train)])

  def _activities(self, h: jax.Array, *, train: bool) -> list[jax.Array]:
    """Every block's flattened activity for labelled images, normalised like every block's input."""
    h = interblock_normalize(h, self.interblock_norm)
    return [a.reshape(a.shape[0], -1) for a, _ in self.forward(h, train=train)]

  def readout_logits(self, h: jax.Array) -> jax.Array:
    """The neutral-label read-out's logits ``[B, C]`` for normalised images (one pass)."""
    acts = self._activities(self.embed_neutral(h), train=False)
    feats = [interblock_normalize(acts[i], "rms") for i in self._readout_blocks()]
    return self.readout(jax.lax.stop_gradient(jnp.concatenate(feats, axis=-1)).astype(jnp.float32))

  def extra_rules(self, x: jax.Array) -> dict[str, jax.Array]:
    """Prediction rules reported beside the goodness rule: ``readout``, one pass with a neutral label."""
    return {} if self.readout is None else {"readout": self.readout_logits(self.normalize_images(x))}

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
    """Every block's Forward-Forward loss (plus its peer-normalisation penalty), and the read-out's."""
    h = self.normalize_images(images)
    wrong = wrong_labels(key, labels, self.num_classes)
    both = jnp.concatenate([self.embed(h, labels), self.embed(h, wrong)])
    block_loss = []
    for units, a in zip(self.units, self._activities(both, train=True), strict=True):
      a_pos, a_neg = jnp.split(a.astype(jnp.float32), 2)
      sharpness = units if self.goodness_kind == "sum" else 1.0
      loss = losses.ff_goodness_loss(
        losses.goodness(a_pos), losses.goodness(a_neg), self.threshold, sharpness=sharpness
      )
      if self.peer_norm:
        mean_D = jnp.mean(a_pos, axis=0)
        loss = loss + self.peer_norm * jnp.mean(jnp.square(jnp.mean(mean_D) - mean_D))
      block_loss.append(loss)
    block_loss = jnp.stack(block_loss)
    total = jnp.sum(block_loss)
    if self.readout is not None:  # one more forward pass (neutral label); its gradient stays in the read-out
      total += optax.softmax_cross_entropy_with_integer_labels(self.readout_logits(h), labels).mean()
    return total, block_loss, None


def build_ff_model(
  model_config,
  *,
  input_shape,
  num_classes,
  seed,
  pixel_mean=0.0,
  pixel_std=1.0,
  frozen=(),
  threshold=1.0,
  goodness="sum",
  peer_norm=0.0,
  readout=True,
) -> FFNet:
  rngs = nnx.Rngs(params=seed)
  return FFNet(
    build_blocks(model_config, input_shape=input_shape, rngs=rngs),
    num_classes,
    threshold=threshold,
    goodness=goodness,
    peer_norm=peer_norm,
    readout=readout,
    rngs=rngs,
    input_shape=tuple(input_shape),
    interblock_norm=model_config.interblock_norm,
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
    frozen=frozen,
  )
