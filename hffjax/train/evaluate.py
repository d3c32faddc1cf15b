"""Exact evaluation over a whole split, and the per-block summary table."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from hffjax import sharding
from hffjax.data import ArraySource, Dataset, guarded_eval_iterator
from hffjax.errors import HFFError
from hffjax.train.state import TrainState


def evaluate_split(eval_fn, state: TrainState, ds: Dataset, split: str, mesh, batch_size: int) -> dict:
  """Exact accuracy over every record of ``ds``'s ``split``, read by every process for its own devices.

  The last batch is padded and masked; the counts are summed on the devices,
  so every process gets the same exact totals. A record that one process
  cannot read raises on every process once the split has been read.
  """
  counts, start = None, time.perf_counter()
  batches = guarded_eval_iterator(
    ds, split, batch_size, process_index=jax.process_index(), process_count=jax.process_count()
  )
  try:
    for b in batches:
      c = eval_fn(
        state.params, state.batch_stats, *sharding.to_global(mesh, b["image"], b["label"], b["mask"])
      )
      counts = c if counts is None else jax.tree.map(jnp.add, counts, c)
  finally:
    batches.close()
  counts = jax.tree.map(lambda x: np.asarray(x, np.int64), sharding.fetch(counts))
  if "unreadable" not in counts:  # an eval function that does not count stand-ins: ask every process
    sharding.raise_if_any(batches.error, f"reading the {split} split")
  elif bad := int(counts["unreadable"]):  # the same on every process: all of them raise together
    sharding.raise_if_any(batches.error, f"reading the {split} split")
    raise HFFError(
      f"the {split} split has {bad} example{'s' * (bad != 1)} with a negative label; fix the labels"
    )
  seconds = time.perf_counter() - start
  n = len(getattr(ds, split))
  result = {
    "test_accuracy": counts["model"] / n,
    "ensemble_accuracy": counts["ensemble"] / n,
    "layer_accuracy": [c / n for c in counts["block"]],
    "num_examples": n,
    "eval_seconds": seconds,
    "examples_per_second": n / seconds,
  }
  if "top5" in counts:
    result["top5_accuracy"] = counts["top5"] / n
  for name, c in counts.get("rules", {}).items():
    result[f"{name}_accuracy"] = c / n
  return result


def evaluate(
  eval_fn, state: TrainState, images: np.ndarray, labels: np.ndarray, mesh, batch_size: int
) -> dict:
  """:func:`evaluate_split` over in-memory arrays."""
  ds = Dataset("arrays", ArraySource(images[:1], labels[:1]), ArraySource(images, labels), num_classes=0)
  return evaluate_split(eval_fn, state, ds, "test", mesh, batch_size)


def format_summary(result: dict) -> str:
  """A per-block accuracy table, then the model's own rule (``model``: the last block for HFF and
  backprop, goodness over the blocks for Forward-Forward) and the ensemble."""
  lines = ["", "block  test accuracy", "-----  -------------"]
  for i, acc in enumerate(result["layer_accuracy"]):
    lines.append(f"{i:>5}  {100 * acc:12.2f}%")
  lines.append(f"model  {100 * result['test_accuracy']:12.2f}%")
  lines.append(f"  ens  {100 * result['ensemble_accuracy']:12.2f}%")
  if "readout_accuracy" in result:
    lines.append(f" read  {100 * result['readout_accuracy']:12.2f}%  (one pass, neutral label)")
  return "\n".join(lines)
