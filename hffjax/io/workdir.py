"""The workdir: the config it was trained with, the guard against mixing runs, the shared-storage check.

Process 0 alone writes these files and decides whether a run may go on; the
other processes of a multi-host job learn the outcome through a broadcast, so
every process either goes on or stops with the same one-line error. (Every
process reads the saved normalisation statistics: files are replaced
atomically, so each reads a whole one.)
"""

from __future__ import annotations

import json
import posixpath
import secrets

import jax
import ml_collections
import numpy as np

from hffjax import config as config_lib
from hffjax import sharding
from hffjax.errors import HFFError
from hffjax.io import storage, writers

# Keys that change how the host reads data, never what a run computes.
HOST_KEYS = ("data_workers", "data_prefetch")
# Keys a resumed run may change: how long to train, and how the host reads data.
RESUMABLE_KEYS = ("num_epochs", "num_steps", *HOST_KEYS)
MARKER = ".hffjax_job"
UNREADABLE = "config.json (unreadable)"  # what config_changes reports for a config.json it cannot read


def config_changes(workdir: str, config: ml_collections.ConfigDict) -> list[str] | None:
  """Keys whose value differs from the run saved in ``workdir`` (``None``: no run there).

  A saved config is read on top of today's defaults, so a run saved before a
  key existed compares as if it had that key's default.
  """
  config_path = storage.join(workdir, "config.json")
  if not storage.exists(config_path):
    return None
  try:
    text = storage.read_text(config_path)
  except OSError:
    return [UNREADABLE]
  return settings_changes(text, config)


def settings_changes(
  saved: str | dict, config: ml_collections.ConfigDict, ignore: tuple[str, ...] = RESUMABLE_KEYS
) -> list[str]:
  """Keys, other than ``ignore``, whose value differs between a saved config (a config.json's text or
  its parsed dict) and ``config``: by default empty when ``config`` would resume that run. The saved
  config is read on top of today's defaults, so a key added since compares as its default."""
  try:
    text = saved if isinstance(saved, str) else json.dumps(saved)
    then = json.loads(config_lib.to_json(config_lib.from_json(text)))
  except (ValueError, TypeError, AttributeError, HFFError):
    return [UNREADABLE]
  then, now = _flat(then), _flat(json.loads(config_lib.to_json(config)))
  missing = object()
  return sorted(
    k for k in set(then) | set(now) if k not in ignore and then.get(k, missing) != now.get(k, missing)
  )


def _flat(tree: dict, prefix: str = "") -> dict:
  """``{"model": {"widths": …}}`` as ``{"model.widths": …}``, so that a change is named by its own key."""
  out = {}
  for k, v in tree.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
  return out


