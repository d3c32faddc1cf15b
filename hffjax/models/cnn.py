"""Plain conv stages: ``[2×2 max-pool] → 3×3 conv → norm → ReLU`` per learner, and the pooled read-outs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax.errors import HFFError

READOUTS = ("gap", "grid", "flatten")
CONV_NORMS = ("batch", "layer", "none")


def adaptive_avg_pool(x_BxHxWxK: jax.Array, grid: int) -> jax.Array:
  """Averages over a ``grid × grid`` partition of space (bins may overlap by one), ``[B, grid, grid, K]``."""
  _, h, w, _ = x_BxHxWxK.shape
  rows = []
  for i in range(grid):
    r0, r1 = (i * h) // grid, -(-((i + 1) * h) // grid)
    cols = []
    for j in range(grid):
      c0, c1 = (j * w) // grid, -(-((j + 1) * w) // grid)
      cols.append(jnp.mean(x_BxHxWxK[:, r0:r1, c0:c1, :], axis=(1, 2)))
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1)


def check_readout(readout: str) -> str:
  if readout not in READOUTS:
    raise HFFError(f"unknown model.readout {readout!r}; use one of {READOUTS}")
  return readout


def pooled_readout(a_BxHxWxK: jax.Array, readout: str, grid: int) -> jax.Array:
  """A conv activity read out to a vector: global average (``gap``), a ``grid``² average (``grid``), or all of it."""
  if readout == "gap":
    return jnp.mean(a_BxHxWxK, axis=(1, 2))
  if readout == "grid":
    return adaptive_avg_pool(a_BxHxWxK, grid).reshape(a_BxHxWxK.shape[0], -1)
  return a_BxHxWxK.reshape(a_BxHxWxK.shape[0], -1)


def make_norm(kind: str, channels: int, *, dtype, rngs: nnx.Rngs) -> nnx.Module | None:
  """The per-channel normalisation after a convolution (``model.norm``)."""
  if kind == "batch":
    return nnx.BatchNorm(channels, momentum=0.9, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
  if kind == "layer":
    return nnx.LayerNorm(channels, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
  if kind == "none":
    return None
  raise HFFError(f"unknown model.norm {kind!r}; use one of {CONV_NORMS}")


def apply_norm(norm: nnx.Module | None, x: jax.Array, *, train: bool) -> jax.Array:
  if isinstance(norm, nnx.BatchNorm):
    return norm(x, use_running_average=not train)
  return x if norm is None else norm(x)


class ConvBlock(nnx.Module):
  """[2×2 max-pool] → 3×3 conv → norm → ReLU, with a pooled read-out."""

  def __init__(
    self,
    in_channels: int,
    channels: int,
    *,
    pool: bool = False,
    norm: str = "batch",
    readout: str = "gap",
    readout_grid: int = 2,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.pool = pool
    self.conv = nnx.Conv(
      in_channels,
      channels,
      (3, 3),
      padding="SAME",
      dtype=dtype,
      param_dtype=jnp.float32,
      use_bias=norm == "none",
      rngs=rngs,
    )
    self.norm = make_norm(norm, channels, dtype=dtype, rngs=rngs)
    self.readout = check_readout(readout)
    self.readout_grid = readout_grid

  def __call__(self, x_BxHxWxK: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    x = x_BxHxWxK
    if self.pool:
      x = nnx.max_pool(x, (2, 2), strides=(2, 2))
    a = jax.nn.relu(apply_norm(self.norm, self.conv(x), train=train))
    return a, pooled_readout(a, self.readout, self.readout_grid)


def build_cnn(cfg, *, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> list[nnx.Module]:
  """``model.channels`` (one conv stage per learner) with ``model.pool`` before each."""
  if not cfg.channels:
    raise HFFError("model.channels is empty; give at least one stage, e.g. (64, 128, 256)")
  pools = tuple(cfg.pool) if cfg.pool else (False,) * len(cfg.channels)
  if len(pools) != len(cfg.channels):
    raise HFFError(
      f"model.pool has {len(pools)} entries but model.channels has {len(cfg.channels)}; "
      "give one True/False per stage"
    )
  blocks, in_channels = [], input_shape[-1]
  for channels, pool in zip(cfg.channels, pools, strict=True):
    blocks.append(
      ConvBlock(
        in_channels,
        int(channels),
        pool=bool(pool),
        norm=cfg.norm,
        readout=cfg.readout,
        readout_grid=int(cfg.readout_grid),
        dtype=jnp.dtype(cfg.dtype),
        rngs=rngs,
      )
    )
    in_channels = int(channels)
  return blocks
