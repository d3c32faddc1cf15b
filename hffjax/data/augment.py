"""Augmentations that run on the device inside the jitted step (pure functions of a key)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_shift(key: jax.Array, images_BxHxWxK: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image by up to ``max_shift`` pixels each way, filling with zeros (black)."""
  b, h, w, k = images_BxHxWxK.shape
  padded = jnp.pad(images_BxHxWxK, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  offsets_Bx2 = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
  crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, k))  # noqa: E731
  return jax.vmap(crop)(padded, offsets_Bx2)


def random_flip(key: jax.Array, images_BxHxWxK: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  flip_B = jax.random.bernoulli(key, 0.5, (images_BxHxWxK.shape[0],))
  return jnp.where(flip_B[:, None, None, None], images_BxHxWxK[:, :, ::-1, :], images_BxHxWxK)
