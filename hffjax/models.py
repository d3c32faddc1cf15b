"""Flax NNX modules: HFF blocks, each with its own learned class prototypes.

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

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax import losses
from hffjax.errors import HFFError

INTERBLOCK_NORMS = ("l2", "rms", "none")
READOUTS = ("gap", "grid", "flatten")
CONV_NORMS = ("batch", "layer", "none")
PROTOTYPE_INITS = ("normal", "orthogonal")


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


class PrototypeHead(nnx.Module):
  """``C`` learned prototypes and a temperature: cosine logits of a read-out."""

  def __init__(
    self,
    dim: int,
    num_classes: int,
    *,
    temperature: float,
    learn_temperature: bool,
    init: str,
    rngs: nnx.Rngs,
  ):
    if temperature <= 0:
      raise HFFError(f"model.temperature must be > 0, got {temperature}; try 0.1")
    if init == "orthogonal":
      initializer = jax.nn.initializers.orthogonal()
    elif init == "normal":
      initializer = jax.nn.initializers.normal(stddev=1.0)
    else:
      raise HFFError(f"unknown model.prototype_init {init!r}; use one of {PROTOTYPE_INITS}")
    self.prototypes = nnx.Param(initializer(rngs.params(), (num_classes, dim), jnp.float32))
    log_scale = -math.log(temperature)
    # A learnable temperature lives in the block's parameters; a fixed one is a Python constant.
    self.log_scale = nnx.Param(jnp.asarray(log_scale, jnp.float32)) if learn_temperature else log_scale

  @property
  def scale(self) -> jax.Array:
    log_scale = self.log_scale[...] if isinstance(self.log_scale, nnx.Variable) else self.log_scale
    return jnp.exp(log_scale)

  def unit_prototypes(self) -> jax.Array:
    """The prototypes projected onto the unit sphere, ``[C, D]``."""
    return losses.l2_normalize(self.prototypes[...])

  def __call__(self, readout_BxD: jax.Array) -> jax.Array:
    return losses.cosine_logits(readout_BxD, self.prototypes[...], self.scale)


class DenseBlock(nnx.Module):
  """Linear + ReLU; the read-out is the activity itself."""

  def __init__(self, in_dim: int, width: int, *, dtype, rngs: nnx.Rngs):
    self.linear = nnx.Linear(in_dim, width, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    self.out_dim = width
    self.readout_dim = width

  def __call__(self, x_BxD: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    del train
    a = jax.nn.relu(self.linear(x_BxD.reshape(x_BxD.shape[0], -1)))
    return a, a


def _adaptive_avg_pool(x_BxHxWxK: jax.Array, grid: int) -> jax.Array:
  """Averages over a ``grid × grid`` partition of space (bins may overlap by one)."""
  _, h, w, _ = x_BxHxWxK.shape
  rows = []
  for i in range(grid):
    r0, r1 = (i * h) // grid, -(-((i + 1) * h) // grid)
    cols = []
    for j in range(grid):
      c0, c1 = (j * w) // grid, -(-((j + 1) * w) // grid)
      cols.append(jnp.mean(x_BxHxWxK[:, r0:r1, c0:c1, :], axis=(1, 2)))
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1)  # [B, grid, grid, K]


class ConvBlock(nnx.Module):
  """[2×2 max-pool] → 3×3 conv → norm → ReLU, with a pooled read-out."""

  def __init__(
    self,
    in_shape: tuple[int, int, int],
    channels: int,
    *,
    pool: bool,
    norm: str,
    readout: str,
    readout_grid: int,
    dtype,
    rngs: nnx.Rngs,
  ):
    h, w, k = in_shape
    if pool:
      h, w = h // 2, w // 2
    if h < 1 or w < 1:
      raise HFFError(f"input {in_shape} is too small for another 2x2 pool; drop a pool in model.pool")
    self.pool = pool
    self.conv = nnx.Conv(
      k,
      channels,
      (3, 3),
      padding="SAME",
      dtype=dtype,
      param_dtype=jnp.float32,
      use_bias=norm == "none",
      rngs=rngs,
    )
    if norm == "batch":
      self.norm = nnx.BatchNorm(channels, momentum=0.9, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    elif norm == "layer":
      self.norm = nnx.LayerNorm(channels, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    elif norm == "none":
      self.norm = None
    else:
      raise HFFError(f"unknown model.norm {norm!r}; use one of {CONV_NORMS}")
    if readout not in READOUTS:
      raise HFFError(f"unknown model.readout {readout!r}; use one of {READOUTS}")
    self.readout = readout
    self.readout_grid = readout_grid
    self.out_shape = (h, w, channels)
    self.readout_dim = {
      "gap": channels,
      "grid": channels * readout_grid * readout_grid,
      "flatten": h * w * channels,
    }[readout]

  def __call__(self, x_BxHxWxK: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    x = x_BxHxWxK
    if self.pool:
      x = nnx.max_pool(x, (2, 2), strides=(2, 2))
    a = self.conv(x)
    if isinstance(self.norm, nnx.BatchNorm):
      a = self.norm(a, use_running_average=not train)
    elif self.norm is not None:
      a = self.norm(a)
    a = jax.nn.relu(a)
    if self.readout == "gap":
      r = jnp.mean(a, axis=(1, 2))
    elif self.readout == "grid":
      r = _adaptive_avg_pool(a, self.readout_grid).reshape(a.shape[0], -1)
    else:
      r = a.reshape(a.shape[0], -1)
    return a, r


def _channel_stats(value, channels: int, name: str) -> tuple[float, ...]:
  values = tuple(float(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
  if len(values) not in (1, channels):
    raise HFFError(f"{name} has {len(values)} values for {channels}-channel images; give 1 or {channels}")
  if name == "pixel_std" and min(values) <= 0:
    raise HFFError(f"pixel_std must be > 0, got {values}")
  return values


class BlockStack(nnx.Module):
  """Blocks run in sequence, with the inter-block normalisation between them.

  ``stop_gradient=True`` (local learning) cuts the gradient at every block's
  input; ``False`` gives the same blocks trained end to end.
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
      h, r = block(h, train=train)
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
    rngs: nnx.Rngs,
  ):
    super().__init__(
      blocks,
      input_shape=input_shape,
      interblock_norm=interblock_norm,
      stop_gradient=True,
      pixel_mean=pixel_mean,
      pixel_std=pixel_std,
    )
    self.heads = nnx.List(
      [
        PrototypeHead(
          b.readout_dim,
          num_classes,
          temperature=temperature,
          learn_temperature=learn_temperature,
          init=prototype_init,
          rngs=rngs,
        )
        for b in blocks
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
        losses.hff_block_loss(logits, labels, self.margin, head.scale)
        for logits, head in zip(block_logits, self.heads, strict=True)
      ]
    )
    return jnp.dot(jnp.asarray(self.loss_weights, jnp.float32), block_loss), block_loss, block_logits


