"""One mesh over all devices with a ``data`` axis; batches sharded, state replicated."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hffjax.errors import HFFError

DATA_AXIS = "data"


def maybe_initialize_distributed() -> None:
  """Starts JAX's multi-host runtime when the environment describes a multi-process job.

  On a TPU pod slice or a cluster launcher (``JAX_COORDINATOR_ADDRESS`` set),
  every process must call this before touching devices; on one machine it is
  a no-op.
  """
  if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("HFFJAX_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: every device of every host)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise HFFError(f"batch_size {batch_size} is not divisible by the {n} devices; use a multiple of {n}")


def global_batch(mesh: Mesh, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
  """Places host arrays that hold the *global* batch on the mesh, sharded on ``data``.

  Each process contributes only its own slice, so this is correct on one host
  and on many.
  """
  sharding = batch_sharding(mesh)
  nproc, pid = jax.process_count(), jax.process_index()
  out = []
  for a in arrays:
    per = a.shape[0] // nproc
    local = a[pid * per : (pid + 1) * per]
    out.append(jax.make_array_from_process_local_data(sharding, local, a.shape))
  return tuple(out)
