"""The optimizer a config names: Adam, AdamW or SGD with momentum, an optional schedule, and frozen learners."""

from __future__ import annotations

import jax
import ml_collections
import optax

from hffjax import sharding
from hffjax.io.checkpoint import warn
from hffjax.models.pretrained import learner_of, path_keys

READOUT_LEARNING_RATE = 1e-3


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam, AdamW or SGD with momentum, with an optional warm-up and cosine decay to zero; ``config.freeze`` learners fixed.

  A frozen learner's block parameters go through ``optax.set_to_zero`` in a
  ``multi_transform``: their updates are zero and the optimizer keeps no
  state for them (their gradients are then dead code the compiler drops).
  Its prototype head keeps training: a head re-initialised for new classes
  must learn, and a head's gradient never reaches the block.

  Forward-Forward's one-pass read-out (a linear probe on stop-gradient
  features) is trained with Adam at :data:`READOUT_LEARNING_RATE` whatever
  trains the blocks: with SGD at the blocks' rate a linear layer on
  thousands of unit-RMS features oscillates.
  """
  tx = _base_optimizer(config, total_steps)
  probe = config.method == "ff"  # Forward-Forward's neutral-label read-out (a linear probe)
  if not config.freeze and not probe:
    return tx
  frozen = {int(i) for i in config.freeze}

  def label(path) -> str:
    keys = path_keys(path)
    if probe and keys[0] == "readout":
      return "readout"
    return "frozen" if keys[0] == "blocks" and learner_of(path) in frozen else "trained"

  def labels(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: label(path), params)

  transforms = {"trained": tx, "frozen": optax.set_to_zero()}
  if probe:
    transforms["readout"] = optax.adam(READOUT_LEARNING_RATE)
  return optax.multi_transform(transforms, labels)


def _base_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  lr = config.learning_rate
  if config.lr_schedule == "cosine":
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    lr = optax.warmup_cosine_decay_schedule(
      0.0 if warmup else lr, lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1)
    )
  elif config.warmup_steps:
    lr = optax.linear_schedule(0.0, lr, config.warmup_steps)

  # Decay kernels only: prototypes are normalised anyway, biases and norms should not shrink.
  def decay_mask(params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params
    )

  if config.optimizer == "adamw":
    return optax.adamw(lr, weight_decay=config.weight_decay, mask=decay_mask)
  if config.optimizer == "sgd":
    return optax.chain(
      optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
      optax.sgd(lr, momentum=config.momentum or None),
    )
  if config.weight_decay and sharding.is_primary():
    warn(
      f"weight_decay={config.weight_decay} has no effect with optimizer='adam'; "
      "use 'adamw' (decoupled decay) or 'sgd' (L2)"
    )
  return optax.adam(lr)
