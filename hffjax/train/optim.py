"""The optimizer a config names: Adam or AdamW with an optional schedule."""

from __future__ import annotations

import jax
import ml_collections
import optax


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam or AdamW, with an optional warm-up and cosine decay to zero."""
  lr = config.learning_rate
  if config.lr_schedule == "cosine":
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    lr = optax.warmup_cosine_decay_schedule(
      0.0 if warmup else lr, lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1)
    )
  elif config.warmup_steps:
    lr = optax.linear_schedule(0.0, lr, config.warmup_steps)
  if config.optimizer == "adamw":
    # Decay kernels only: prototypes are normalised anyway, biases and norms should not shrink.
    def decay_mask(params):
      return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
      )

    return optax.adamw(lr, weight_decay=config.weight_decay, mask=decay_mask)
  return optax.adam(lr)
