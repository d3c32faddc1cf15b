"""Prediction rules over the per-block logits, and ``predict`` for raw images."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from hffjax.errors import HFFError

PREDICT_MODES = ("last", "ensemble")


def ensemble_blocks(config: ml_collections.ConfigDict, num_blocks: int) -> tuple[int, ...]:
  blocks = tuple(int(b) for b in config.ensemble_blocks) or tuple(range(num_blocks))
  bad = [b for b in blocks if not 0 <= b < num_blocks]
  if bad:
    raise HFFError(f"ensemble_blocks {bad} out of range for {num_blocks} blocks; use 0..{num_blocks - 1}")
  return blocks


def combine_logits(
  block_logits: Sequence[jax.Array], mode: str = "last", blocks: Sequence[int] | None = None
) -> jax.Array:
  """Class scores from every block's logits under a prediction rule, ``[B, C]``.

  ``last``: the last block's logits. ``ensemble``: the sum of the softmaxes of
  ``blocks`` (default: all).
  """
  if mode == "last":
    return block_logits[-1]
  if mode == "ensemble":
    blocks = range(len(block_logits)) if blocks is None else blocks
    return sum(jax.nn.softmax(block_logits[b].astype(jnp.float32)) for b in blocks)
  raise HFFError(f"unknown prediction mode {mode!r}; use one of {PREDICT_MODES}")


@functools.partial(jax.jit, static_argnames=("graphdef", "mode", "blocks"))
def _predict(graphdef, state, images, mode, blocks):
  model = nnx.merge(graphdef, state)
  block_scores = model(images, train=False)
  if mode == "last":
    return jnp.argmax(model.predict_scores(block_scores), axis=-1)
  return jnp.argmax(combine_logits(block_scores, mode, blocks), axis=-1)


def predict(model: nnx.Module, images, mode: str = "last", blocks: Sequence[int] | None = None) -> jax.Array:
  """Predicted classes for raw images (pixel values 0–255).

  An HFF model needs one forward pass for this; a Forward-Forward baseline
  model runs one pass per class.

  Args:
    model: a trained :class:`HFFNet` (or a baseline model).
    images: ``[B, H, W, K]``.
    mode: ``"last"``, the model's own rule (HFF and backprop: the last block;
      Forward-Forward: goodness summed over every block but the first), or
      ``"ensemble"`` (see :func:`combine_logits`).
    blocks: blocks the ensemble sums; default all.

  Returns:
    ``[B]`` int32 class indices.
  """
  if mode not in PREDICT_MODES:
    raise HFFError(f"unknown prediction mode {mode!r}; use one of {PREDICT_MODES}")
  graphdef, state = nnx.split(model)
  return _predict(graphdef, state, jnp.asarray(images), mode, None if blocks is None else tuple(blocks))
