"""One mesh over all devices with a ``data`` axis; batches sharded, state replicated."""

from __future__ import annotations

import collections
import os
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hffjax.errors import HFFError

DATA_AXIS = "data"


_CLUSTER_HINTS = (
  "JAX_COORDINATOR_ADDRESS",
  "SLURM_STEP_NUM_TASKS",
  "OMPI_COMM_WORLD_SIZE",
  "TPU_WORKER_HOSTNAMES",
)


def _cluster_job() -> bool:
  """Whether the environment describes a job of several processes that JAX can join by itself."""
  env = os.environ
  if env.get("HFFJAX_DISTRIBUTED") == "1" or env.get("JAX_COORDINATOR_ADDRESS"):
    return True
  for key in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE"):
    if env.get(key, "1").isdigit() and int(env.get(key, "1")) > 1:
      return True
  return "," in env.get("TPU_WORKER_HOSTNAMES", "")


def initialize_distributed(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  *,
  timeout_s: int = 300,
) -> bool:
  """Joins JAX's multi-process runtime when asked to, or when the environment describes a job.

  Explicit: all three of ``coordinator_address`` (``HOST:PORT`` of process 0),
  ``num_processes`` and ``process_id`` (runs anywhere; CPU collectives go
  through gloo). Automatic: Cloud TPU pod slices, SLURM, Open MPI, or
  ``JAX_COORDINATOR_ADDRESS`` / ``HFFJAX_DISTRIBUTED=1``. On one process with
  none of these it does nothing. Must run before anything touches a device.

  Returns:
    Whether the runtime was started.

  Raises:
    HFFError: incomplete or inconsistent arguments, or no coordinator within ``timeout_s``.
  """
  given = [coordinator_address is not None, num_processes is not None, process_id is not None]
  if any(given) and not all(given):
    raise HFFError(
      "pass all of --coordinator_address HOST:PORT, --num_processes N and --process_id I, or none"
    )
  if all(given):
    if num_processes < 1:
      raise HFFError(f"--num_processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
      raise HFFError(f"--process_id {process_id} is not in [0, {num_processes}); number processes 0..N-1")
    if ":" not in coordinator_address:
      raise HFFError(f"--coordinator_address {coordinator_address!r} needs a port: HOST:PORT")
  elif not _cluster_job():
    return False
  if all(given) and num_processes > 1:
    _probe_coordinator(coordinator_address, process_id, timeout_s)
  # Cross-process collectives on CPU need an implementation; this setting only affects CPU devices.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  where = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or "the cluster's coordinator"
  try:
    jax.distributed.initialize(
      coordinator_address, num_processes, process_id, initialization_timeout=int(timeout_s)
    )
  except Exception as e:  # the runtime raises several types for an unreachable or refused coordinator
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    raise HFFError(
      f"could not join the job through the coordinator at {where} within {timeout_s} s ({reason}); "
      "start process 0 on that host and check the address and port"
    ) from None
  return True


def _probe_coordinator(address: str, process_id: int, timeout_s: float) -> None:
  """Fails with one line where JAX's runtime would abort the process: a port process 0 cannot bind,
  or a coordinator the other processes cannot reach within ``timeout_s``."""
  host, _, port_text = address.rpartition(":")
  host = host.strip("[]")
  try:
    port = int(port_text)
  except ValueError:
    raise HFFError(f"--coordinator_address {address!r} needs a numeric port: HOST:PORT") from None
  if process_id == 0:
    try:
      with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", port))
    except OSError as e:
      raise HFFError(
        f"process 0 cannot listen on port {port} for {address} ({e.strerror or e}); pick a free port"
      ) from None
    return
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host, port), timeout=min(5.0, max(timeout_s, 0.1))):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise HFFError(
          f"could not join the job through the coordinator at {address} within {timeout_s:g} s "
          f"({e.strerror or e}); start process 0 on that host and check the address and port"
        ) from None
      time.sleep(0.25)


def is_primary() -> bool:
  """Process 0 writes files, prints and shows progress; the others only compute."""
  return jax.process_index() == 0


def raise_if_any(error: Exception | None, what: str) -> None:
  """Raises on every process when any process had ``error`` (a collective: all processes must call it).

  The process that failed raises its own message; the others name it.
  """
  failed = processes_where(error is not None)
  if error is not None:
    raise error
  if failed:
    raise HFFError(f"process(es) {', '.join(map(str, failed))} failed while {what}; see their message")


def broadcast(value: np.ndarray) -> np.ndarray:
  """Process 0's ``value`` on every process (unchanged on one process)."""
  if jax.process_count() == 1:
    return value
  return np.asarray(multihost_utils.broadcast_one_to_all(value))


def fetch(tree):
  """A pytree of (possibly multi-host) arrays as host numpy arrays, on every process.

  Replicated arrays are read from a local replica; sharded ones are gathered.
  """

  def one(x):
    if not isinstance(x, jax.Array):
      return np.asarray(x)
    if x.is_fully_addressable:
      return np.asarray(x)
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(one, tree)


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: every device of every host)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Arrays split over the mesh's ``data`` axis along dimension ``batch_axis`` (1 for ``[K, B, …]``)."""
  return NamedSharding(mesh, P(*(None,) * batch_axis, DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise HFFError(f"batch_size {batch_size} is not divisible by the {n} devices; use a multiple of {n}")


def global_batch(mesh: Mesh, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
  """Places host arrays that hold the *global* batch on the mesh, sharded on ``data``.

  Each process contributes only its own rows (see :func:`to_global`), so this
  is correct on one host and on many.
  """
  nproc, pid = jax.process_count(), jax.process_index()
  return to_global(
    mesh, *(a[pid * (a.shape[0] // nproc) : (pid + 1) * (a.shape[0] // nproc)] for a in arrays)
  )


def to_global(mesh: Mesh, *local_arrays: np.ndarray, batch_axis: int = 0) -> tuple[jax.Array, ...]:
  """Places each process's *local* rows of a batch on the mesh as one global array, sharded on ``data``.

  ``batch_axis`` is the dimension that holds the batch (1 for the ``[K, B, …]``
  inputs of a K-step call).
  """
  sharding = batch_sharding(mesh, batch_axis)
  n = jax.process_count()

  def global_shape(a):
    return tuple(d * n if i == batch_axis else d for i, d in enumerate(a.shape))

  return tuple(jax.make_array_from_process_local_data(sharding, a, global_shape(a)) for a in local_arrays)


def replicate(mesh: Mesh, array: np.ndarray) -> jax.Array:
  """A host array every process holds in full, replicated on every device of the mesh."""
  return jax.make_array_from_callback(array.shape, replicated(mesh), lambda index: array[index])


def processes_where(flag: bool) -> list[int]:
  """The indices of the processes on which ``flag`` is true (every process gets the same list)."""
  if jax.process_count() == 1:
    return [0] if flag else []
  flags = np.asarray(multihost_utils.process_allgather(np.asarray([flag], np.int32))).reshape(-1)
  return [int(i) for i in np.flatnonzero(flags)]


def device_prefetch(batches, mesh: Mesh, size: int = 2, *, batch_axis: int = 0):
  """Yields global arrays of host batches (tuples of local arrays), keeping ``size`` on their way to the devices."""
  queue = collections.deque()
  for b in batches:
    queue.append(to_global(mesh, *b, batch_axis=batch_axis))
    if len(queue) > size:
      yield queue.popleft()
  yield from queue
