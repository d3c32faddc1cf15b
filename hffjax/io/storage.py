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

import errno
import os

from etils import epath

_CAUSES = {
  errno.ENOSPC: "no space left on the device",
  errno.EDQUOT: "disk quota exceeded",
  errno.EROFS: "read-only file system",
  errno.EACCES: "permission denied",
  errno.EPERM: "permission denied",
  errno.ENOTDIR: "a path component is a file, not a directory",
  errno.EEXIST: "a file is in the way (not a directory)",
  errno.ENOENT: "no such file or directory",
  errno.EIO: "input/output error",
}


def os_error_cause(e: OSError) -> str:
  """The cause of an ``OSError`` in a few words (``no space left on the device``)."""
  return _CAUSES.get(e.errno) or (e.strerror or str(e) or type(e).__name__).lower()


def describe_os_error(e: OSError, path: str) -> str:
  """One line naming the path and the cause of an ``OSError``, and what to do."""
  cause = os_error_cause(e)
  where = e.filename if isinstance(e.filename, str) and e.filename else path
  hint = {
    errno.ENOSPC: "free some space or use another --workdir",
    errno.EDQUOT: "free some space or use another --workdir",
    errno.EROFS: "use a writable --workdir",
    errno.EACCES: "fix its permissions or use another --workdir",
    errno.EPERM: "fix its permissions or use another --workdir",
  }.get(e.errno, "check the path or use another --workdir")
  return f"cannot write {where}: {cause}; {hint}"


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
  try:
    with open(path) as f:
      if f.read() == text:
        return  # unchanged: leave the file (and its time stamp) alone
  except (OSError, UnicodeDecodeError):
    pass
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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


def listdir(path: str) -> list[str]:
  """The names in folder ``path`` (``[]`` when it does not exist)."""
  p = epath.Path(path)
  return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


def makedirs(path: str) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def remove(path: str) -> None:
  """Removes a file or a folder tree if it exists."""
  p = epath.Path(path)
  if p.is_dir():
    p.rmtree()
  elif p.exists():
    p.unlink()
