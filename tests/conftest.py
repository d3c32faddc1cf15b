import json
import os
import subprocess
import sys

# Keep XLA from spreading a tiny test over every core, and compile quickly.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tiny_config():
  from hffjax.config import load_config

  return load_config(os.path.join(ROOT, "configs", "tiny.py"))


def config_leaves(c, prefix: str = ""):
  """``(dotted key, value)`` for every leaf of a ConfigDict, nested ones included."""
  import ml_collections  # noqa: PLC0415

  for k, v in c.items():
    if isinstance(v, ml_collections.ConfigDict):
      yield from config_leaves(v, f"{prefix}{k}.")
    else:
      yield prefix + k, v


def eval_cli(workdir, env=None) -> dict:
  """``hffjax eval --workdir W`` in a subprocess; its JSON line."""
  proc = subprocess.run(
    [sys.executable, "-m", "hffjax", "eval", "--workdir", str(workdir)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def tree_hashes(folder) -> dict:
  """``{relative path: SHA-256}`` of every file under ``folder``: to show a workdir was left unchanged."""
  import hashlib  # noqa: PLC0415

  out = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
  return out
