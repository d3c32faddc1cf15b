"""Image files (PNG, JPEG, ...) read into the array a model expects: ``[N, H, W, K]`` uint8."""

from __future__ import annotations

import os

import numpy as np

from hffjax.errors import HFFError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def expand_paths(paths: list[str]) -> list[str]:
  """Files as given, and the image files of each folder (sorted)."""
  out = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))
      if not found:
        raise HFFError(f"folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
      out.extend(found)
    elif os.path.isfile(path):
      out.append(path)
    else:
      raise HFFError(f"{path} does not exist; give image files or folders of them")
  if not out:
    raise HFFError("no images given; name image files or folders")
  return out


def read_images(paths: list[str], shape: tuple[int, int, int]) -> np.ndarray:
  """Each file converted to ``shape``'s channels (1: grey, 3: RGB) and resized to its height and width."""
  from PIL import Image, UnidentifiedImageError  # noqa: PLC0415  (only this command reads image files)

  h, w, k = shape
  if k not in (1, 3):
    raise HFFError(f"the model takes {k}-channel images; only 1 (grey) or 3 (RGB) can be read from files")
  images = []
  for path in paths:
    try:
      with Image.open(path) as image:
        image = image.convert("L" if k == 1 else "RGB")
        if image.size != (w, h):
          image = image.resize((w, h), Image.Resampling.BILINEAR)
        array = np.asarray(image, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
      raise HFFError(f"cannot read image {path} ({type(e).__name__}: {e}); give PNG or JPEG files") from None
    images.append(array.reshape(h, w, k))
  return np.stack(images)
