"""Orbax checkpoints of the whole training state, kept in ``WORKDIR/checkpoints``.

Each checkpoint holds two items: ``state`` (the training-state pytree) and
``meta`` (JSON: the state's SHA-256 fingerprint, one of its parameters and
batch statistics alone for ``init_from``, and whatever the trainer needs to
resume exactly, such as the running sums of the evaluation interval in
progress). A restore recomputes the fingerprint, so a truncated *or* silently
corrupted checkpoint is detected, and the previous good one is used instead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import sys
import zlib

import jax
import numpy as np
import orbax.checkpoint as ocp

from hffjax import sharding
from hffjax.errors import HFFError
from hffjax.io import storage

FORMAT_VERSION = 2  # 1: hffjax 0.1 (per-epoch meter); 2: step-based loop, per-evaluation meter


def fingerprint(tree) -> str:
  """SHA-256 of a pytree's leaves (path, dtype, shape and bytes), in sorted path order.

  Works on multi-host arrays: replicated ones are read from a local replica.
  """
  h = hashlib.sha256()
  leaves = jax.tree_util.tree_flatten_with_path(sharding.fetch(tree))[0]
  for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


def path_keys(path) -> tuple[str, ...]:
  """A pytree key path as strings: ``("blocks", "0", "linear", "kernel")``, whatever the containers
  (Orbax restores int keys as strings; a named tuple's fields are attribute keys)."""
  return tuple(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def weights_fingerprint(params, batch_stats) -> str:
  """SHA-256 of the parameters and batch statistics, by key paths written as strings.

  Unlike :func:`fingerprint` it does not depend on the container types a tree
  was saved from (a list index and the string Orbax restores it as hash the
  same), so a run that restores another run's checkpoint without its training
  state's structure (``init_from``) can still check what it read.
  """
  h = hashlib.sha256()
  leaves = jax.tree_util.tree_flatten_with_path(
    sharding.fetch({"params": params, "batch_stats": batch_stats})
  )[0]
  named = [("/".join(path_keys(path)), leaf) for path, leaf in leaves]
  for name, leaf in sorted(named, key=lambda item: item[0]):
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


def warn(message: str) -> None:
  print(f"hffjax: warning: {message}", file=sys.stderr, flush=True)


def check_space(directory: str, state, step: int | None = None) -> None:
  """Refuses a save to ``directory`` that cannot fit in a local filesystem's free space (an estimate).

  Raises:
    HFFError: less free space than the state's size plus a margin.
  """
  if storage.is_object_store(directory) or not sharding.is_primary():
    return
  needed = int(sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state)) * 1.1) + 2**20
  folder = directory
  while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
    folder = os.path.dirname(folder)  # a new run's checkpoints go where its nearest existing folder is
  try:
    free = shutil.disk_usage(folder).free
  except OSError:
    return
  if free < needed:
    which = "a checkpoint" if step is None else f"checkpoint {step}"
    raise HFFError(
      f"cannot write {which} to {directory}: no space left on the device (it needs about "
      f"{needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free); free some space or use another --workdir"
    )


def _arrays_by_name(tree) -> dict[str, tuple]:
  """``{"params/blocks/0/linear/kernel": (shape, dtype)}`` for a state or its checkpoint's metadata."""
  named = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if hasattr(leaf, "shape"):
      named["/".join(path_keys(path))] = (tuple(leaf.shape), np.dtype(leaf.dtype).str)
  return named


