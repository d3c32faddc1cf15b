"""Prediction rules over the per-block logits, and ``predict`` for raw images."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from hffjax.errors import HFFError

PREDICT_MODES = ("model", "last", "ensemble", "early_exit")


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

  Example::

    >>> import jax.numpy as jnp
    >>> block_logits = [jnp.array([[3.0, 0.0]]), jnp.array([[0.0, 0.5]])]
    >>> combine_logits(block_logits).tolist()  # the last block alone prefers class 1
    [[0.0, 0.5]]
    >>> combine_logits(block_logits, "ensemble").argmax(-1).tolist()  # the first block's confidence wins
    [0]
  """
  if mode == "last":
    return block_logits[-1]
  if mode == "ensemble":
    blocks = range(len(block_logits)) if blocks is None else blocks
    return sum(jax.nn.softmax(block_logits[b].astype(jnp.float32)) for b in blocks)
  raise HFFError(f"unknown rule {mode!r} over block logits; use 'last' or 'ensemble'")


@functools.partial(jax.jit, static_argnames=("graphdef", "mode", "blocks"))
def _predict(graphdef, state, images, mode, blocks):
  model = nnx.merge(graphdef, state)
  block_scores = model(images, train=False)
  if mode == "model":
    return jnp.argmax(model.predict_scores(block_scores), axis=-1)
  return jnp.argmax(combine_logits(block_scores, mode, blocks), axis=-1)


def predict(
  model: nnx.Module,
  images,
  mode: str = "model",
  blocks: Sequence[int] | None = None,
  *,
  threshold: float = 0.9,
  confidence: str = "softmax",
) -> jax.Array:
  """Predicted classes for raw images (pixel values 0–255).

  An HFF model needs one forward pass for this; a Forward-Forward baseline
  model runs one pass per class.

  Args:
    model: a trained :class:`HFFNet` (or a baseline model).
    images: ``[B, H, W, K]``.
    mode: ``"model"``, the model's own rule (HFF and backprop: the last block;
      Forward-Forward: goodness summed over every block but the first);
      ``"last"``, the last block's scores alone, whatever the model;
      ``"ensemble"`` (see :func:`combine_logits`); or ``"early_exit"``: each
      example answers at the first block whose ``confidence`` is strictly
      above ``threshold`` (HFF models; see :class:`hffjax.train.early_exit.EarlyExit`).
    blocks: blocks the ensemble sums; default all.
    threshold: early exit's threshold (softmax: in [0, 1]; margin: in [0, 2]).
    confidence: early exit's rule, ``"softmax"`` or ``"margin"``.

  Returns:
    ``[B]`` int32 class indices.

  Example::

    >>> import numpy as np
    >>> from hffjax.config import base_config
    >>> from hffjax.models import build_model
    >>> model_config = base_config().model  # an MLP; here two blocks of 32 units
    >>> model_config.widths = (32, 32)
    >>> model = build_model(model_config, input_shape=(8, 8, 1), num_classes=3, seed=0)
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    >>> [logits.shape for logits in model(images)]  # one [B, C] array per block, from one pass
    [(4, 3), (4, 3)]
    >>> classes = predict(model, images)
    >>> classes.shape, classes.dtype.name
    ((4,), 'int32')
    >>> bool((predict(model, images, mode="early_exit", threshold=1.0) == classes).all())  # never exits early
    True
  """
  if mode not in PREDICT_MODES:
    raise HFFError(f"unknown prediction mode {mode!r}; use one of {PREDICT_MODES}")
  if mode == "early_exit":
    from hffjax.train.early_exit import EarlyExit  # noqa: PLC0415  (it imports this module)

    return jnp.asarray(EarlyExit(model, threshold, confidence).predict([np.asarray(images)])[0])
  graphdef, state = nnx.split(model)
  return _predict(graphdef, state, jnp.asarray(images), mode, None if blocks is None else tuple(blocks))


CONFIDENCES = {"softmax": (0.0, 1.0), "margin": (0.0, 2.0)}  # rule -> the range its threshold lives in


def check_early_exit(model: nnx.Module, threshold: float, confidence: str) -> None:
  """Refuses an unknown confidence rule, a threshold outside its range, or a model without per-block classifiers."""
  if confidence not in CONFIDENCES:
    raise HFFError(f"unknown confidence rule {confidence!r}; use one of {tuple(CONFIDENCES)}")
  lo, hi = CONFIDENCES[confidence]
  if not lo <= float(threshold) <= hi:
    raise HFFError(f"a {confidence} threshold must be in [{lo:g}, {hi:g}], got {threshold}")
  if not hasattr(model, "heads"):
    raise HFFError(
      f"early exit needs a classifier after every block; this {type(model).__name__} has none "
      "(train with method='hff')"
    )


def block_confidence(logits_BxC: jax.Array, scale: jax.Array | float, confidence: str) -> jax.Array:
  """``[B]``: the largest softmax probability, or the gap between the two largest cosines (logits / scale)."""
  logits_BxC = logits_BxC.astype(jnp.float32)
  if confidence == "softmax":
    return jnp.max(jax.nn.softmax(logits_BxC), axis=-1)
  top2_Bx2 = jax.lax.top_k(logits_BxC, 2)[0]
  return (top2_Bx2[:, 0] - top2_Bx2[:, 1]) / scale


def first_confident_block(
  block_logits, scales, threshold: float, confidence: str
) -> tuple[jax.Array, jax.Array]:
  """``(classes [B], exit block [B])``: each example's prediction at the first block whose confidence is
  strictly above ``threshold``, else at the last block."""
  conf_LxB = jnp.stack(
    [block_confidence(s, k, confidence) for s, k in zip(block_logits, scales, strict=True)]
  )
  confident_LxB = conf_LxB > threshold
  confident_LxB = confident_LxB.at[-1].set(True)  # the last block always answers
  exit_B = jnp.argmax(confident_LxB, axis=0)
  classes_LxB = jnp.stack([jnp.argmax(s, axis=-1) for s in block_logits])
  return jnp.take_along_axis(classes_LxB, exit_B[None], axis=0)[0], exit_B


@functools.partial(jax.jit, static_argnames=("graphdef", "confidence"))
def _early_exit_all_blocks(graphdef, state, images, threshold, confidence):
  model = nnx.merge(graphdef, state)
  scales = [head.scale for head in model.heads]
  return first_confident_block(model(images, train=False), scales, threshold, confidence)


def early_exit_reference(model: nnx.Module, images, threshold: float, confidence: str = "softmax"):
  """Early-exit predictions computed the plain way: every block runs, then each example takes the answer
  of its first confident block. The definition the compute-saving forms are checked against.

  Returns:
    ``(classes [B], exit_block [B])``.
  """
  check_early_exit(model, threshold, confidence)
  graphdef, state = nnx.split(model)
  return _early_exit_all_blocks(graphdef, state, jnp.asarray(images), jnp.float32(threshold), confidence)
