"""Running sums of one epoch's training metrics, kept on the host."""

from __future__ import annotations

import time

import numpy as np

from hffjax.errors import HFFError


def _check_finite(metrics: dict, step: int, last_saved: int | None, ckpt_dir: str) -> None:
  block_loss = np.asarray(metrics["block_loss"])
  bad = np.flatnonzero(~np.isfinite(block_loss))
  if bad.size:
    kept = (
      f"checkpoint {last_saved} in {ckpt_dir} is kept"
      if last_saved is not None
      else "no checkpoint was saved"
    )
    raise HFFError(
      f"loss of block {int(bad[0])} became {block_loss[bad[0]]} at step {step}; {kept}; lower learning_rate"
    )


class EpochMeter:
  """Running sums of one epoch's training metrics, on the host."""

  def __init__(self, num_blocks: int, batch_size: int, saved: dict | None = None):
    """Starts an epoch, or continues one from :meth:`to_dict` of a checkpoint."""
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

  def add(self, metrics: dict, step: int, last_saved: int | None, ckpt_dir: str) -> None:
    _check_finite(metrics, step, last_saved, ckpt_dir)
    self.steps += 1
    self.loss += float(metrics["loss"])
    self.block_loss += metrics["block_loss"]
    if "block_correct" in metrics:
      correct = np.asarray(metrics["block_correct"], np.int64)
      self.block_correct = correct if self.block_correct is None else self.block_correct + correct

  def seconds(self) -> float:
    return time.perf_counter() - self.start

  def accuracy(self) -> float | None:
    return None if self.block_correct is None else float(self.block_correct[-1]) / max(self.seen, 1)

  def postfix(self) -> dict:
    out = {"loss": f"{self.loss / self.steps:.4f}"}
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