class Checkpoints:
  """Saves and restores a training-state pytree by step; keeps the newest ``keep``.

  The state's step fixes the data position, because the data order (and
  every step's augmentation) is a pure function of the seed: restoring the
  state is enough to see the same batches again.
  """

  def __init__(self, workdir: str, keep: int = 3, *, read_only: bool = False):
    """``read_only``: for readers beside a run that may be training (eval, predict, plot): nothing in
    the folder is created or removed, a save in flight included."""
    self.directory = storage.join(workdir, "checkpoints")
    if read_only:
      options = ocp.CheckpointManagerOptions(read_only=True, create=False, cleanup_tmp_directories=False)
    else:
      # Temporary folders of a save that never finished (a killed or failed run) are removed on start.
      options = ocp.CheckpointManagerOptions(
        max_to_keep=max(int(keep), 1), create=True, cleanup_tmp_directories=True
      )
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=options,
      item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
    )

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def agreed_steps(self) -> list[int]:
    """:meth:`all_steps`, the same on every process (a collective: every process must call it).

    Raises:
      HFFError: the processes see different checkpoints (their hosts do not share the folder).
    """
    steps = self.all_steps()
    digest = zlib.crc32(repr(steps).encode()) & 0x7FFFFFFF
    first = int(sharding.broadcast(np.asarray(digest, np.int32)))
    differ = sharding.processes_where(digest != first)
    if differ:
      raise HFFError(
        f"process(es) {', '.join(map(str, differ))} see other checkpoints in {self.directory} than "
        f"process 0; check that every host sees the same files (this one sees steps {steps})"
      )
    return steps

  def check_space(self, step: int | None, state) -> None:
    check_space(self.directory, state, step)

  @contextlib.contextmanager
  def _writing(self, what: str):
    """Turns Orbax's write failures into one-line errors and removes the save's temporary folder."""
    try:
      yield
    except HFFError:
      raise
    except Exception as e:  # Orbax and TensorStore wrap OS errors in ValueError and others.
      cause = _os_error_of(e)
      if cause is None:
        raise
      self._remove_tmp()
      raise HFFError(
        f"{what} in {self.directory} failed: {storage.describe_os_error(cause, self.directory)}"
      ) from None

  def _remove_tmp(self) -> None:
    if not sharding.is_primary() or storage.is_object_store(self.directory):
      return
    try:
      for name in os.listdir(self.directory):
        if "-tmp" in name:
          shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
    except OSError:
      pass

  def save(self, step: int, state, meta: dict | None = None) -> None:
    """Starts an asynchronous save; :meth:`wait` blocks until it is on disk."""
    host = sharding.fetch(state)  # read off the devices once for both fingerprints
    meta = {
      **(meta or {}),
      "fingerprint": fingerprint(host),
      "weights_fingerprint": weights_fingerprint(host["params"], host["batch_stats"]),
      "format_version": FORMAT_VERSION,
    }
    with self._writing("saving a checkpoint"):  # (an earlier asynchronous save's failure surfaces here too)
      self._manager.save(
        int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
      )

  def _check_structure(self, reader: ocp.CheckpointManager, step: int, abstract_state) -> None:
    """Raises HFFError when a readable checkpoint holds another model's arrays (by name, shape and dtype).

    Checked before the restore, so that a checkpoint of another model (or of a
    builder whose modules were renamed) is refused rather than taken for damaged.
    """
    try:
      saved = reader.item_metadata(step)["state"]
      saved = _arrays_by_name(getattr(saved, "tree", saved))
    except Exception:
      return  # Unreadable metadata: the restore that follows reports the damage.
    wanted = _arrays_by_name(abstract_state)
    if not saved or saved == wanted:
      return
    if saved.keys() != wanted.keys():
      there, here = sorted(saved.keys() - wanted.keys()), sorted(wanted.keys() - saved.keys())
      what = (
        f"it has {there[0]} where this model has {here[0] if here else 'none'}"
        if there
        else f"it lacks {here[0]}"
      )
    else:
      name = next(k for k in sorted(saved) if saved[k] != wanted[k])
      what = f"its {name} is {saved[name]} where this model's is {wanted[name]}"
    raise HFFError(
      f"checkpoint {step} in {self.directory} does not match this model ({what}); "
      "use the config (and model builder) it was trained with"
    )

  def _restore_step(self, reader: ocp.CheckpointManager, step: int, abstract_state):
    """The state (host arrays) and meta of ``step``, read by this process alone and checked."""
    self._check_structure(reader, step, abstract_state)
    target = jax.tree.map(lambda a: np.empty(a.shape, a.dtype), abstract_state)
    restored = reader.restore(
      step, args=ocp.args.Composite(state=host_restore_args(target), meta=ocp.args.JsonRestore())
    )
    host, meta = restored["state"], dict(restored["meta"])
    version = int(meta.get("format_version", 1))
    if version > FORMAT_VERSION:
      raise HFFError(
        f"checkpoint {step} in {self.directory} was written by a newer hffjax (checkpoint format "
        f"{version}; this one reads up to {FORMAT_VERSION}); upgrade hffjax"
      )
    if meta.get("fingerprint") != fingerprint(host):
      raise ValueError("its contents do not match the fingerprint saved with it")
    return host, meta

  def restore(
    self,
    abstract_state,
    step: int | None = None,
    *,
    delete_damaged: bool = False,
    agreed: list[int] | None = None,
  ):
    """Restores ``step``, or the newest checkpoint that is intact, into ``abstract_state``'s structure.

    A damaged checkpoint (unreadable, truncated, or failing its fingerprint)
    is skipped with a one-line warning and, with ``delete_damaged``, removed so
    that training can write that step again. A read that failed for want of
    permission, memory, or a storage service's capacity says nothing about the
    checkpoint: it is an error, and nothing is skipped or removed.

    ``agreed`` is the list :meth:`agreed_steps` returned, for a caller that
    already holds it (so that the processes do not compare their lists twice).

    Returns:
      ``(step, state, meta)``.

    Raises:
      HFFError: there is no checkpoint, none is intact, or the state does not
        match ``abstract_state`` (another model or config).
    """
    with quiet_aborted_reads():
      return self._restore(abstract_state, step, delete_damaged=delete_damaged, agreed=agreed)

  def _restore(self, abstract_state, step, *, delete_damaged, agreed):
    if step is not None:
      steps = [step]
    else:
      steps = (self.agreed_steps() if agreed is None else agreed)[::-1]
    if not steps:
      raise HFFError(f"no checkpoint in {self.directory}; train first with `hffjax train`")
    # Each process reads on its own (no collective inside Orbax, so a process whose read fails cannot
    # leave the others waiting in one); then they agree on the outcome, in the same order on each.
    alone = this_process_only()
    handlers = {
      "state": ocp.PyTreeCheckpointHandler(multiprocessing_options=alone),
      "meta": ocp.JsonCheckpointHandler(multiprocessing_options=alone),
    }
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, multiprocessing_options=alone)
    reader, error = None, None
    try:
      reader = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    except Exception as e:  # (the folder could not be listed: nothing to fall back to)
      error = HFFError(
        f"reading {self.directory} failed ({error_line(e)}); fix that and run the same command again"
      )
    sharding.raise_if_any(error, f"reading {self.directory}")
    try:
      for i, s in enumerate(steps):
        error, damage = None, None
        try:
          host, meta = self._restore_step(reader, s, abstract_state)
        except HFFError as e:
          error = e
        except Exception as e:  # Orbax and TensorStore raise many types for damaged files.
          refused = not_damage(e)
          if refused:  # the checkpoint may well be intact: neither skipped nor deleted
            error = HFFError(
              f"reading checkpoint {s} in {self.directory} failed ({error_line(e)}); {refused}; "
              "the checkpoint is kept: fix that and run the same command again"
            )
          else:
            damage = error_line(e)
        sharding.raise_if_any(error, f"reading checkpoint {s} in {self.directory}")
        damaged_on = sharding.processes_where(damage is not None)
        if not damaged_on:
          return s, _place(host, abstract_state), meta
        later = f"falling back to checkpoint {steps[i + 1]}" if i + 1 < len(steps) else "no older one is left"
        if damage or sharding.is_primary():  # each process that saw the damage says what it saw
          damage = damage or f"process(es) {', '.join(map(str, damaged_on))} could not read it"
          warn(f"checkpoint {s} in {self.directory} is damaged ({damage}); {later}")
        if delete_damaged:
          self._manager.delete(s)
    finally:
      reader.close()
    raise HFFError(
      f"no intact checkpoint in {self.directory}; delete that folder (or train with --overwrite) to start over"
    )

  def wait(self) -> None:
    with self._writing("saving a checkpoint"):
      self._manager.wait_until_finished()

  def close(self) -> None:
    with self._writing("saving a checkpoint"):
      try:
        self._manager.wait_until_finished()
      finally:
        self._manager.close()


