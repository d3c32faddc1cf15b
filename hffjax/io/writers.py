"""Metric writers: ``metrics.jsonl`` (one JSON object per evaluation) and TensorBoard event files.

Only process 0 writes; :class:`MetricWriter` is a no-op on the others.
"""

from __future__ import annotations

import json

from hffjax.errors import HFFError
from hffjax.io import storage
from hffjax.io.checkpoint import warn

FILENAME = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
WALL_CLOCK_KEYS = (
  "time",
  "epoch_seconds",
  "interval_seconds",
  "steps_per_second",
  "train_examples_per_second",
  "eval_examples_per_second",
  "eval_seconds",
  "examples_per_second",
)


def append(path: str, record: dict) -> None:
  """Appends one record with a single write, so a killed run never leaves half a line."""
  storage.append_line(path, json.dumps(record) + "\n")


def read(path: str) -> list[dict]:
  """Every whole record; a trailing partial line (a run killed mid-write) is skipped with a warning."""
  if not storage.exists(path):
    return []
  lines = storage.read_text(path).split("\n")
  records = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if i == len(lines) - 1:  # no newline after it: an interrupted write
        warn(f"{path}: skipping a partial last line")
        continue
      raise HFFError(f"{path} line {i + 1} is not a JSON record; repair or delete that line") from None
  return records


def keep_up_to(path: str, step: int | None) -> None:
  """Drops records past ``step`` (work a resumed run redoes) and any partial line, atomically.

  One record per step is kept (the last one written for it), in step order.
  """
  if not storage.exists(path):
    return
  text = storage.read_text(path)
  records = read(path)
  last = {r["step"]: r for r in records if step is not None and r["step"] <= step}
  kept = [last[s] for s in sorted(last)]
  if not text or (kept == records and text.endswith("\n")):
    return
  storage.write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


class MetricWriter:
  """Appends evaluation records to ``metrics.jsonl`` and their numbers to TensorBoard (process 0 only).

  TensorBoard files are written with ``tensorboardX`` (no TensorFlow needed)
  when it is installed.
  """

  def __init__(self, workdir: str, *, enabled: bool, resume_step: int | None = None):
    """``resume_step``: the step a resumed run continues from; later TensorBoard events are dropped."""
    self.enabled = enabled
    self.path = storage.join(workdir, FILENAME)
    self._tb = None
    if enabled:
      try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415  (optional)
      except ImportError:
        SummaryWriter = None
      if SummaryWriter is not None and storage.is_object_store(workdir):
        warn(f"TensorBoard files are written to filesystems only; {workdir} gets metrics.jsonl alone")
      elif SummaryWriter is not None:
        # Events past the step training continues from belong to work it redoes: drop them.
        purge = (resume_step or 0) + 1
        self._tb = SummaryWriter(storage.join(workdir, TENSORBOARD_DIR), flush_secs=30, purge_step=purge)

  def keep_up_to(self, step: int | None) -> None:
    if self.enabled:
      keep_up_to(self.path, step)

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    append(self.path, record)
    if self._tb is not None:
      step = int(record["step"])
      for key, value in record.items():
        if key in ("step", "time"):
          continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          self._tb.add_scalar(key, value, step)
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
          for i, v in enumerate(value):
            self._tb.add_scalar(f"{key}/{i}", v, step)
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
