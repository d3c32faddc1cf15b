"""Dense blocks: one linear layer + ReLU per learner."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax.errors import HFFError


class DenseBlock(nnx.Module):
  """Linear + ReLU; the read-out is the activity itself."""

  def __init__(self, in_dim: int, width: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.linear = nnx.Linear(in_dim, width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x_BxD: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    del train
    a = jax.nn.relu(self.linear(x_BxD.reshape(x_BxD.shape[0], -1)))
    return a, a


def build_mlp(cfg, *, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> list[nnx.Module]:
  """``model.widths``: one dense block per entry."""
  if not cfg.widths:
    raise HFFError("model.widths is empty; give at least one layer width, e.g. (1000, 1000, 1000)")
  if any(int(w) <= 0 for w in cfg.widths):
    raise HFFError(f"model.widths must all be > 0, got {tuple(cfg.widths)}")
  blocks, in_dim = [], math.prod(input_shape)
  for width in cfg.widths:
    blocks.append(DenseBlock(in_dim, int(width), dtype=jnp.dtype(cfg.dtype), rngs=rngs))
    in_dim = int(width)
  return blocks
