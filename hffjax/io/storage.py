"""Files in a workdir on a local or shared filesystem, or in object storage (``gs://``), via ``etils.epath``.

Two kinds of storage behave differently where it matters for never leaving a
half-written file:

* a filesystem (local disk, NFS): write a temporary file and rename it over
  the target; append whole lines and fsync them;
* object storage (any ``scheme://`` path): an object is replaced whole by
  each write and cannot be appended to, so an append rewrites the object.

Orbax checkpoints handle both themselves.
"""

from __future__ import annotations

import os

from etils import epath


def is_object_store(path: str | os.PathLike) -> bool:
  """Whether ``path`` names object storage (``gs://bucket/...``, ``s3://...``), not a filesystem."""
  return "://" in os.fspath(path)


def join(workdir: str | os.PathLike, *names: str) -> str:
  """``workdir/names...`` as a string; an absolute path for a filesystem."""
  if is_object_store(workdir):
    return "/".join([os.fspath(workdir).rstrip("/"), *names])
  return os.path.abspath(os.path.join(os.fspath(workdir), *names))


def exists(path: str) -> bool:
  return epath.Path(path).exists()


def read_text(path: str) -> str:
  return epath.Path(path).read_text()


def write_atomic(path: str, text: str) -> None:
  """Replaces ``path`` with ``text`` so that a reader sees the old content or the new, never a part."""
  if is_object_store(path):
    epath.Path(path).write_text(text)
    return
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def append_line(path: str, line: str) -> None:
  """Adds ``line`` (ending in a newline) at the end of ``path`` in one write."""
  if is_object_store(path):
    old = read_text(path) if exists(path) else ""
    epath.Path(path).write_text(old + line)
    return
  with open(path, "a") as f:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def makedirs(path: str) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def remove(path: str) -> None:
  """Removes a file or a folder tree if it exists."""
  p = epath.Path(path)
  if p.is_dir():
    p.rmtree()
  elif p.exists():
    p.unlink()
