"""``model.kind`` → the function that builds its blocks, and the block contract.

The block contract (what :class:`~hffjax.models.HFFNet` and the baselines
need of a block):

* an ``nnx.Module`` whose ``__call__(x, *, train)`` returns
  ``(activity, readout)``: ``activity`` is what the next block sees (after the
  inter-block normalisation and ``stop_gradient``), ``readout`` a ``[B, D]``
  vector the block's prototype head classifies;
* ``train=True`` is a training step: batch statistics are used and their
  running averages updated (``nnx.BatchStat``); ``train=False`` is inference;
* nothing else: the read-out size ``D`` is found with ``jax.eval_shape``
  (:func:`~hffjax.models.stack.output_shapes`), so a block does not declare it.

A builder ``builder(model_config, *, input_shape, rngs) -> [block, ...]``
makes a model's blocks. ``model.kind`` names a built-in one (:data:`BUILDERS`)
or any importable one as ``"package.module:function"``: the run's
``config.json`` then names it, so ``hffjax eval`` and resuming rebuild the
same model (``configs/fashion_mnist_residual_mlp.py`` is an example).

A block may be a whole group of layers (a ResNet stage): the block is the
unit of local learning, the "learner".
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence

from flax import nnx

from hffjax.errors import HFFError
from hffjax.models.cnn import build_cnn
from hffjax.models.mlp import build_mlp
from hffjax.models.resnet import build_resnet
from hffjax.models.stack import HFFNet

BlockBuilder = Callable[..., list[nnx.Module]]

#: ``model.kind`` → ``builder(model_config, *, input_shape, rngs) -> [block, ...]``.
BUILDERS: dict[str, BlockBuilder] = {"mlp": build_mlp, "cnn": build_cnn, "resnet": build_resnet}
DTYPES = ("float32", "bfloat16")
# Builders handed over in Python (``train_and_evaluate(..., model=fn)``), by the name they are saved as.
_PASSED: dict[str, BlockBuilder] = {}


def register_builder(builder: BlockBuilder) -> str:
  """Makes ``builder`` the one its name ``"module:qualname"`` resolves to in this process; returns the name.

  The name is what a run's ``config.json`` keeps as ``model.kind``: a builder
  in an importable module is found again by ``hffjax eval`` and ``predict``;
  one defined in a script or notebook must be passed again
  (``restore_experiment(workdir, model=builder)``).
  """
  if not callable(builder) or not hasattr(builder, "__qualname__"):
    raise HFFError(
      f"model={builder!r:.60} is not a function; pass a block builder(model_config, *, input_shape, rngs)"
    )
  name = f"{builder.__module__}:{builder.__qualname__}"
  _PASSED[name] = builder
  return name


def resolve_builder(kind: str) -> BlockBuilder:
  """The builder ``model.kind`` names: a built-in family, or ``"package.module:function"``."""
  if kind in BUILDERS:
    return BUILDERS[kind]
  if kind in _PASSED:
    return _PASSED[kind]
  if kind.count(":") != 1:
    raise HFFError(f"unknown model.kind {kind!r}; use one of {tuple(BUILDERS)} or 'package.module:function'")
  module_name, attr = kind.split(":")
  if module_name == "__main__" or "<locals>" in attr:
    where = "in the script that trained the run" if module_name == "__main__" else "inside another function"
    raise HFFError(
      f"model.kind {kind!r} is a builder defined {where}, which cannot be imported by name; pass it again "
      "(hffjax.train.restore_experiment(workdir, model=builder)) or move it to the top level of a module"
    )
  try:
    builder = importlib.import_module(module_name)
    for part in attr.split("."):
      builder = getattr(builder, part)
  except ImportError as e:
    raise HFFError(
      f"model.kind {kind!r}: cannot import {module_name} ({e}); install it or fix the name"
    ) from None
  except AttributeError:
    raise HFFError(
      f"model.kind {kind!r}: {module_name} has no {attr}; name its block builder function"
    ) from None
  if not callable(builder):
    raise HFFError(
      f"model.kind {kind!r} is not a function; name a builder(model_config, *, input_shape, rngs)"
    )
  return builder


def build_blocks(model_config, *, input_shape: tuple[int, int, int], rngs: nnx.Rngs) -> list[nnx.Module]:
  """The blocks a config's ``model`` section describes (shared by HFF and the baselines)."""
  builder = resolve_builder(model_config.kind)
  if model_config.dtype not in DTYPES:
    raise HFFError(f"unknown model.dtype {model_config.dtype!r}; use one of {DTYPES}")
  try:
    inspect.signature(builder).bind(model_config, input_shape=input_shape, rngs=rngs)
  except (TypeError, ValueError):
    raise HFFError(
      f"model.kind {model_config.kind!r} does not take (model_config, *, input_shape, rngs); "
      "name a block builder (see hffjax/models/registry.py)"
    ) from None
  try:
    blocks = list(builder(model_config, input_shape=tuple(input_shape), rngs=rngs))
  except HFFError:
    raise
  except Exception as e:  # noqa: BLE001 - a builder of one's own: named, with --debug for the traceback
    raise HFFError(
      f"model.kind {model_config.kind!r} failed to build the blocks: {type(e).__name__}: {e}"
    ) from e
  if not blocks or not all(isinstance(b, nnx.Module) for b in blocks):
    raise HFFError(
      f"model.kind {model_config.kind!r} built {blocks!r:.80}; a builder returns a list of nnx.Modules"
    )
  return blocks


def build_model(
  model_config,
  *,
  input_shape: tuple[int, int, int],
  num_classes: int,
  seed: int,
  pixel_mean: float | Sequence[float] = 0.0,
  pixel_std: float | Sequence[float] = 1.0,
  margin: float = 0.0,
  loss_weights: Sequence[float] = (),
  frozen: Sequence[int] = (),
) -> HFFNet:
  """Builds the HFF network a config's ``model`` section describes.

  ``pixel_mean``/``pixel_std`` (of pixel values scaled to ``[0, 1]``; one
  value, or one per channel) are the dataset statistics the model uses to
  normalise raw images.

  Example::

    >>> from hffjax.config import base_config
    >>> model_config = base_config().model
    >>> model_config.kind, model_config.channels, model_config.pool = "cnn", (8, 16), (False, True)
    >>> model = build_model(model_config, input_shape=(12, 12, 1), num_classes=5, seed=0)
    >>> [type(b).__name__ for b in model.blocks], [h.prototypes.shape for h in model.heads]
    (['ConvBlock', 'ConvBlock'], [(5, 8), (5, 16)])
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
    frozen=frozen,
    rngs=rngs,
  )


__all__ = ["BUILDERS", "DTYPES", "build_blocks", "build_model", "register_builder"]
