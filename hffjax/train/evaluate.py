"""Exact evaluation over a whole split, and the per-block summary table."""

from __future__ import annotations

import time

import jax
import numpy as np

from hffjax import sharding
from hffjax.data import eval_batches
from hffjax.train.state import TrainState


def evaluate(
  eval_fn, state: TrainState, images: np.ndarray, labels: np.ndarray, mesh, batch_size: int
) -> dict:
  """Exact accuracy over every example (the last batch is padded and masked)."""
  counts, start = None, time.perf_counter()
  for x, y, m in eval_batches(images, labels, batch_size):
    c = eval_fn(state.params, state.batch_stats, *sharding.global_batch(mesh, x, y, m))
    counts = c if counts is None else counts + c
  counts = np.asarray(jax.device_get(counts), np.int64)
  seconds = time.perf_counter() - start
  n = len(images)
  return {
    "test_accuracy": counts[-2] / n,
    "ensemble_accuracy": counts[-1] / n,
    "layer_accuracy": [c / n for c in counts[:-2]],
    "num_examples": n,
    "eval_seconds": seconds,
    "examples_per_second": n / seconds,
  }


def format_summary(result: dict) -> str:
  """A per-block accuracy table."""
  lines = ["", "block  test accuracy", "-----  -------------"]
  for i, acc in enumerate(result["layer_accuracy"]):
    lines.append(f"{i:>5}  {100 * acc:12.2f}%")
  lines.append(f" last  {100 * result['test_accuracy']:12.2f}%")
  lines.append(f"  ens  {100 * result['ensemble_accuracy']:12.2f}%")
  return "\n".join(lines)