def same_config(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether ``workdir`` holds a run of ``config`` (one this config resumes)."""
  return config_changes(workdir, config) == []


EARLY_EXIT_FILE = "early_exit.json"  # the last `hffjax eval --early_exit`, for `hffjax plot`
PLOTS_DIR = "plots"  # `hffjax plot`'s figures


def _newest_checkpoint(workdir: str) -> int | None:
  steps = [int(n) for n in storage.listdir(storage.join(workdir, "checkpoints")) if n.isdigit()]
  return max(steps, default=None)


def _check_schedule_length(workdir: str, trained: int, total_steps: int, steps_per_epoch: int) -> None:
  """Refuses a new length for a cosine run that has trained: the schedule spans the whole run, so a
  longer (or shorter) one would give the steps already taken other learning rates than they had."""
  saved = json.loads(storage.read_text(storage.join(workdir, "config.json")))
  if saved.get("num_steps"):
    before, length = int(saved["num_steps"]), f"num_steps={saved['num_steps']}"
  elif "num_epochs" in saved:
    # Epochs of the data it was trained on (data.json's), not of the data given now.
    before = int(saved["num_epochs"]) * trained_steps_per_epoch(workdir, steps_per_epoch)
    length = f"num_epochs={saved['num_epochs']}"
  else:
    return
  if before != total_steps:
    raise HFFError(
      f"{workdir} was trained with a cosine learning-rate schedule over {before} steps ({length}); "
      f"{total_steps} would change the learning rates of the {trained} steps it has taken: keep {length}, "
      f"or train on from its parameters in another workdir with --config.init_from={workdir}"
    )


def _prepare(
  config: ml_collections.ConfigDict, workdir: str, overwrite: bool, data_info: dict, total_steps: int | None
) -> None:
  config_path = storage.join(workdir, "config.json")
  changed = config_changes(workdir, config)
  trained = _newest_checkpoint(workdir)
  if changed is None and (trained is not None or storage.exists(storage.join(workdir, writers.FILENAME))):
    if not overwrite:  # a run whose config was lost: nothing says this config is the one it was trained with
      raise HFFError(
        f"{workdir} holds a run but no config.json, so its config cannot be checked; "
        "restore config.json from a copy of the run, use another --workdir, or --overwrite to discard it"
      )
    changed = ["config.json (missing)"]
  if (
    changed == [] and not overwrite and trained and total_steps is not None and config.lr_schedule == "cosine"
  ):
    _check_schedule_length(workdir, trained, total_steps, data_info.get("steps_per_epoch") or 0)
  if (
    changed == []
    and not overwrite
    and trained is not None
    and total_steps is not None
    and trained > total_steps
  ):
    raise HFFError(
      f"{workdir} has trained to step {trained}, past this config's {total_steps} steps; raise num_epochs "
      f"(or num_steps) to continue it, or evaluate it with `hffjax eval --workdir {workdir}`"
    )
  if changed is not None:
    if changed == [UNREADABLE] and not overwrite:
      raise HFFError(
        f"{config_path} is unreadable or not a saved config, so this run's config cannot be checked; "
        "restore it from a copy of the run, use another --workdir, or --overwrite to discard that run"
      )
    if changed and not overwrite:
      raise HFFError(
        f"{workdir} holds a run with a different config ({', '.join(changed)} differ); "
        "use another --workdir, or --overwrite to discard that run"
      )
    if changed or overwrite:
      # Everything of the discarded run, its evaluation outputs included (a new run's plot must not show them).
      discarded = ("checkpoints", writers.TENSORBOARD_DIR, writers.FILENAME, "config.json", "data.json")
      for name in (*discarded, EARLY_EXIT_FILE, PLOTS_DIR):
        storage.remove(storage.join(workdir, name))
  storage.makedirs(workdir)
  storage.write_atomic(config_path, config_lib.to_json(config))
  storage.write_atomic(storage.join(workdir, "data.json"), json.dumps(data_info))


def prepare_workdir(
  config: ml_collections.ConfigDict,
  workdir: str,
  overwrite: bool,
  data_info: dict | None = None,
  total_steps: int | None = None,
) -> None:
  """Refuses a workdir trained with another config (but for :data:`RESUMABLE_KEYS`) unless ``overwrite``.

  Also refuses a run whose ``config.json`` is gone, and one already trained
  past ``total_steps`` (a shorter ``num_epochs``: the run would not be the
  config's), and a cosine run that has trained, given another number of steps
  (its schedule would not be the one it trained with). Writes ``config.json`` and ``data.json`` (process 0), then checks that every
  process sees the workdir process 0 wrote (a shared filesystem).
  """
  error, token = "", 0
  shared_check = jax.process_count() > 1
  if sharding.is_primary():
    try:
      _prepare(config, workdir, overwrite, data_info or {}, total_steps)
      token = secrets.randbits(30) + 1  # int32: what a broadcast carries without x64
      if shared_check:
        storage.write_atomic(storage.join(workdir, MARKER), str(token))
    except HFFError as e:
      error = str(e)
    except OSError as e:
      error = storage.describe_os_error(e, workdir)
  if not shared_check:
    if error:
      raise HFFError(error)
    return
  # Process 0's outcome to everyone: token 0 means it refused the workdir.
  token = int(sharding.broadcast(np.asarray(token, np.int32)))
  if not token:
    raise HFFError(error or f"process 0 refused {workdir}; see its error message")
  try:
    seen = int(storage.read_text(storage.join(workdir, MARKER)).strip() or 0)
  except (OSError, ValueError):
    seen = -1
  missing = sharding.processes_where(seen != token)  # a collective: every process has read the marker
  if sharding.is_primary():
    try:
      storage.remove(storage.join(workdir, MARKER))
    except OSError:
      pass
  if missing:
    raise HFFError(
      f"{workdir} is not shared: process(es) {', '.join(map(str, missing))} cannot see what process 0 "
      "wrote there; put the workdir on storage every process mounts (e.g. NFS) at the same path"
    )


def read_data_json(folder: str, remedy: str, what: str = "") -> dict | None:
  """``folder``'s ``data.json`` (what a run saved about its data), or ``None`` when it has none."""
  path = storage.join(folder, "data.json")
  if not storage.exists(path):
    return None
  try:
    saved = json.loads(storage.read_text(path))
  except (OSError, json.JSONDecodeError) as e:
    raise HFFError(f"{what}{path} is unreadable ({e}); {remedy}") from None
  if not isinstance(saved, dict):
    raise HFFError(f"{what}{path} is a JSON {type(saved).__name__}, not what a run saves; {remedy}")
  return saved


def saved_pixel_stats(workdir: str, ds) -> tuple | None:
  """The ``(mean, std)`` a run in ``workdir`` normalised images with, or ``None`` for a new run.

  Workdirs written by hffjax 0.1 hold no statistics: it used one mean and std
  over the whole (in-memory) training split, which is recomputed here so that
  such a run restores and resumes exactly.
  """
  saved = read_data_json(workdir, "restore it, or train with --overwrite to start over")
  if saved is None:
    return None
  if "pixel_mean" in saved and "pixel_std" in saved:
    return tuple(saved["pixel_mean"]), tuple(saved["pixel_std"])
  try:
    return ds.full_split_pixel_stats()
  except HFFError:
    raise HFFError(
      f"{workdir} was written by hffjax 0.1 (checkpoint format 1), which normalised {ds.name} with "
      "statistics of its whole training split; streamed datasets are no longer read whole, so this "
      "run cannot be restored exactly: train it again (--overwrite)"
    ) from None


def source_pixel_stats(path: str, ds) -> tuple | None:
  """The ``(mean, std)`` the run ``init_from`` names normalised images with, or ``None``.

  ``path`` is a workdir (its ``data.json`` holds them) or one of its
  checkpoints (``WORKDIR/checkpoints/STEP``, or its ``state``); a bare Orbax
  folder, or a run saved without statistics, holds none.
  A transferred backbone must see images normalised as it was trained: its
  BatchNorm statistics, and a frozen learner's features, depend on it.
  """
  folder = path.rstrip("/")
  if posixpath.basename(folder) == "state":  # WORKDIR/checkpoints/STEP/state
    folder = posixpath.dirname(folder)
  folders = [path.rstrip("/")]
  if posixpath.basename(posixpath.dirname(folder)) == "checkpoints":
    folders.append(posixpath.dirname(posixpath.dirname(folder)))
  for folder in folders:
    saved = read_data_json(folder, "restore it or set pixel_mean/pixel_std", what="init_from's ")
    if saved is None:
      continue
    if "pixel_mean" not in saved or "pixel_std" not in saved:
      return None
    mean, std = tuple(saved["pixel_mean"]), tuple(saved["pixel_std"])
    channels = ds.image_shape[-1]
    if len(mean) not in (1, channels):
      raise HFFError(
        f"init_from {path} normalised {len(mean)}-channel images, but {ds.name} has {channels} channel(s); "
        "start from a run on images with the same channels"
      )
    return mean, std
  return None


def trained_steps_per_epoch(workdir: str, default: int) -> int:
  """Steps per epoch of the data a run was trained on (saved in ``data.json``), so that a checkpoint's
  epoch does not change with the data it is evaluated on; ``default`` for runs that did not save it."""
  path = storage.join(workdir, "data.json")
  try:
    return int(json.loads(storage.read_text(path)).get("steps_per_epoch") or default)
  except (OSError, ValueError, TypeError, AttributeError):
    return default