_MESSAGE_ERRNOS = (
  ("No space left", errno.ENOSPC),
  ("RESOURCE_EXHAUSTED", errno.ENOSPC),
  ("Read-only file system", errno.EROFS),
  ("Permission denied", errno.EACCES),
  ("Disk quota exceeded", errno.EDQUOT),
)


@contextlib.contextmanager
def quiet_aborted_reads():
  """Drops, while restoring, the ``RuntimeError: Event loop is closed`` that each TensorStore read
  still in flight reports (as unraisable, with a traceback) once a damaged checkpoint's failed read
  has closed its event loop: dozens of them would bury the one-line warning that says what happened.
  Other reports pass on; the filter stays only if it dropped one (late reads report after the restore)."""
  previous = sys.unraisablehook
  if getattr(previous, "hffjax_quiet", False):
    yield
    return
  dropped = []

  def hook(unraisable):
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
      dropped.append(1)
      return
    previous(unraisable)

  hook.hffjax_quiet = True
  sys.unraisablehook = hook
  try:
    yield
  finally:
    if not dropped and sys.unraisablehook is hook:
      sys.unraisablehook = previous


def error_line(e: BaseException) -> str:
  """An exception as one short line: its type and the first line of its message."""
  return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__


def _place(host, abstract_state):
  """Host arrays as the arrays ``abstract_state`` describes (each process fills its own shards)."""

  def one(x, a):
    return jax.make_array_from_callback(a.shape, a.sharding, lambda index: np.asarray(x[index], a.dtype))

  return jax.tree.map(one, host, abstract_state)