def build_blocks(model_config, *, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> list[nnx.Module]:
  """The blocks a config's ``model`` section describes (shared by HFF and the baselines)."""
  cfg = model_config
  dtype = jnp.dtype(cfg.dtype)
  if cfg.kind == "mlp":
    if not cfg.widths:
      raise HFFError("model.widths is empty; give at least one layer width, e.g. (1000, 1000, 1000)")
    blocks, in_dim = [], math.prod(input_shape)
    for width in cfg.widths:
      blocks.append(DenseBlock(in_dim, int(width), dtype=dtype, rngs=rngs))
      in_dim = int(width)
    return blocks
  if cfg.kind == "cnn":
    if not cfg.channels:
      raise HFFError("model.channels is empty; give at least one stage, e.g. (64, 128, 256)")
    pools = tuple(cfg.pool) if cfg.pool else (False,) * len(cfg.channels)
    if len(pools) != len(cfg.channels):
      raise HFFError(
        f"model.pool has {len(pools)} entries but model.channels has {len(cfg.channels)}; "
        "give one True/False per stage"
      )
    blocks, shape = [], tuple(input_shape)
    for channels, pool in zip(cfg.channels, pools, strict=True):
      block = ConvBlock(
        shape,
        int(channels),
        pool=bool(pool),
        norm=cfg.norm,
        readout=cfg.readout,
        readout_grid=int(cfg.readout_grid),
        dtype=dtype,
        rngs=rngs,
      )
      blocks.append(block)
      shape = block.out_shape
    return blocks
  raise HFFError(f"unknown model.kind {cfg.kind!r}; use 'mlp' or 'cnn'")


def build_model(
  model_config,
  *,
  input_shape: tuple[int, int, int],
  num_classes: int,
  seed: int,
  pixel_mean: float = 0.0,
  pixel_std: float = 1.0,
  margin: float = 0.0,
  loss_weights: Sequence[float] = (),
) -> HFFNet:
  """Builds the HFF network a config's ``model`` section describes.

  ``pixel_mean``/``pixel_std`` (of pixel values scaled to ``[0, 1]``; one
  value, or one per channel) are the dataset statistics the model uses to
  normalise raw images.
  """
  cfg = model_config
  rngs = nnx.Rngs(params=seed)
  return HFFNet(
    build_blocks(cfg, input_shape=input_shape, rngs=rngs),
    num_classes,
    input_shape=tuple(input_shape),
    temperature=cfg.temperature,
    learn_temperature=cfg.learn_temperature,
    prototype_init=cfg.prototype_init,
    interblock_norm=cfg.interblock_norm,
    margin=margin,
    loss_weights=loss_weights,
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
    rngs=rngs,
  )
