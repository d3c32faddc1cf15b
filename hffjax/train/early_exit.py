"""Early-exit inference that saves compute: an example stops at its first confident block.

Each block runs as its own jitted function (block ``l``'s activity in; its
activity, prediction and confidence out). Between blocks the examples still
undecided are compacted on the host and pooled across batches, and every
call runs on a bucket of a fixed size (powers of two), so a stream of batches
compiles each block at most once per bucket, whatever their compaction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hffjax.io import workdir as workdir_lib
from hffjax.models.stack import interblock_normalize
from hffjax.train.predict import block_confidence, check_early_exit


class EarlyExit:
  """Serves an :class:`~hffjax.models.HFFNet` with early exit.

  Args:
    model: a trained HFF model.
    threshold: an example leaves at the first block whose confidence is strictly above this.
    confidence: ``"softmax"`` (largest probability, in [0, 1]) or ``"margin"`` (gap between the two
      largest cosines, in [0, 2]).
    max_bucket: the largest call; buckets are the powers of two up to it.
  """

  def __init__(self, model: nnx.Module, threshold: float, confidence: str = "softmax", max_bucket: int = 256):
    check_early_exit(model, threshold, confidence)
    self.threshold = float(threshold)
    self.num_blocks = model.num_blocks
    self.input_shape = tuple(model.input_shape)
    self.buckets = [1 << i for i in range(max(int(max_bucket), 1).bit_length()) if 1 << i <= max_bucket]
    self.traces = 0  # how many times a block function was traced (= compiled), for tests
    graphdef, self._state = nnx.split(model)

    def block_fn(state, x, block: int):
      self.traces += 1
      m = nnx.merge(graphdef, state)
      h = m.normalize_images(x) if block == 0 else interblock_normalize(x, m.interblock_norm)
      a, r = m.blocks[block](h, train=False)
      logits = m.heads[block](r)
      return a, jnp.argmax(logits, -1), block_confidence(logits, m.heads[block].scale, confidence)

    self._block = jax.jit(block_fn, static_argnums=2)

  def _bucket(self, n: int) -> int:
    return next(b for b in self.buckets if b >= n)

  def _run(self, block: int, x: np.ndarray):
    """One call of ``block`` on ``len(x) <= max bucket`` examples, padded to a bucket."""
    n, size = len(x), self._bucket(len(x))
    padded = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)]) if size > n else x
    a, classes, conf = self._block(self._state, padded, block)
    return np.asarray(a)[:n], np.asarray(classes)[:n], np.asarray(conf)[:n]

  def predict(self, batches, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, exit_block)`` for every example of an iterable of image batches, in order.

    Undecided examples wait in a pool per block until a full bucket is ready
    (or the stream ends), so calls stay full as examples leave. ``threshold``
    overrides the server's own (it is applied on the host, so no recompilation).
    """
    threshold = self.threshold if threshold is None else float(threshold)
    pools = [[] for _ in range(self.num_blocks)]  # per block: [(ids, inputs), ...] waiting
    classes, exits, seen = {}, {}, 0
    top = self.buckets[-1]

    def drain(block: int, final: bool):
      waiting = sum(len(ids) for ids, _ in pools[block])
      while waiting >= top or (final and waiting):
        ids = np.concatenate([i for i, _ in pools[block]])
        xs = np.concatenate([x for _, x in pools[block]])
        take = min(top, len(ids))
        pools[block] = [(ids[take:], xs[take:])] if take < len(ids) else []
        waiting -= take
        a, cls, conf = self._run(block, xs[:take])
        done = (conf > threshold) | (block == self.num_blocks - 1)
        for i, c in zip(ids[:take][done], cls[done], strict=True):
          classes[int(i)], exits[int(i)] = int(c), block
        if not done.all():
          pools[block + 1].append((ids[:take][~done], a[~done]))

    for images in batches:
      images = np.asarray(images)
      pools[0].append((np.arange(seen, seen + len(images)), images))
      seen += len(images)
      for block in range(self.num_blocks):
        drain(block, final=False)
    for block in range(self.num_blocks):
      drain(block, final=True)
    order = range(seen)
    return np.asarray([classes[i] for i in order], np.int32), np.asarray([exits[i] for i in order], np.int32)

  def predict_one(self, image: np.ndarray) -> tuple[int, int]:
    """Batch-1 latency form: ``(class, exit block)`` of one image, running blocks until one is confident."""
    x = np.asarray(image)[None]
    for block in range(self.num_blocks):
      x, cls, conf = self._run(block, x)
      if conf[0] > self.threshold or block == self.num_blocks - 1:
        return int(cls[0]), block
    raise AssertionError("unreachable")

  def warm(self) -> None:
    """Compiles every block at every bucket size, so that timed serving compiles nothing."""
    shape, dtype = self.input_shape, jnp.uint8
    for block in range(self.num_blocks):
      out = None
      for size in self.buckets:
        out = self._block(self._state, jnp.zeros((size, *shape), dtype), block)
      shape, dtype = out[0].shape[1:], out[0].dtype

  def block_flops(self) -> list[float]:
    """Each block's compiled FLOPs per example (at the largest bucket), from XLA's cost analysis."""
    x = jax.ShapeDtypeStruct((self.buckets[-1], *self.input_shape), jnp.uint8)
    out = []
    for block in range(self.num_blocks):
      compiled = self._block.lower(self._state, x, block).compile()
      out.append(float(compiled.cost_analysis()["flops"]) / self.buckets[-1])
      x = jax.eval_shape(lambda s, x, b=block: self._block(s, x, b)[0], self._state, x)
    return out