def this_process_only() -> ocp.options.MultiprocessingOptions:
  """Orbax options for a read by this process alone: no barrier with the job's other processes."""
  index = jax.process_index()
  return ocp.options.MultiprocessingOptions(primary_host=index, active_processes={index})


def host_restore_args(target) -> ocp.args.PyTreeRestore:
  """Restore arguments reading ``target``'s arrays as host (numpy) arrays, leaving its placeholders unread."""
  is_placeholder = lambda x: x is ocp.PLACEHOLDER  # noqa: E731
  args = jax.tree.map(
    lambda x: x if is_placeholder(x) else ocp.RestoreArgs(restore_type=np.ndarray),
    target,
    is_leaf=is_placeholder,
  )
  return ocp.args.PyTreeRestore(item=target, restore_args=args)


# Status codes (TensorStore, XLA, cloud storage) of a failure of the machine or the storage service.
_NOT_DAMAGE_STATUSES = {
  "PERMISSION_DENIED": "permission denied",
  "UNAUTHENTICATED": "not signed in to the storage service",
  "RESOURCE_EXHAUSTED": "out of memory, or over a storage quota or request rate",
  "UNAVAILABLE": "the storage service is unavailable",
  "DEADLINE_EXCEEDED": "the storage service timed out",
}


# OS errors of a read that say nothing about the file's bytes (a stale NFS handle, a flaky disk or
# network, a full process table): the checkpoint is kept, not deleted.
_NOT_DAMAGE_ERRNOS = {
  errno.EACCES,
  errno.EPERM,
  errno.ENOMEM,
  errno.EIO,
  errno.ESTALE,
  errno.ETIMEDOUT,
  errno.EAGAIN,
  errno.EINTR,
  errno.EMFILE,
  errno.ENFILE,
}


def not_damage(e: BaseException) -> str | None:
  """Why a failed restore is not the checkpoint's fault (None when the checkpoint may be damaged)."""
  if isinstance(e, MemoryError):
    return "out of memory"
  text = str(e)
  for status, why in _NOT_DAMAGE_STATUSES.items():
    if f"{status}:" in text:
      return why
  cause = _os_error_of(e)
  code = cause.errno if cause is not None else None
  # How TensorStore names the OS error behind its status: "[os_error_code='116']" (newer) or
  # "[OS error 116: ...]"; else the OS's own words for it.
  named = re.search(r"os_error_code='?(\d+)|\[OS error (\d+)", text)
  if code is None and named:
    code = int(named.group(1) or named.group(2))
  if code is None:
    code = next((c for c in _NOT_DAMAGE_ERRNOS if os.strerror(c) in text), None)
  if code in _NOT_DAMAGE_ERRNOS:
    return os.strerror(code).lower()
  return None


def _os_error_of(e: BaseException) -> OSError | None:
  """The OS error behind an Orbax/TensorStore exception (itself, a cause, or named in its message)."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno:
      return seen
    seen = seen.__cause__ or seen.__context__
  text = str(e)
  for marker, code in _MESSAGE_ERRNOS:
    if marker in text:
      return OSError(code, os.strerror(code))
  return None


def abstract_like(tree, sharding):
  """``ShapeDtypeStruct``s of ``tree`` placed with ``sharding``, as a restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
