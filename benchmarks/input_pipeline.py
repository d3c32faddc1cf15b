"""Input pipeline throughput alone (no training step): images/s one process reads and prepares.

  python benchmarks/input_pipeline.py [--out benchmarks/results/input_pipeline-<machine>.json]

Three cases, each one epoch (after a first batch to warm up):
  * Fashion-MNIST from its IDX files (28×28×1, in memory), batch 128;
  * 32×32×3 in memory (CIFAR's shape, generated), batch 128, plus the pad-4 random crop + flip
    that hffjax runs on the device inside the step (timed separately, jitted, on this machine's
    default device);
  * a TFDS ArrayRecord dataset of generated images of varying size (96–400 px a side), streamed,
    random-resized-crop + flip to 224×224 on the host, batch 64, with 0 (a reader thread) and
    2 worker processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from tfds_fixture import build_variable_size_dataset  # noqa: E402  (a TFDS builder over generated images)

from hffjax import bench, data  # noqa: E402
from hffjax.config import base_config  # noqa: E402
from hffjax.data import augment  # noqa: E402


def _epoch_rate(ds, batch_size: int, **kwargs) -> float:
  order = data.TrainOrder(len(ds.train), batch_size, seed=0)
  it = data.train_iterator(ds, order, 0, order.steps_per_epoch, **kwargs)
  next(it)  # start-up (threads, worker processes)
  start, images = time.perf_counter(), 0
  for batch in it:
    images += len(batch["image"])
  return images / (time.perf_counter() - start)


def _device_crop_flip_rate(batch_size: int, repeats: int = 50) -> float:
  images = jax.device_put(np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8))

  @jax.jit
  def crop_flip(key, x):
    k1, k2 = jax.random.split(key)
    return augment.random_shift(k2, augment.random_flip(k1, x), 4)

  jax.block_until_ready(crop_flip(jax.random.key(0), images))
  start = time.perf_counter()
  for i in range(repeats):
    out = crop_flip(jax.random.key(i), images)
  jax.block_until_ready(out)
  return repeats * batch_size / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
  parser.add_argument("--variable_size_records", type=int, default=1024)
  args = parser.parse_args()

  rows = {}
  c = base_config()
  fmnist = data.load_dataset(c)
  rows["fashion_mnist_28x28x1"] = _epoch_rate(fmnist, 128)

  cifar_like = data.make_synthetic(
    num_train=50_000, num_test=10, image_shape=(32, 32, 3), num_classes=10, seed=0
  )
  rows["cifar_shape_32x32x3_read"] = _epoch_rate(cifar_like, 128)
  rows["cifar_shape_32x32x3_device_crop_flip"] = _device_crop_flip_rate(128)

  with tempfile.TemporaryDirectory() as tmp:
    build_variable_size_dataset(
      tmp, name="pipeline_bench", num_train=args.variable_size_records, num_test=8, max_side=400
    )
    c = base_config()
    c.dataset, c.data_dir, c.image_size = "pipeline_bench", tmp, 224
    varsize = data.load_dataset(c)
    rows["variable_size_rrc_224_thread"] = _epoch_rate(varsize, 64)
    rows["variable_size_rrc_224_2_workers"] = _epoch_rate(varsize, 64, workers=2)

  info = bench.machine_info()
  report = {"machine": info, "images_per_second": rows, "command": " ".join(["python", *sys.argv])}
  for name, rate in rows.items():
    print(f"{name:40s} {rate:10.0f} images/s")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(report, f, indent=2)


if __name__ == "__main__":
  main()
