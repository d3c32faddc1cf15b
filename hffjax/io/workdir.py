"""The workdir: the config it was trained with, and the guard against mixing runs."""

from __future__ import annotations

import json
import os
import shutil

import ml_collections

from hffjax import config as config_lib
from hffjax.errors import HFFError
from hffjax.io import writers


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str, overwrite: bool) -> None:
  """Refuses a workdir trained with another config (but for num_epochs) unless ``overwrite``."""
  config_path = os.path.join(workdir, "config.json")
  if os.path.isfile(config_path):
    with open(config_path) as f:
      saved = json.loads(f.read())
    now = json.loads(config_lib.to_json(config))
    changed = sorted(k for k in set(saved) | set(now) if k != "num_epochs" and saved.get(k) != now.get(k))
    if changed and not overwrite:
      raise HFFError(
        f"{workdir} holds a run with a different config ({', '.join(changed)} differ); "
        "use another --workdir, or --overwrite to discard that run"
      )
    if changed or overwrite:
      shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
      for name in (writers.FILENAME, "config.json", "data.json"):
        if os.path.exists(os.path.join(workdir, name)):
          os.remove(os.path.join(workdir, name))
  os.makedirs(workdir, exist_ok=True)
  with open(config_path, "w") as f:
    f.write(config_lib.to_json(config))