EARLY_EXIT_FILE = workdir_lib.EARLY_EXIT_FILE  # in the workdir: the last `hffjax eval --early_exit`
SOFTMAX_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
MARGIN_GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)


def _split_batches(ds, split: str, batch_size: int) -> tuple[list[np.ndarray], np.ndarray]:
  """A split's images as host batches, and all its labels (streamed splits are read once)."""
  from hffjax.data.pipeline import eval_iterator  # noqa: PLC0415

  images, labels = [], []
  for b in eval_iterator(ds, split, batch_size):
    mask = np.asarray(b["mask"], bool)
    images.append(np.asarray(b["image"])[mask])
    labels.append(np.asarray(b["label"])[mask])
  return images, np.concatenate(labels)


def _timed(fn):
  import time  # noqa: PLC0415

  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def evaluate_early_exit(
  workdir: str,
  confidence: str = "softmax",
  thresholds=None,
  *,
  target_loss: float = 0.002,
  batch_size: int = 1000,
  max_bucket: int = 256,
) -> dict:
  """Accuracy, compute and speed of early exit on the test split, over a grid of thresholds.

  Returns a dict with ``full`` (ordinary inference, the whole model as one
  jitted program per batch: ``accuracy``, ``examples_per_second``,
  ``flops_per_example``), ``block_flops`` (per
  example), ``thresholds`` (one dict per threshold: ``threshold``,
  ``accuracy``, ``mean_blocks``, ``exit_fraction`` per block,
  ``flops_per_example``, ``examples_per_second``) and, when the run has a
  validation split, ``chosen``: the threshold with the least compute whose
  *validation* accuracy is at most ``target_loss`` below full inference there.
  """
  from hffjax.train.experiment import restore_experiment  # noqa: PLC0415
  from hffjax.train.predict import CONFIDENCES  # noqa: PLC0415

  exp, state, step = restore_experiment(workdir)
  model = exp.model(state)
  grid = tuple(thresholds) if thresholds else (SOFTMAX_GRID if confidence == "softmax" else MARGIN_GRID)
  for t in grid:
    check_early_exit(model, t, confidence)
  top = CONFIDENCES[confidence][1]

  def measure(split: str) -> tuple[dict, list[dict], list[float]]:
    batches, labels = _split_batches(exp.dataset, split, batch_size)
    # Ordinary inference: the whole model as one jitted program per batch.
    graphdef, params = nnx.split(model)

    @jax.jit
    def infer(p, x):
      m = nnx.merge(graphdef, p)
      return jnp.argmax(m.predict_scores(m(x, train=False)), -1)

    def full_pass():
      return np.concatenate([np.asarray(infer(params, b)) for b in batches])

    full_pass()  # compile (and warm) before timing
    full_classes, full_seconds = _timed(full_pass)
    server = EarlyExit(model, top, confidence, max_bucket)  # one server for the grid: blocks compile once
    server.warm()
    server.predict(batches, top)  # a first, untimed pass through the serving path
    block_flops = server.block_flops()
    full = {
      "accuracy": float(np.mean(full_classes == labels)),
      "examples_per_second": len(labels) / full_seconds,
      "flops_per_example": sum(block_flops),
    }
    rows = []
    for t in grid:
      (classes, exits), seconds = _timed(lambda t=t: server.predict(batches, t))
      counts = np.bincount(exits, minlength=model.num_blocks)
      rows.append(
        {
          "threshold": float(t),
          "accuracy": float(np.mean(classes == labels)),
          "mean_blocks": float(np.mean(exits + 1)),
          "exit_fraction": (counts / len(labels)).tolist(),
          "flops_per_example": float(np.dot(counts / len(labels), np.cumsum(block_flops))),
          "examples_per_second": len(labels) / seconds,
        }
      )
    return full, rows, block_flops

  full, rows, block_flops = measure("test")
  result = {
    "step": step,
    "confidence": confidence,
    "full": full,
    "block_flops": block_flops,
    "thresholds": rows,
  }
  if exp.dataset.validation is not None:
    val_full, val_rows, _ = measure("validation")
    ok = [r for r in val_rows if val_full["accuracy"] - r["accuracy"] <= target_loss]
    if ok:
      best = min(ok, key=lambda r: r["flops_per_example"])
      test_row = next(r for r in rows if r["threshold"] == best["threshold"])
      result["chosen"] = {
        "threshold": best["threshold"],
        "target_loss": target_loss,
        "validation_accuracy_loss": val_full["accuracy"] - best["accuracy"],
        "test_accuracy": test_row["accuracy"],
        "test_speedup": test_row["examples_per_second"] / full["examples_per_second"],
        "test_flops_fraction": test_row["flops_per_example"] / full["flops_per_example"],
      }
  return result
