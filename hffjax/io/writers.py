"""``metrics.jsonl``: one JSON object per evaluation, appended as whole lines."""

from __future__ import annotations

import json
import os

from hffjax.io.checkpoint import warn

FILENAME = "metrics.jsonl"
WALL_CLOCK_KEYS = (
  "time",
  "epoch_seconds",
  "train_examples_per_second",
  "eval_examples_per_second",
  "eval_seconds",
  "examples_per_second",
)


def append(path: str, record: dict) -> None:
  """Appends one record with a single write, so a killed run never leaves half a line."""
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read(path: str) -> list[dict]:
  """Every whole record; a trailing partial line (a run killed mid-write) is skipped with a warning."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split("\n")
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
      raise
  return records


def keep_up_to(path: str, step: int | None) -> None:
  """Drops records past ``step`` (work a resumed run redoes) and any partial line, atomically."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    text = f.read()
  records = read(path)
  kept = [r for r in records if step is not None and r["step"] <= step]
  if not text or (kept == records and text.endswith("\n")):
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
