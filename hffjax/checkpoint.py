"""Orbax checkpoints of the whole training state, kept in ``WORKDIR/checkpoints``."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from hffjax.errors import HFFError


class Checkpoints:
  """Saves and restores a training-state pytree by step; keeps the newest ``keep``.

  The state's step fixes the data position, because every epoch's order is a
  pure function of (seed, epoch): restoring the state is enough to resume
  with the same batches.
  """

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(max_to_keep=max(int(keep), 1), create=True),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state) -> None:
    """Starts an asynchronous save; :meth:`wait` blocks until it is on disk."""
    self._manager.save(int(step), args=ocp.args.StandardSave(state))

  def restore(self, abstract_state, step: int | None = None):
    """Restores ``step`` (default: the latest) into the structure and shardings of ``abstract_state``."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise HFFError(f"no checkpoint in {self.directory}; train first with `hffjax train`")
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
    except Exception as e:
      raise HFFError(
        f"checkpoint {step} in {self.directory} does not match this model "
        f"({type(e).__name__}); use the config it was trained with"
      ) from None

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree, sharding):
  """``ShapeDtypeStruct``s of ``tree`` placed with ``sharding``, as a restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
