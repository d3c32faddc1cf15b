"""Running sums of the training metrics since the last evaluation, kept on the host."""

from __future__ import annotations

import time

import numpy as np


class NonFiniteLoss(Exception):
  """A block's loss became NaN or infinite; the loop turns it into a user-facing error."""

  def __init__(self, block: int, value: float):
    super().__init__(f"loss of block {block} became {value}")
    self.block, self.value = block, value


class Meter:
  """Sums of per-step metrics over one evaluation interval; saved with mid-interval checkpoints."""

  def __init__(self, num_blocks: int, batch_size: int, saved: dict | None = None):
    """Starts an interval, or continues one from :meth:`to_dict` of a checkpoint."""
    self.batch_size = batch_size
    self.steps = 0
    self.loss = 0.0
    self.block_loss = np.zeros(num_blocks)
    self.block_correct = None  # stays None for methods that do not score classes while training
    if saved:
      self.steps, self.loss = saved["steps"], saved["loss"]
      self.block_loss = np.asarray(saved["block_loss"], np.float64)
      if saved["block_correct"] is not None:
        self.block_correct = np.asarray(saved["block_correct"], np.int64)
    self.start = time.perf_counter()
    self.steps_at_start = self.steps

  def to_dict(self) -> dict:
    return {
      "steps": self.steps,
      "loss": self.loss,
      "block_loss": self.block_loss.tolist(),
      "block_correct": None if self.block_correct is None else self.block_correct.tolist(),
    }

  @property
  def seen(self) -> int:
    return self.steps * self.batch_size

  def add(self, metrics: dict, num_steps: int = 1) -> None:
    """Adds the host metrics of ``num_steps`` steps (summed over them).

    Raises:
      NonFiniteLoss: a block's loss is NaN or infinite.
    """
    block_loss = np.asarray(metrics["block_loss"], np.float64)
    bad = np.flatnonzero(~np.isfinite(block_loss))
    if bad.size:
      raise NonFiniteLoss(int(bad[0]), float(block_loss[bad[0]]))
    self.steps += num_steps
    self.loss += float(metrics["loss"])
    self.block_loss += block_loss
    if "block_correct" in metrics:
      correct = np.asarray(metrics["block_correct"], np.int64)
      self.block_correct = correct if self.block_correct is None else self.block_correct + correct

  def seconds(self) -> float:
    return time.perf_counter() - self.start

  def examples_per_second(self, seconds: float) -> float:
    """Training examples (global batches) per second over the steps timed in ``seconds``."""
    return (self.steps - self.steps_at_start) * self.batch_size / max(seconds, 1e-9)

  def accuracy(self) -> float | None:
    return None if self.block_correct is None else float(self.block_correct[-1]) / max(self.seen, 1)

  def postfix(self) -> dict:
    out = {"loss": f"{self.loss / max(self.steps, 1):.4f}"}
    if self.block_correct is not None:
      out["acc"] = f"{self.accuracy():.4f}"
    return out

  def summary(self) -> dict:
    steps = max(self.steps, 1)
    return {
      "train_loss": self.loss / steps,
      "block_train_loss": (self.block_loss / steps).tolist(),
      "train_accuracy": self.accuracy(),
    }
