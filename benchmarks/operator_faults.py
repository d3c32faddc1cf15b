"""The operator-fault matrix: each case's command, exit code, the one line printed, and whether the
existing workdir's files are byte-identical afterwards (SHA-256 of every file before and after).

  sudo python benchmarks/operator_faults.py [--out benchmarks/results/operator_faults.md]

Needs root for the tmpfs mounts (full disk, read-only disk); without it those rows say so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from conftest import tree_hashes as hashes  # noqa: E402  (SHA-256 of every file under a folder)
from test_data import write_idx_folder  # noqa: E402  (writes small IDX files)

TINY = "configs/tiny.py"


def hffjax(*args: str, wait: bool = True):
  argv = [sys.executable, "-m", "hffjax", *args]
  if not wait:
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def trained(workdir: str, *extra: str) -> str:
  done = hffjax("train", "--config", TINY, "--workdir", workdir, "--config.num_epochs=1", *extra)
  assert done.returncode == 0, done.stderr[-2000:]
  return workdir


def mount(path: str, size: str) -> bool:
  os.makedirs(path, exist_ok=True)
  return (
    subprocess.run(
      ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True
    ).returncode
    == 0
  )


def row(rows, case, command, workdir, run):
  before = hashes(workdir) if workdir and os.path.isdir(workdir) else None
  proc = run()
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  after = hashes(workdir) if workdir and os.path.isdir(workdir) else None
  unchanged = "n/a" if before is None else ("yes" if before == after else "NO")
  shown = lines[-1] if lines else ""
  rows.append((case, command, proc.returncode, len(lines), shown, unchanged))
  print(f"{case}: exit {proc.returncode}, {len(lines)} line(s), unchanged {unchanged}", file=sys.stderr)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  tmp = tempfile.mkdtemp(prefix="hffjax-faults-")
  rows = []

  # A second job on a busy workdir.
  busy = os.path.join(tmp, "busy")
  slow = ["--config.num_epochs=3000"]
  first = hffjax("train", "--config", TINY, "--workdir", busy, *slow, wait=False)
  while not (
    os.path.exists(os.path.join(busy, ".hffjax_lock")) and os.path.isdir(os.path.join(busy, "checkpoints"))
  ):
    time.sleep(0.2)
  time.sleep(1)
  first_lock = open(os.path.join(busy, ".hffjax_lock")).read()
  row(
    rows,
    "second job on a busy workdir",
    "hffjax train --config configs/tiny.py --workdir W (W busy)",
    None,
    lambda: hffjax("train", "--config", TINY, "--workdir", busy, *slow),
  )
  first.kill()
  first.wait()
  assert first_lock

  # A full disk and a read-only disk (3 MB / 20 MB tmpfs).
  disk = os.path.join(tmp, "disk")
  if mount(disk, "3m"):
    w = trained(os.path.join(disk, "w"))
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(os.path.join(disk, "filler"), "wb") as f:
      f.write(b"\0" * max(free - 200_000, 0))
    row(
      rows,
      "disk full (3 MB tmpfs, resume for one more epoch)",
      "hffjax train ... --workdir W --config.num_epochs=2",
      w,
      lambda: hffjax("train", "--config", TINY, "--workdir", w, "--config.num_epochs=2"),
    )
    os.remove(os.path.join(disk, "filler"))
    row(
      rows,
      "disk too small for the first checkpoint",
      "hffjax train ... --config.model.widths=(1000,1000)",
      None,
      lambda: hffjax(
        "train",
        "--config",
        TINY,
        "--workdir",
        os.path.join(disk, "big"),
        "--config.model.widths=(1000, 1000)",
      ),
    )
    subprocess.run(["umount", "-l", disk])
    ro = os.path.join(tmp, "ro")
    mount(ro, "20m")
    w = trained(os.path.join(ro, "w"))
    subprocess.run(["mount", "-o", "remount,ro", ro], check=True)
    row(
      rows,
      "read-only workdir (tmpfs remounted ro)",
      "hffjax train ... --workdir W --config.num_epochs=2",
      w,
      lambda: hffjax("train", "--config", TINY, "--workdir", w, "--config.num_epochs=2"),
    )
    subprocess.run(["umount", "-l", ro])
  else:
    rows.append(("disk full / read-only", "(needs root to mount a tmpfs)", "-", 0, "not run", "n/a"))

  # The workdir path is a file.
  afile = os.path.join(tmp, "results.txt")
  with open(afile, "w") as f:
    f.write("not a folder\n")
  before = open(afile).read()
  row(
    rows,
    "workdir path is a file",
    "hffjax train ... --workdir results.txt",
    None,
    lambda: hffjax("train", "--config", TINY, "--workdir", afile),
  )
  assert open(afile).read() == before

  # Config values nobody used to check, on an existing workdir (with --overwrite where it matters).
  w = trained(os.path.join(tmp, "cfg"))
  for override, extra in (
    ("--config.log_every_steps=0", ["--overwrite"]),
    ("--config.seed=-1", []),
    ("--config.model.widths=(0,)", []),
    ("--config.model.dtype=bogus", []),
    ("--config.synthetic.num_classes=0", []),
    ("--config.warmup_steps=-5", []),
  ):
    row(
      rows,
      f"config {override.split('--config.')[1]}",
      f"hffjax train ... --workdir W {override} {' '.join(extra)}".strip(),
      w,
      lambda o=override, e=extra: hffjax("train", "--config", TINY, "--workdir", w, o, *e),
    )
  bad = os.path.join(tmp, "bad_config.py")
  with open(bad, "w") as f:
    f.write("def get_config():\n  raise RuntimeError('no such setting')\n")
  row(
    rows,
    "config file whose get_config raises",
    "hffjax train --config bad_config.py --workdir W",
    w,
    lambda: hffjax("train", "--config", bad, "--workdir", w),
  )
  notdict = os.path.join(tmp, "not_a_dict.py")
  with open(notdict, "w") as f:
    f.write("def get_config():\n  return {'dataset': 'synthetic'}\n")
  row(
    rows,
    "config file returning a plain dict",
    "hffjax train --config not_a_dict.py --workdir W",
    w,
    lambda: hffjax("train", "--config", notdict, "--workdir", w),
  )

  # Eval on other data.
  ten, five = os.path.join(tmp, "ten"), os.path.join(tmp, "five")
  for folder, max_label in ((ten, 9), (five, 4)):
    os.makedirs(folder)
    write_idx_folder(folder, n_train=64, max_label=max_label)
  fm = trained(os.path.join(tmp, "fm"), "--config.dataset=fashion_mnist", f"--config.data_dir={ten}")
  row(
    rows,
    "eval on 5-class 28x28 IDX data",
    "hffjax eval --workdir W --data_dir FIVE_CLASSES",
    fm,
    lambda: hffjax("eval", "--workdir", fm, "--data_dir", five),
  )
  row(
    rows,
    "eval --data_dir on a synthetic run",
    "hffjax eval --workdir W --data_dir D",
    w,
    lambda: hffjax("eval", "--workdir", w, "--data_dir", ten),
  )
  row(
    rows,
    "TFDS dataset not prepared",
    "hffjax train ... --config.dataset=cifar10 --config.data_dir=EMPTY",
    None,
    lambda: hffjax(
      "train",
      "--config",
      TINY,
      "--workdir",
      os.path.join(tmp, "c10"),
      "--config.dataset=cifar10",
      f"--config.data_dir={os.path.join(tmp, 'empty')}",
    ),
  )

  lines = ["| case | command | exit | lines | message | workdir unchanged |", "|---|---|---|---|---|---|"]
  for case, command, code, n, message, unchanged in rows:
    message = message.replace(tmp, "$TMP").replace("|", "\\\\|")
    lines.append(f"| {case} | `{command}` | {code} | {n} | {message} | {unchanged} |")
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)


if __name__ == "__main__":
  main()
