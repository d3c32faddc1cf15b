"""Transfer learning: start a run from another run's parameters, and freeze learners.

:func:`load_pretrained` copies every array of a source checkpoint whose path
and shape match the new model's. Prototype heads (and a backprop run's linear
head, or Forward-Forward's read-out) whose class count differs are
re-initialised, as are heads the source does not have (a backprop backbone has
no prototypes); any other mismatch (a head's prototype dimension included) is
an error, never a silent skip. The report says what was loaded and what was
not.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import orbax.checkpoint as ocp

from hffjax import sharding
from hffjax.errors import HFFError
from hffjax.io import storage
from hffjax.io.checkpoint import (
  error_line,
  fingerprint,
  host_restore_args,
  not_damage,
  path_keys,
  quiet_aborted_reads,
  this_process_only,
  warn,
  weights_fingerprint,
)

HEAD_KEYS = ("heads", "head", "readout")  # prototype heads (HFF), linear heads (backprop; FF's read-out)


def _flat(tree) -> dict[tuple[str, ...], object]:
  """``{("blocks", "0", "linear", "kernel"): leaf}``: paths as strings (Orbax restores int keys as strings)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    out[path_keys(path)] = leaf
  return out


def _unflat_like(tree, values: dict):
  paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
  keys = [path_keys(p) for p, _ in paths]
  return jax.tree_util.tree_unflatten(treedef, [values[k] for k in keys])


def read_checkpoint(path: str) -> tuple[dict, dict, str]:
  """``(params, batch_stats, description)`` of a workdir's newest readable checkpoint or an Orbax folder.

  Every process reads the whole source into host memory on its own (no
  collective inside Orbax, whatever devices or processes the source was saved
  from); the processes then check that they read the same step.
  """
  error, step, tree, where = None, -1, None, path
  try:
    step, tree, where = _read(path)
  except HFFError as e:
    error = e
  sharding.raise_if_any(error, "reading init_from")  # all processes stop together
  first = int(sharding.broadcast(np.asarray(step, np.int32)))
  if sharding.processes_where(step != first):
    raise HFFError(
      f"init_from {path}: processes read different checkpoints (process 0 step {first}); "
      "check that every host sees the same files"
    )
  if not isinstance(tree, dict):
    raise HFFError(f"init_from {path} holds a {type(tree).__name__}, not a tree of parameters")
  if "params" in tree:
    return tree["params"], tree.get("batch_stats") or {}, where
  return tree, {}, where


def _read(path: str) -> tuple[int, dict, str]:
  """``(step or -1, tree, description)`` of the checkpoint ``path`` names, read by this process alone."""
  try:
    if storage.exists(storage.join(path, "checkpoints")):
      step, tree = _newest_readable(storage.join(path, "checkpoints"), path)
      return step, tree, f"{path} (step {step})"
    if storage.exists(storage.join(path, "state")):  # one step of a workdir's checkpoints
      tree = _restore_folder(storage.join(path, "state"))
      meta_path = storage.join(path, "meta", "metadata")
      saved = json.loads(storage.read_text(meta_path)) if storage.exists(meta_path) else {}
      if not _weights_match(tree, saved):
        raise HFFError(
          f"init_from {path}: its parameters do not match the fingerprint saved with them (a damaged "
          "checkpoint); give another step, or the workdir to take its newest intact one"
        )
      return -1, tree, path
    if storage.exists(path):
      return -1, _restore_folder(path), path
  except HFFError:
    raise
  except Exception as e:  # Orbax and TensorStore raise many types for what is not a checkpoint.
    reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    refused = not_damage(e)
    if refused:
      raise HFFError(
        f"init_from {path}: reading it failed ({reason}); {refused}; fix that and run again"
      ) from None
    raise HFFError(
      f"init_from {path} is not a readable checkpoint ({reason}); give a workdir or an Orbax folder"
    ) from None
  raise HFFError(f"init_from {path} does not exist; give a workdir or an Orbax checkpoint folder")


def _weights_match(tree: dict, meta: dict) -> bool:
  """Whether a restored workdir checkpoint holds the parameters its meta's fingerprint was taken of.

  Checkpoints written before that fingerprint existed are taken as they read.
  """
  saved = meta.get("weights_fingerprint")
  return not saved or saved == weights_fingerprint(tree["params"], tree.get("batch_stats") or {})


