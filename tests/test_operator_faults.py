"""What an operator can do to a run: a second job on its workdir, a full disk, a read-only or misplaced workdir.

Each case asserts the exit code, the one line printed, and that the existing
workdir's files are byte-identical afterwards. A full and a read-only disk
are real tmpfs mounts where this machine allows mounting (as root); where it
does not, the same code paths are driven by injected OS errors, and the test
says so.
"""

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from conftest import tree_hashes as _hashes

from hffjax.io import writers

TINY = os.path.join(ROOT, "configs", "tiny.py")


def _train(workdir, *extra, env=None):
  argv = [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(workdir), *extra]
  return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def _one_error_line(proc) -> str:
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith("hffjax: error: "), proc.stderr[-2000:]
  return lines[0]


@contextlib.contextmanager
def _tmpfs(path, size="3m"):
  """A tmpfs mounted at ``path``, or None where this machine cannot mount one."""
  path.mkdir()
  proc = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
  )
  if proc.returncode != 0:
    print(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()}); injecting OS errors instead")
    yield None
    return
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_second_job_on_a_busy_workdir_is_refused_and_a_dead_holder_never_blocks(tmp_path):
  workdir = tmp_path / "run"
  slow = ["--config.num_epochs=3000", "--config.checkpoint_every_steps=50"]
  first = subprocess.Popen(
    [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(workdir), *slow],
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  try:
    lock = workdir / ".hffjax_lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text() and (workdir / "checkpoints").is_dir()):
      assert first.poll() is None and time.time() < deadline, "the first job did not start"
      time.sleep(0.2)
    second = _train(workdir, *slow)
    line = _one_error_line(second)
    assert f"in use by another hffjax job (pid {first.pid} on {socket.gethostname()})" in line
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  # The holder died without releasing anything: the lock is the OS's, so the next job goes on.
  resumed = _train(workdir, "--config.num_epochs=1", "--overwrite")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  steps = [r["step"] for r in writers.read(str(workdir / writers.FILENAME))]
  assert steps == sorted(set(steps))
  assert (workdir / ".hffjax_lock").read_text() == ""  # released at the end


def test_metrics_repair_keeps_one_record_per_step(tmp_path):
  path = tmp_path / writers.FILENAME
  path.write_text("".join(json.dumps({"step": s, "n": i}) + "\n" for i, s in enumerate([8, 16, 8, 16, 24])))
  writers.keep_up_to(str(path), 16)
  assert [(r["step"], r["n"]) for r in writers.read(str(path))] == [(8, 2), (16, 3)]


def test_full_disk_is_one_line_and_leaves_the_workdir_as_it_was(tmp_path):
  with _tmpfs(tmp_path / "disk") as disk:
    if disk is None:  # the free-space check, driven by a fake disk_usage in-process
      _full_disk_injected(tmp_path)
      return
    workdir = disk / "run"
    assert _train(workdir, "--config.num_epochs=1").returncode == 0
    # Fill the disk to within 200 kB.
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
      f.write(b"\0" * max(free - 200_000, 0))
    before = _hashes(workdir)
    line = _one_error_line(_train(workdir, "--config.num_epochs=2"))
    assert "no space left on the device" in line and str(workdir) in line
    assert _hashes(workdir) == before
    assert not [p for p in (workdir / "checkpoints").iterdir() if "tmp" in p.name]
    # A model too big for the disk from its first save is refused before its workdir gets any file.
    (disk / "filler").unlink()
    big = _train(disk / "big", "--config.model.widths=(1000, 1000)")
    assert "no space left on the device" in _one_error_line(big)
    assert list(_hashes(disk / "big")) == [".hffjax_lock"]


def _full_disk_injected(tmp_path):
  import shutil  # noqa: PLC0415

  from hffjax.main import run  # noqa: PLC0415

  workdir = tmp_path / "run"
  assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=1"]) == 0
  before = _hashes(workdir)
  real = shutil.disk_usage
  shutil.disk_usage = lambda p: real(p)._replace(free=1000)
  try:
    assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=2"]) == 2
  finally:
    shutil.disk_usage = real
  assert _hashes(workdir) == before


def test_orbax_write_failure_is_one_line_and_leaves_no_temporary_folder(tmp_path, monkeypatch, capsys):
  """A save that fails inside Orbax (after the free-space estimate passed) is reported in one line."""
  import orbax.checkpoint as ocp  # noqa: PLC0415

  from hffjax.main import run  # noqa: PLC0415

  def failing_save(self, step, *args, **kwargs):
    os.makedirs(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp-0"), exist_ok=True)
    raise ValueError(
      f"RESOURCE_EXHAUSTED: Error writing in OCDBT: No space left on device [os_error_code='{errno.ENOSPC}']"
    )

  monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
  workdir = tmp_path / "run"
  assert run(["train", "--config", TINY, "--workdir", str(workdir)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [
    f"hffjax: error: saving a checkpoint in {workdir / 'checkpoints'} failed: cannot write "
    f"{workdir / 'checkpoints'}: no space left on the device; free some space or use another --workdir"
  ]
  assert not [p for p in (workdir / "checkpoints").iterdir() if "tmp" in p.name]


def test_read_only_workdir_is_one_line_and_unchanged(tmp_path):
  with _tmpfs(tmp_path / "disk", size="20m") as disk:
    if disk is None:
      pytest.skip(
        "no tmpfs to remount read-only; the read-only path is covered by test_workdir_errors_name_the_cause"
      )
    workdir = disk / "run"
    assert _train(workdir, "--config.num_epochs=1").returncode == 0
    before = _hashes(workdir)
    assert subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode == 0
    line = _one_error_line(_train(workdir, "--config.num_epochs=2"))
    assert "read-only file system" in line and str(workdir) in line
    assert _hashes(workdir) == before


def test_workdir_that_is_a_file_is_one_line_and_unchanged(tmp_path):
  target = tmp_path / "results.txt"
  target.write_text("not a folder\n")
  line = _one_error_line(_train(target))
  assert str(target) in line and "not a directory" in line
  assert target.read_text() == "not a folder\n"


@pytest.mark.parametrize(
  "code,cause",
  [
    (errno.ENOSPC, "no space left on the device"),
    (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"),
    (errno.ENOTDIR, "not a directory"),
  ],
)
def test_workdir_errors_name_the_cause(tmp_path, monkeypatch, capsys, code, cause):
  """The same one line whatever write fails first (here the workdir lock's file, by injection)."""
  from hffjax.main import run  # noqa: PLC0415

  real_open = os.open

  def failing_open(path, *args, **kwargs):
    if str(path).endswith(".hffjax_lock"):
      raise OSError(code, os.strerror(code), str(path))
    return real_open(path, *args, **kwargs)

  monkeypatch.setattr(os, "open", failing_open)
  assert run(["train", "--config", TINY, "--workdir", str(tmp_path / "run")]) == 2
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("hffjax: error: cannot write ") and cause in line and ".hffjax_lock" in line
