"""Augmentations: on the device inside the jitted step (flip, shift), or on the host for images of any size.

Every random draw is a pure function of (seed, step, position), so a resumed
run sees the same augmented batches.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


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


# Host-side transforms for datasets whose images differ in size (run in the input workers).


def _resize(image_HxWxK: np.ndarray, height: int, width: int) -> np.ndarray:
  channels = image_HxWxK.shape[-1]
  pil = Image.fromarray(image_HxWxK[..., 0] if channels == 1 else image_HxWxK)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out[..., None] if out.ndim == 2 else out


def random_resized_crop(
  rng: np.random.Generator,
  image_HxWxK: np.ndarray,
  size: int,
  scale: tuple[float, float] = (0.08, 1.0),
  ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
  """Inception-style crop: a random area fraction and aspect ratio, resized to ``size × size``.

  Falls back to a centre crop of the largest allowed aspect when ten draws miss.
  """
  h, w = image_HxWxK.shape[:2]
  area = h * w
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
    if 0 < cw <= w and 0 < ch <= h:
      top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
      return _resize(image_HxWxK[top : top + ch, left : left + cw], size, size)
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return _resize(image_HxWxK[top : top + side, left : left + side], size, size)


def resize_center_crop(image_HxWxK: np.ndarray, size: int, crop_fraction: float = 0.875) -> np.ndarray:
  """Evaluation transform: shorter side to ``size / crop_fraction``, then the central ``size × size``."""
  h, w = image_HxWxK.shape[:2]
  short = max(round(size / crop_fraction), size)
  nh, nw = (short, max(round(w * short / h), size)) if h <= w else (max(round(h * short / w), size), short)
  resized = _resize(image_HxWxK, nh, nw)
  top, left = (nh - size) // 2, (nw - size) // 2
  return resized[top : top + size, left : left + size]
