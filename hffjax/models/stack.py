"""The block stack and the HFF network: blocks, each with its own learned class prototypes.

A network is a stack of blocks ``f_1 … f_L``. Block ``l`` sees
``stop_gradient(n(a_{l-1}))`` (``n`` the inter-block normalisation), computes
its activity ``a_l``, reads it out to a vector ``r_l`` and classifies ``r_l``
against its own unit-norm prototypes with cosine logits. Every block is
therefore a local learner: its parameters and prototypes get gradient only
from its own loss.

Shapes: ``B`` batch, ``H, W`` spatial, ``K`` channels, ``D`` read-out
dimension, ``C`` classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax import losses
from hffjax.errors import HFFError
from hffjax.models.heads import PrototypeHead

INTERBLOCK_NORMS = ("l2", "rms", "none")


def interblock_normalize(a: jax.Array, kind: str) -> jax.Array:
  """Per-example normalisation applied between blocks.

  ``"l2"`` scales each example's whole activity tensor to unit length, as
  Forward-Forward does, so the next block cannot read the previous block's
  confidence off the activity's length; ``"rms"`` passes the same direction at
  unit root-mean-square (length ``sqrt(size)``), so the next block's inputs are
  of order one whatever its width; ``"none"`` passes the activity unchanged.
  """
  if kind == "none":
    return a
  flat = a.reshape(a.shape[0], -1)
  unit = losses.l2_normalize(flat)
  if kind == "rms":
    unit = unit * jnp.sqrt(jnp.asarray(flat.shape[1], unit.dtype))
  return unit.reshape(a.shape)


def output_shapes(
  blocks: Sequence[nnx.Module], input_shape: tuple[int, ...], interblock_norm: str = "none"
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
  """``(activity shape, read-out shape)`` of every block for one example, from ``jax.eval_shape``.

  Nothing is computed; this is how a net learns its read-out sizes (so no
  block has to declare one) and refuses inputs its pooling and strides would
  shrink to nothing.
  """
  graphdef, state = nnx.split(nnx.List(list(blocks)))

  def run(state, x):
    h, out = x, []
    for i, block in enumerate(nnx.merge(graphdef, state)):
      if i > 0:
        h = interblock_normalize(h, interblock_norm)
      h, r = block(h, train=False)
      out.append((h, r))
    return out

  probe = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  shapes = [(tuple(a.shape[1:]), tuple(r.shape[1:])) for a, r in jax.eval_shape(run, state, probe)]
  for i, (a, r) in enumerate(shapes):
    if 0 in a or 0 in r:
      raise HFFError(
        f"block {i} of the model maps input {tuple(input_shape)} to an empty activity {a}; the "
        "images are too small for its pooling or strides (use larger images or fewer pools)"
      )
  return shapes


def check_frozen(frozen: Sequence[int], learners: int) -> None:
  """Refuses learner indices (``config.freeze``) outside a model of ``learners`` learners."""
  bad = [int(i) for i in frozen if not 0 <= int(i) < learners]
  if bad:
    raise HFFError(f"freeze names learners {bad} but the model has {learners} (0..{learners - 1})")


def _channel_stats(value, channels: int, name: str) -> tuple[float, ...]:
  values = tuple(float(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
  if len(values) not in (1, channels):
    allowed = "1" if channels == 1 else f"1 or {channels}"
    raise HFFError(f"{name} has {len(values)} values for {channels}-channel images; give {allowed}")
  if name == "pixel_std" and min(values) <= 0:
    raise HFFError(f"pixel_std must be > 0, got {values}")
  return values


class BlockStack(nnx.Module):
  """Blocks run in sequence, with the inter-block normalisation between them.

  ``stop_gradient=True`` (local learning) cuts the gradient at every block's
  input; ``False`` gives the same blocks trained end to end. Blocks listed in
  ``frozen`` run in inference mode even in a training step (their
  parameters are kept fixed by the optimizer; see ``config.freeze``).
  """

  def __init__(
    self,
    blocks: Sequence[nnx.Module],
    *,
    input_shape: tuple[int, int, int],
    interblock_norm: str = "l2",
    stop_gradient: bool = True,
    pixel_mean: float | Sequence[float] = 0.0,
    pixel_std: float | Sequence[float] = 1.0,
    frozen: Sequence[int] = (),
  ):
    if interblock_norm not in INTERBLOCK_NORMS:
      raise HFFError(f"unknown model.interblock_norm {interblock_norm!r}; use one of {INTERBLOCK_NORMS}")
    self.blocks = nnx.List(list(blocks))
    self.input_shape = tuple(input_shape)
    self.interblock_norm = interblock_norm
    self.stop_gradient = stop_gradient
    # One value, or one per channel; kept as Python floats (static, part of the model's definition).
    self.pixel_mean = _channel_stats(pixel_mean, self.input_shape[-1], "pixel_mean")
    self.pixel_std = _channel_stats(pixel_std, self.input_shape[-1], "pixel_std")
    check_frozen(frozen, len(self.blocks))
    # Frozen learners always run as at inference: their batch statistics are the loaded running averages.
    self.frozen = tuple(sorted({int(i) for i in frozen}))

  @property
  def num_blocks(self) -> int:
    return len(self.blocks)

  def normalize_images(self, x: jax.Array) -> jax.Array:
    """Raw images (pixel values in ``[0, 255]``, any dtype) to zero mean, unit variance."""
    if tuple(x.shape[1:]) != self.input_shape:
      raise HFFError(
        f"images have shape {tuple(x.shape[1:])} but the model was built for "
        f"{self.input_shape}; rebuild the model for this dataset"
      )
    mean_K, std_K = self.channel_stats()
    return (x.astype(jnp.float32) / 255.0 - mean_K.reshape(1, 1, 1, -1)) / std_K.reshape(1, 1, 1, -1)

  def channel_stats(self) -> tuple[jax.Array, jax.Array]:
    """``(mean [K], std [K])`` of pixels scaled to ``[0, 1]``, one per input channel."""
    k = self.input_shape[-1]
    mean = (
      jnp.broadcast_to(jnp.asarray(self.pixel_mean, jnp.float32), (k,))
      if len(self.pixel_mean) == 1
      else jnp.asarray(self.pixel_mean, jnp.float32)
    )
    std = (
      jnp.broadcast_to(jnp.asarray(self.pixel_std, jnp.float32), (k,))
      if len(self.pixel_std) == 1
      else jnp.asarray(self.pixel_std, jnp.float32)
    )
    return mean, std

  def forward(self, h: jax.Array, *, train: bool) -> list[tuple[jax.Array, jax.Array]]:
    """``(activity a_l, read-out r_l)`` of every block for normalised input ``h``."""
    outs = []
    for i, block in enumerate(self.blocks):
      if i > 0:
        h = interblock_normalize(h, self.interblock_norm)
      if self.stop_gradient:
        h = jax.lax.stop_gradient(h)
      h, r = block(h, train=train and i not in self.frozen)
      outs.append((h, r))
    return outs


class HFFNet(BlockStack):
  """A stack of blocks, each followed by its own prototype head.

  Calling the net returns one ``[B, C]`` logits array per block, all from a
  single forward pass.
  """

  def __init__(
    self,
    blocks: Sequence[nnx.Module],
    num_classes: int,
    *,
    input_shape: tuple[int, int, int],
    temperature: float = 0.1,
    learn_temperature: bool = False,
    prototype_init: str = "orthogonal",
    interblock_norm: str = "l2",
    margin: float = 0.0,
    loss_weights: Sequence[float] = (),
    pixel_mean: float | Sequence[float] = 0.0,
    pixel_std: float | Sequence[float] = 1.0,
    frozen: Sequence[int] = (),
    rngs: nnx.Rngs,
  ):
    super().__init__(
      blocks,
      input_shape=input_shape,
      interblock_norm=interblock_norm,
      stop_gradient=True,
      pixel_mean=pixel_mean,
      pixel_std=pixel_std,
      frozen=frozen,
    )
    self.heads = nnx.List(
      [
        PrototypeHead(
          readout[-1],
          num_classes,
          temperature=temperature,
          learn_temperature=learn_temperature,
          init=prototype_init,
          rngs=rngs,
        )
        for _, readout in output_shapes(blocks, input_shape, interblock_norm)
      ]
    )
    weights = tuple(float(w) for w in loss_weights) or (1.0,) * len(blocks)
    if len(weights) != len(blocks):
      raise HFFError(
        f"loss_weights has {len(weights)} entries but the model has {len(blocks)} blocks; "
        "give one weight per block or leave it empty"
      )
    self.num_classes = num_classes
    self.margin = float(margin)
    self.loss_weights = weights

  def readouts(self, x: jax.Array, *, train: bool = False) -> list[jax.Array]:
    """Every block's read-out ``r_l``, ``[B, D_l]`` each, in one forward pass.

    Args:
      x: raw images, pixel values in ``[0, 255]`` (any dtype), ``[B, H, W, K]``.
      train: batch statistics (and their running averages) are updated when True.
    """
    return [r for _, r in self.forward(self.normalize_images(x), train=train)]

  def __call__(self, x: jax.Array, *, train: bool = False) -> list[jax.Array]:
    """Every block's cosine logits, ``[B, C]`` each, in one forward pass."""
    return [head(r) for head, r in zip(self.heads, self.readouts(x, train=train), strict=True)]

  def predict_scores(self, block_logits: Sequence[jax.Array]) -> jax.Array:
    """Class scores of the default prediction rule: the last block's logits."""
    return block_logits[-1]

  def loss(self, images: jax.Array, labels: jax.Array, *, key: jax.Array):
    """``(Σ_l λ_l L_l, [L_1 … L_L], block logits)`` for one training batch."""
    del key
    block_logits = self(images, train=True)
    block_loss = jnp.stack(
      [
        losses.hff_block_loss(logits, labels, scale=head.scale, margin=self.margin)
        for logits, head in zip(block_logits, self.heads, strict=True)
      ]
    )
    return jnp.dot(jnp.asarray(self.loss_weights, jnp.float32), block_loss), block_loss, block_logits
