"""Helpers shared by the benchmark scripts that train through the ``hffjax train`` CLI."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from hffjax import config as config_lib
from hffjax.errors import HFFError
from hffjax.io import writers
from hffjax.main import split_overrides
from hffjax.train import evaluate_workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(config: str, workdir: str, overrides: list[str]) -> bool:
  """Trains (or resumes) one run; False when it stopped early (SIGTERM saves and exits 0)."""
  argv = [sys.executable, "-m", "hffjax", "train", "--config", config, "--workdir", workdir, *overrides]
  if subprocess.run(argv, cwd=ROOT).returncode:
    sys.exit(f"hffjax train --config {config} --workdir {workdir} failed (its error is above)")
  return finished(workdir)


def finished(workdir: str) -> bool:
  """Whether the run in ``workdir`` has logged its last epoch."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      epochs = json.load(f)["num_epochs"]
  except FileNotFoundError:
    return False
  records = writers.read(os.path.join(workdir, writers.FILENAME))
  return bool(records) and records[-1].get("epoch") == epochs


def resolved_config(config: str, overrides: list[str]):
  """The config ``hffjax train --config CONFIG OVERRIDES`` trains (an ``ml_collections.ConfigDict``)."""
  try:
    c = config_lib.load_config(config)
    config_lib.apply_overrides(c, split_overrides(overrides)[1])
  except HFFError as e:
    sys.exit(f"{config} {' '.join(overrides)}: {e}")
  return c


def check_runs(parser, runs: dict[str, tuple[str, list[str]]]) -> None:
  """Refuses, through ``parser``, a run whose config (``name: (config, overrides)``) is invalid.

  Called before any run trains, so a bad override stops the script at once, not hours in.
  """
  for name, (config, overrides) in runs.items():
    try:
      config_lib.validate_config(resolved_config(config, overrides))
    except HFFError as e:
      parser.error(f"{name}: {e}")


def summarise(workdir: str) -> dict:
  """Test accuracy (last learner, every learner), validation accuracy and s/epoch of a finished run."""
  records = writers.read(os.path.join(workdir, writers.FILENAME))
  result = evaluate_workdir(workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    settings = json.load(f)
  seconds = [r["epoch_seconds"] for r in records if "epoch_seconds" in r]
  steps_per_epoch = records[-1]["step"] / records[-1]["epoch"]
  return {
    "steps": result["step"],
    "epochs": records[-1]["epoch"],
    "test_accuracy": result["test_accuracy"],
    "layer_accuracy": result["layer_accuracy"],
    "validation_accuracy": records[-1].get("validation_accuracy"),
    "seconds_per_epoch": statistics.mean(seconds),
    # From the median interval's step rate: robust to the first interval (compilation), to an
    # interval cut short by a pause (a resumed epoch is partly timed) and to a busy machine.
    "median_seconds_per_epoch": steps_per_epoch / statistics.median(r["steps_per_second"] for r in records),
    "learner_fingerprints": result["learner_fingerprints"],
    "settings": settings,  # the run's whole config, as its config.json holds it
  }


def percent(x: float | None) -> str:
  return "n/a" if x is None else f"{100 * x:.2f}%"