WEIGHTS = ("params", "batch_stats")  # what a transfer takes from a training state


def _host_target(metadata):
  """A restore target of host (numpy) arrays for a checkpoint's array metadata.

  Without a target Orbax restores the shardings it saved, which a job with
  other devices or processes (e.g. a multi-host run starting from a
  one-process run) cannot hold. Of a training state only the parameters and
  batch statistics are read: the rest (the optimizer's moments, twice the
  parameters' size for Adam) is left on disk as Orbax placeholders.
  """
  metadata = getattr(metadata, "item_metadata", metadata)
  tree = getattr(metadata, "tree", metadata)
  target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), tree)
  if isinstance(target, dict) and "params" in target:
    skipped = {k: jax.tree.map(lambda _: ocp.PLACEHOLDER, v) for k, v in target.items() if k not in WEIGHTS}
    target = {**target, **skipped}
  return target


def _restore_folder(path: str) -> dict:
  alone = this_process_only()
  handler = ocp.PyTreeCheckpointHandler(multiprocessing_options=alone)
  with ocp.Checkpointer(handler, multiprocessing_options=alone) as checkpointer:
    return checkpointer.restore(path, args=host_restore_args(_host_target(checkpointer.metadata(path))))


def _newest_readable(directory: str, path: str) -> tuple[int, dict]:
  """``(step, tree)`` of the newest checkpoint that restores; an unreadable one is skipped with a warning."""
  with quiet_aborted_reads():
    return _newest_readable_quietly(directory, path)


def _newest_readable_quietly(directory: str, path: str) -> tuple[int, dict]:
  handlers = {
    "state": ocp.PyTreeCheckpointHandler(multiprocessing_options=this_process_only()),
    "meta": ocp.JsonCheckpointHandler(multiprocessing_options=this_process_only()),
  }
  options = ocp.CheckpointManagerOptions(read_only=True, multiprocessing_options=this_process_only())
  with ocp.CheckpointManager(directory, options=options, item_handlers=handlers) as manager:
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
      raise HFFError(f"init_from {path} has no checkpoint yet; train it first")
    for i, step in enumerate(steps):
      try:
        target = _host_target(manager.item_metadata(step)["state"])
        args = ocp.args.Composite(state=host_restore_args(target), meta=ocp.args.JsonRestore())
        restored = manager.restore(step, args=args)
        tree = restored["state"]
        if not _weights_match(tree, restored["meta"] or {}):
          raise ValueError("its parameters do not match the fingerprint saved with them")
        return step, tree
      except Exception as e:  # Orbax and TensorStore raise many types for damaged files.
        reason = error_line(e)
        refused = not_damage(e)
        if refused:  # the source may well be intact: not passed over for an older checkpoint
          raise HFFError(
            f"init_from {path}: reading checkpoint {step} failed ({reason}); {refused}; "
            "fix that and run the same command again"
          ) from None
        later = f"falling back to checkpoint {steps[i + 1]}" if i + 1 < len(steps) else "no older one is left"
        if sharding.is_primary():
          warn(f"init_from {path}: checkpoint {step} is damaged ({reason}); {later}")
  raise HFFError(f"init_from {path} has no readable checkpoint; give another run or checkpoint folder")


@dataclasses.dataclass
class LoadReport:
  source: str
  loaded: int = 0
  total: int = 0
  reinitialised: list[str] = dataclasses.field(default_factory=list)
  unused: list[str] = dataclasses.field(default_factory=list)

  def line(self) -> str:
    parts = [f"init_from {self.source}: loaded {self.loaded} of {self.total} arrays"]
    if self.reinitialised:
      parts.append(f"re-initialised {', '.join(self.reinitialised)}")
    if self.unused:
      parts.append(f"not used from the source: {', '.join(self.unused)}")
    return "; ".join(parts)


def _group(path: tuple[str, ...]) -> tuple[str, ...]:
  """A learner's block or head (``blocks.2``, ``heads.2``), else the top-level module (``head``, ``readout``)."""
  return path[:2] if path[0] in ("blocks", "heads") else path[:1]


