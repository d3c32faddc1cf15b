"""ResNet-style HFF: BasicBlock ResNets whose local learners are residual blocks or whole stages.

The stem (CIFAR: one 3×3 conv; ImageNet: 7×7/2 conv and a 3×3/2 max-pool)
belongs to the first learner, since it has no loss of its own. Every learner
owns its convolutions and BatchNorms, so batch statistics and their running
averages are per learner too. Between learners the stack applies
``model.interblock_norm`` and ``stop_gradient``; inside a learner the
residual blocks are trained end to end by that learner's loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax.errors import HFFError
from hffjax.models.cnn import apply_norm, check_readout, make_norm, pooled_readout

STAGE_SIZES = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STEMS = ("cifar", "imagenet")
LEARNERS = ("block", "stage", "groups")


def stage_sizes(depth) -> tuple[int, ...]:
  """Residual blocks per stage of a BasicBlock ResNet-``depth``; refuses a depth hffjax does not build."""
  if depth not in STAGE_SIZES:
    raise HFFError(f"unknown model.depth {depth}; use one of {tuple(STAGE_SIZES)}")
  return STAGE_SIZES[depth]


def _conv(
  in_channels: int, channels: int, size: int, stride: int, *, norm: str, dtype, rngs: nnx.Rngs
) -> nnx.Conv:
  """A bias-free convolution before a norm (whose bias takes its place); with ``norm="none"``, a biased one."""
  return nnx.Conv(
    in_channels,
    channels,
    (size, size),
    strides=(stride, stride),
    padding="SAME",
    use_bias=norm == "none",
    dtype=dtype,
    param_dtype=jnp.float32,
    kernel_init=jax.nn.initializers.he_normal(),
    rngs=rngs,
  )


class BasicBlock(nnx.Module):
  """``relu(x' + norm(conv(relu(norm(conv(x))))))``, ``x'`` a 1×1 projection where the shape changes.

  With BatchNorm the last norm's scale starts at zero, so each block starts as (nearly) the identity.
  """

  def __init__(self, in_channels: int, channels: int, *, stride: int, norm: str, dtype, rngs: nnx.Rngs):
    self.conv1 = _conv(in_channels, channels, 3, stride, norm=norm, dtype=dtype, rngs=rngs)
    self.norm1 = make_norm(norm, channels, dtype=dtype, rngs=rngs)
    self.conv2 = _conv(channels, channels, 3, 1, norm=norm, dtype=dtype, rngs=rngs)
    self.norm2 = make_norm(norm, channels, dtype=dtype, rngs=rngs)
    if isinstance(self.norm2, nnx.BatchNorm):
      self.norm2.scale[...] = jnp.zeros_like(self.norm2.scale[...])
    if stride != 1 or in_channels != channels:
      self.project = _conv(in_channels, channels, 1, stride, norm=norm, dtype=dtype, rngs=rngs)
      self.project_norm = make_norm(norm, channels, dtype=dtype, rngs=rngs)
    else:
      self.project, self.project_norm = None, None

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    y = jax.nn.relu(apply_norm(self.norm1, self.conv1(x), train=train))
    y = apply_norm(self.norm2, self.conv2(y), train=train)
    shortcut = x if self.project is None else apply_norm(self.project_norm, self.project(x), train=train)
    return jax.nn.relu(shortcut + y)


class Stem(nnx.Module):
  """CIFAR stem (3×3 conv, stride 1) or ImageNet stem (7×7/2 conv, then 3×3/2 max-pool)."""

  def __init__(self, in_channels: int, channels: int, *, kind: str, norm: str, dtype, rngs: nnx.Rngs):
    if kind not in STEMS:
      raise HFFError(f"unknown model.stem {kind!r}; use one of {STEMS}")
    self.kind = kind
    size, stride = (3, 1) if kind == "cifar" else (7, 2)
    self.conv = _conv(in_channels, channels, size, stride, norm=norm, dtype=dtype, rngs=rngs)
    self.norm = make_norm(norm, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = jax.nn.relu(apply_norm(self.norm, self.conv(x), train=train))
    if self.kind == "imagenet":
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    return x


class ResNetLearner(nnx.Module):
  """One local learner: [the stem] then one or more residual blocks, read out by pooling."""

  def __init__(self, stem: Stem | None, blocks: list[BasicBlock], *, readout: str, readout_grid: int):
    self.stem = stem
    self.blocks = nnx.List(blocks)
    self.readout = check_readout(readout)
    self.readout_grid = readout_grid

  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    if self.stem is not None:
      x = self.stem(x, train=train)
    for block in self.blocks:
      x = block(x, train=train)
    return x, pooled_readout(x, self.readout, self.readout_grid)


def learner_blocks(learner: str, stage_sizes: tuple[int, ...], given: tuple = ()) -> tuple[int, ...]:
  """Residual blocks per learner, first to last, for ``model.learner`` over stages of ``stage_sizes`` blocks."""
  if learner not in LEARNERS:
    raise HFFError(f"unknown model.learner {learner!r}; use one of {LEARNERS}")
  total = sum(stage_sizes)
  if learner != "groups":
    if given:
      raise HFFError(
        f"model.learner_blocks={given} groups blocks only with model.learner='groups' (it is {learner!r}); "
        "set model.learner='groups' or model.learner_blocks=()"
      )
    return (1,) * total if learner == "block" else tuple(stage_sizes)
  if (
    not given
    or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in given)
    or sum(given) != total
  ):
    raise HFFError(
      f"model.learner='groups' needs model.learner_blocks: integers >= 1 that add up to the {total} residual "
      f"blocks (stages of {stage_sizes}), got {given}; e.g. {(total // 2, total - total // 2)}"
    )
  return tuple(given)


def build_resnet(cfg, *, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> list[nnx.Module]:
  """ResNet-``model.depth`` (10, 18 or 34) at base width ``model.width``, grouped into learners.

  Stage widths are ``width × (1, 2, 4, 8)``; stages after the first halve the
  resolution. ``model.learner = "block"`` makes every residual block a learner
  (8 for ResNet-18), ``"stage"`` every stage (4), and ``"groups"`` runs of
  consecutive blocks of the sizes in ``model.learner_blocks`` (e.g. ``(4, 4)``:
  two learners of two stages each), which may cross stage boundaries.
  """
  sizes = stage_sizes(cfg.depth)
  if cfg.width <= 0:
    raise HFFError(f"model.width must be > 0, got {cfg.width}")
  counts = learner_blocks(cfg.learner, sizes, tuple(cfg.get("learner_blocks", ())))
  dtype = jnp.dtype(cfg.dtype)
  stem = Stem(input_shape[-1], cfg.width, kind=cfg.stem, norm=cfg.norm, dtype=dtype, rngs=rngs)
  blocks, in_channels = [], cfg.width
  for stage, size in enumerate(sizes):
    channels = cfg.width * 2**stage
    for i in range(size):
      stride = 2 if stage > 0 and i == 0 else 1
      blocks.append(BasicBlock(in_channels, channels, stride=stride, norm=cfg.norm, dtype=dtype, rngs=rngs))
      in_channels = channels
  starts = [sum(counts[:i]) for i in range(len(counts))]
  groups = [blocks[start : start + n] for start, n in zip(starts, counts, strict=True)]
  return [
    ResNetLearner(stem if i == 0 else None, group, readout=cfg.readout, readout_grid=int(cfg.readout_grid))
    for i, group in enumerate(groups)
  ]
