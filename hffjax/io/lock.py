"""One training job per workdir: an ``fcntl`` lock the job's primary process holds for the run's life.

The lock lives on ``WORKDIR/.hffjax_lock``; the operating system releases it
when the holder exits or dies, so a lock left by a killed run never blocks.
While held, the file names the holder (PID and host) for the error a second
job gets; it is emptied when the run ends. The other processes of the same
multi-host job do not take it. Object storage (``gs://``) has no such lock:
there, nothing stops a second job (README, "Fault tolerance").
"""

from __future__ import annotations

import fcntl
import os
import socket

from hffjax.errors import HFFError
from hffjax.io import storage

LOCK_FILE = ".hffjax_lock"


class WorkdirLock:
  """``with WorkdirLock(workdir):`` — refuses with a one-line error if another job holds ``workdir``."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled and not storage.is_object_store(workdir)
    self._fd = None

  def acquire(self) -> None:
    if not self.enabled:
      return
    path = storage.join(self.workdir, LOCK_FILE)
    try:
      os.makedirs(self.workdir, exist_ok=True)
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise HFFError(storage.describe_os_error(e, self.workdir)) from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise HFFError(
        f"{self.workdir} is in use by another hffjax job ({holder}); wait for it to finish or stop it, "
        "or use another --workdir"
      ) from None
    self._fd = fd
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    except OSError:
      pass  # The holder's name is a courtesy; the lock itself is held.

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)
    except OSError:
      pass
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