def _names(keys: set, every: set) -> list[str]:
  """``keys`` named by their group (``heads.0``) where they are all of it, else array by array
  (``heads.0.log_scale``), so that a report says exactly what it means."""
  groups = {}
  for key in keys:
    groups.setdefault(_group(key), []).append(key)
  names = []
  for group, members in groups.items():
    whole = len(members) == sum(_group(k) == group for k in every)
    names += [".".join(group)] if whole else [".".join(k) for k in members]
  return sorted(names)


def _only_class_count_differs(key: tuple[str, ...], got: tuple, want: tuple) -> bool:
  """Whether a head array's shapes differ in its class axis alone (prototypes: rows; a linear head: the last)."""
  if len(got) != len(want) or not want:
    return False
  axis = 0 if key[-1] == "prototypes" else len(want) - 1
  return all(g == w for i, (g, w) in enumerate(zip(got, want, strict=True)) if i != axis)


def load_pretrained(path: str, params: dict, batch_stats: dict) -> tuple[dict, dict, LoadReport]:
  """``params``/``batch_stats`` with every matching array of the checkpoint at ``path`` loaded.

  Raises:
    HFFError: the source is unreadable, or an array outside the heads is
      missing from it or has another shape there.
  """
  src_params, src_stats, where = read_checkpoint(path)
  report = LoadReport(where)
  missing, other_count, unused, every = set(), set(), set(), set()
  merged = []
  flat_params, flat_stats = _flat(src_params), _flat(src_stats)
  for tree, source in ((params, flat_params), (batch_stats, flat_stats)):
    target, values = _flat(tree), {}
    if target and not source and tree is batch_stats:  # after the parameters, whose errors say more
      raise HFFError(
        f"init_from {where} holds no batch statistics, but this model has BatchNorm: start from a run "
        "with the same model.norm, or save the source as {'params': ..., 'batch_stats': ...}"
      )
    every |= set(target)
    for key, init in target.items():
      report.total += 1
      name = ".".join(key)
      got = source.get(key)
      is_head = key[0] in HEAD_KEYS
      if got is not None and tuple(got.shape) == tuple(init.shape):
        values[key] = np.asarray(got).astype(init.dtype)
        report.loaded += 1
      elif is_head and (got is None or _only_class_count_differs(key, got.shape, init.shape)):
        values[key] = init
        (missing if got is None else other_count).add(key)
      elif got is None:
        raise HFFError(
          f"init_from {where} has no array {name}; it was trained with another model (same model.kind, "
          "depth, norm and learner grouping needed)"
        )
      else:
        raise HFFError(
          f"init_from {where}: {name} has shape {tuple(got.shape)} there but {tuple(init.shape)} here; "
          "use the same model settings (widths, channels, depth, learner, read-out)"
        )
    unused |= {k for k in source if k not in target}
    merged.append(_unflat_like(tree, values))
  # Running statistics of a block this model keeps, but normalises otherwise (model.norm "batch" there):
  # its scale and bias would load into another kind of norm, a silent change of what the block computes.
  kept = {_group(k) for k in every}
  stats_elsewhere = sorted(".".join(k) for k in flat_stats if k in unused and _group(k) in kept)
  if stats_elsewhere:
    raise HFFError(
      f"init_from {where} has BatchNorm running statistics ({stats_elsewhere[0]}, ...) where this model has "
      "none: it was trained with model.norm='batch'; use the same model.norm"
    )
  report.reinitialised = _names(missing, every) + [
    f"{n} (other class count)" for n in _names(other_count, every)
  ]
  report.unused = _names(unused, set(flat_params) | set(flat_stats))
  return merged[0], merged[1], report


def learner_of(path) -> int | None:
  """The learner (block) index a parameter belongs to, or None (e.g. a backprop head)."""
  keys = path_keys(path)
  if len(keys) >= 2 and keys[0] in ("blocks", "heads"):
    return int(keys[1])
  return None


def learner_fingerprints(params: dict, num_learners: int) -> list[str]:
  """One SHA-256 (first 16 hex digits) per learner's block parameters (its features; heads excluded).

  Two runs' lists show which learners' features a transfer run changed: a
  frozen learner keeps its source's fingerprint even though its prototype
  head trains. A block without parameters (e.g. a pooling block of a custom
  model, absent from ``params``) gets the fingerprint of an empty tree, so
  the list always has one entry per learner, in order.
  """
  blocks = {int(i): block for i, block in params.get("blocks", {}).items()}
  return [fingerprint(blocks.get(i, {}))[:16] for i in range(num_learners)]
