"""Multi-host paths, run for real: two processes × two CPU devices on loopback (gloo collectives)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, eval_cli

from hffjax.io import writers

TINY = os.path.join(ROOT, "configs", "tiny.py")
# A few seconds of training with a checkpoint every 8 steps, so that a job can be stopped midway.
LONGER = [
  "--config.synthetic.num_train=2048",
  "--config.synthetic.image_shape=(16, 16, 1)",
  "--config.model.widths=(256, 256)",
  "--config.num_epochs=3",
  "--config.checkpoint_every_steps=8",
]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  return {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "XLA_FLAGS": ""}


def _job(workdir, *extra, port=None, launcher=("-m", "hffjax")) -> list[subprocess.Popen]:
  """Starts process 0 and process 1 of one job."""
  port = port or _free_port()
  procs = []
  for pid in (0, 1):
    argv = [sys.executable, *launcher, "train", "--config", TINY, "--workdir", str(workdir), *extra]
    argv += ["--coordinator_address", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(pid)]
    procs.append(
      subprocess.Popen(argv, cwd=ROOT, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
  return procs


def _finish(procs, timeout=300) -> list[tuple[int, str, str]]:
  out = []
  for p in procs:
    stdout, stderr = p.communicate(timeout=timeout)
    out.append((p.returncode, stdout, stderr))
  return out


def _eval(workdir) -> dict:
  return eval_cli(workdir, _env(1))


def _params(workdir):
  from hffjax.train import restore_experiment

  _, state, _ = restore_experiment(str(workdir))
  return jax.tree.leaves(jax.device_get(state.params))


def test_two_processes_train_like_one_process_with_as_many_devices(tmp_path):
  start = time.perf_counter()
  two = _job(tmp_path / "two")
  one = subprocess.Popen(
    [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(tmp_path / "one")],
    cwd=ROOT,
    env=_env(4),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  (rc0, out0, err0), (rc1, out1, err1) = _finish(two)
  assert rc0 == 0 and rc1 == 0, (err0 + err1)[-3000:]
  assert one.wait(timeout=300) == 0, one.stderr.read()[-3000:]
  print(f"two-process job: {time.perf_counter() - start:.1f} s wall")

  # Only process 0 printed the summary and wrote the records, once each.
  assert json.loads(out0.strip().splitlines()[-1])["step"] == 16
  # (gloo itself prints "[Gloo] Rank i is connected ..." on every process, unbuffered, so its
  # lines may come out split: look for what hffjax prints instead)
  assert "test accuracy" in out0 and "test accuracy" not in out1 and '"step"' not in out1
  records = writers.read(str(tmp_path / "two" / "metrics.jsonl"))
  assert [r["step"] for r in records] == [8, 16]
  assert len(os.listdir(tmp_path / "two" / "tensorboard")) == 1

  # The same global batches reach the same four devices. The gradient all-reduce runs through
  # gloo across processes instead of in one process, which sums the four partial gradients in
  # another order: equal up to float rounding, not bit for bit.
  a, b = _params(tmp_path / "one"), _params(tmp_path / "two")
  for x, y in zip(a, b, strict=True):
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
  fp_one, fp_two = (
    _eval(tmp_path / "one")["params_fingerprint"],
    _eval(tmp_path / "two")["params_fingerprint"],
  )
  print(f"fingerprints: one process x 4 devices {fp_one}; two processes x 2 devices {fp_two}")
  one_records = writers.read(str(tmp_path / "one" / "metrics.jsonl"))
  assert [r["test_accuracy"] for r in one_records] == [r["test_accuracy"] for r in records]


def _signal_after_first_checkpoint(jobs: dict) -> dict:
  """Sends each job's signal to its processes as soon as its first checkpoint exists; waits for them."""
  deadline = time.time() + 300
  waiting = dict(jobs)
  while waiting:
    for name, (procs, workdir, sig) in list(waiting.items()):
      ckpt_dir = workdir / "checkpoints"
      if ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir()):
        for p in procs:
          p.send_signal(sig)
        del waiting[name]
      else:
        assert all(p.poll() is None for p in procs), f"{name} ended before its first checkpoint"
    assert time.time() < deadline
    time.sleep(0.05)
  return {name: _finish(procs) for name, (procs, _, _) in jobs.items()}


def _fingerprint(workdir) -> str:
  from hffjax.io.checkpoint import fingerprint
  from hffjax.train import restore_experiment

  return fingerprint(restore_experiment(str(workdir))[1].params)


def test_killed_or_preempted_job_resumes_bit_identical(tmp_path):
  # Three jobs at once: one runs through; one gets SIGTERM, one SIGKILL, after their first checkpoint.
  started = {name: _job(tmp_path / name, *LONGER) for name in ("reference", "term", "kill")}
  stopped = _signal_after_first_checkpoint(
    {
      "term": (started["term"], tmp_path / "term", signal.SIGTERM),
      "kill": (started["kill"], tmp_path / "kill", signal.SIGKILL),
    }
  )
  reference = _finish(started["reference"])
  assert all(rc == 0 for rc, _, _ in reference), reference[0][2][-3000:]

  # SIGTERM (what schedulers and TPU VMs send): every process stops at one agreed step, saves, exits 0.
  term = stopped["term"]
  assert [rc for rc, _, _ in term] == [0, 0], term[0][2][-3000:]
  assert "stopped by SIGTERM at step" in term[0][2]
  saved_at = int(term[0][2].split("stopped by SIGTERM at step ")[1].split(";")[0])
  assert saved_at < 3 * 2048 // 32
  assert saved_at in [int(p) for p in os.listdir(tmp_path / "term" / "checkpoints")]
  # SIGKILL: nothing is saved on the way out; the job resumes from its last checkpoint.
  assert [rc for rc, _, _ in stopped["kill"]] == [-signal.SIGKILL] * 2

  resumed = {name: _job(tmp_path / name, *LONGER) for name in ("term", "kill")}
  want = _fingerprint(tmp_path / "reference")
  ref = writers.read(str(tmp_path / "reference" / "metrics.jsonl"))
  strip = lambda rs: [{k: v for k, v in r.items() if k not in writers.WALL_CLOCK_KEYS} for r in rs]  # noqa: E731
  for name, procs in resumed.items():
    results = _finish(procs)
    assert all(rc == 0 for rc, _, _ in results), results[0][2][-3000:]
    assert _fingerprint(tmp_path / name) == want
    assert strip(writers.read(str(tmp_path / name / "metrics.jsonl"))) == strip(ref)


# The CLI, with process 1 alone failing to read checkpoint 16 (say, a bad copy in its host's cache):
# its read raises before it has read anything, while process 0 reads the step whole.
_NEWEST_DAMAGED_ON_PROCESS_1 = """
import jax
import orbax.checkpoint as ocp
read = ocp.CheckpointManager.restore
def restore(self, step, *args, **kwargs):
  if jax.process_index() == 1 and step == 16:
    raise ValueError("DATA_LOSS: unexpected end of file (process 1 only)")
  return read(self, step, *args, **kwargs)
ocp.CheckpointManager.restore = restore
from hffjax.main import main
main()
"""
# The CLI, with process 1 alone not seeing checkpoint 16 (its host does not share the folder's latest state).
_NEWEST_MISSING_ON_PROCESS_1 = """
import jax
from hffjax.io import checkpoint
steps = checkpoint.Checkpoints.all_steps
checkpoint.Checkpoints.all_steps = lambda self: [s for s in steps(self) if jax.process_index() == 0 or s != 16]
from hffjax.main import main
main()
"""


def test_a_checkpoint_one_process_cannot_read_is_passed_over_by_every_process(tmp_path):
  first = _finish(_job(tmp_path / "w"))
  assert all(rc == 0 for rc, _, _ in first), first[0][2][-3000:]
  want = _fingerprint(tmp_path / "w")

  # The processes agree: all fall back to step 8 (each alone would train from another step and hang).
  (rc0, _, err0), (rc1, _, err1) = _finish(
    _job(tmp_path / "w", launcher=("-c", _NEWEST_DAMAGED_ON_PROCESS_1))
  )
  assert rc0 == 0 and rc1 == 0, (err0 + err1)[-3000:]
  assert "is damaged (process(es) 1 could not read it); falling back to checkpoint 8" in err0
  assert "is damaged (ValueError: DATA_LOSS: unexpected end of file (process 1 only))" in err1
  assert [r["step"] for r in writers.read(str(tmp_path / "w" / "metrics.jsonl"))] == [8, 16]
  assert _fingerprint(tmp_path / "w") == want  # the epoch trained again ends where it ended before

  # Processes that list other checkpoints stop together, before any of them restores one.
  results = _finish(_job(tmp_path / "w", launcher=("-c", _NEWEST_MISSING_ON_PROCESS_1)))
  assert [rc for rc, _, _ in results] == [2, 2], results[0][2][-3000:]
  assert "process(es) 1 see other checkpoints in" in results[0][2].strip().splitlines()[-1]
  assert sorted(int(p) for p in os.listdir(tmp_path / "w" / "checkpoints")) == [8, 16]


def test_process_id_out_of_range_is_one_line(tmp_path):
  argv = [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(tmp_path)]
  argv += ["--coordinator_address", "127.0.0.1:1", "--num_processes", "2", "--process_id", "2"]
  proc = subprocess.run(argv, cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    "hffjax: error: --process_id 2 is not in [0, 2); number processes 0..N-1"
  ]
  assert not os.listdir(tmp_path)


def test_unreachable_coordinator_is_one_line_naming_it(tmp_path):
  port = _free_port()  # nobody listens there
  argv = [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(tmp_path)]
  argv += ["--coordinator_address", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", "1"]
  argv += ["--initialization_timeout", "3"]
  proc = subprocess.run(argv, cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("hffjax: error: could not join the job") and f"127.0.0.1:{port}" in last


def test_workdir_not_shared_between_processes_is_refused(tmp_path):
  # Each process gets its own folder at the same path: process 1 cannot see process 0's marker.
  port = _free_port()
  procs = []
  for pid in (0, 1):
    workdir = tmp_path / f"host{pid}" / "run"
    argv = [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(workdir)]
    argv += ["--coordinator_address", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(pid)]
    procs.append(
      subprocess.Popen(argv, cwd=ROOT, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
  results = _finish(procs, timeout=120)
  for rc, _, err in results:
    assert rc == 2
    assert "is not shared: process(es) 1 cannot see" in err.strip().splitlines()[-1]


def test_two_processes_start_from_another_run_and_refuse_a_bad_source(tmp_path):
  """init_from + freeze in a two-process job: one report, the frozen learner kept, the source's statistics."""
  from hffjax.train import restore_experiment

  src, dst = tmp_path / "src", tmp_path / "dst"
  argv = [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(src)]
  one = subprocess.run(
    argv + ["--config.num_epochs=1"], cwd=ROOT, env=_env(1), capture_output=True, text=True
  )
  assert one.returncode == 0, one.stderr[-3000:]
  # Another class count (so other data and other pixel statistics); learner 0 frozen.
  transfer = ["--config.synthetic.num_classes=3", f"--config.init_from={src}", "--config.freeze=(0,)"]

  bad = _finish(_job(dst, *transfer[:1], f"--config.init_from={tmp_path / 'nowhere'}"), timeout=120)
  for rc, _, err in bad:
    assert rc == 2 and "does not exist" in err.strip().splitlines()[-1], err[-2000:]
  assert not dst.exists() or not (dst / "config.json").exists()

  (rc0, out0, err0), (rc1, out1, err1) = _finish(_job(dst, *transfer))
  assert rc0 == 0 and rc1 == 0, (err0 + err1)[-3000:]
  assert f"init_from {src} (step 8): loaded 4 of 6 arrays" in out0 and "init_from" not in out1
  assert "re-initialised heads.0 (other class count), heads.1 (other class count)" in out0
  saved = [json.loads((w / "data.json").read_text()) for w in (src, dst)]
  assert saved[0]["pixel_mean"] == saved[1]["pixel_mean"] and saved[1]["num_classes"] == 3
  before, after = (jax.device_get(restore_experiment(str(w))[1].params["blocks"]) for w in (src, dst))
  jax.tree.map(np.testing.assert_array_equal, before[0], after[0])
  assert not np.array_equal(before[1]["linear"]["kernel"], after[1]["linear"]["kernel"])

  # A checkpoint step folder (read as a plain Orbax checkpoint) loads the same arrays.
  step_dir = src / "checkpoints" / "8"
  results = _finish(_job(tmp_path / "from_step", *transfer, f"--config.init_from={step_dir}"))
  assert [rc for rc, _, _ in results] == [0, 0], results[0][2][-3000:]
  assert f"init_from {step_dir}: loaded 4 of 6 arrays" in results[0][1]
  assert _fingerprint(tmp_path / "from_step") == _fingerprint(dst)


def test_two_processes_fuse_steps_and_gather_batches_on_the_device(tmp_path):
  """steps_per_call=4, with batches from the host and from the device-resident split (data_on_device),
  in a two-process job: the same training as one process with as many devices, one step per call."""
  jobs = {
    "fused": _job(tmp_path / "fused", "--config.steps_per_call=4"),
    "on_device": _job(tmp_path / "on_device", "--config.steps_per_call=4", "--config.data_on_device=True"),
  }
  one = subprocess.run(
    [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(tmp_path / "one")],
    cwd=ROOT,
    env=_env(4),
    capture_output=True,
    text=True,
  )
  assert one.returncode == 0, one.stderr[-3000:]
  want = _params(tmp_path / "one")
  reference = [r["test_accuracy"] for r in writers.read(str(tmp_path / "one" / "metrics.jsonl"))]
  for name, procs in jobs.items():
    results = _finish(procs)
    assert [rc for rc, _, _ in results] == [0, 0], results[0][2][-3000:]
    records = writers.read(str(tmp_path / name / "metrics.jsonl"))
    assert [r["step"] for r in records] == [8, 16]
    # Equal up to the cross-process all-reduce's summation order (see the first test).
    for x, y in zip(want, _params(tmp_path / name), strict=True):
      np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
    assert [r["test_accuracy"] for r in records] == reference


def test_two_processes_stream_a_tfds_dataset_like_one_process(tmp_path):
  """A TFDS ArrayRecord dataset of varying image sizes, streamed per process (grain), with a validation
  split carved from train and a test split that leaves some devices only padding."""
  pytest.importorskip("tensorflow_datasets")
  from tfds_fixture import build_variable_size_dataset

  build_variable_size_dataset(str(tmp_path / "tfds"), num_train=96, num_test=30)
  args = [f"--config.data_dir={tmp_path / 'tfds'}", "--config.dataset=var_shapes", "--config.image_size=16"]
  args += ["--config.validation_split=train[-32:]", "--config.num_epochs=3", "--config.eval_batch_size=16"]
  two = _job(tmp_path / "two", *args)
  argv = [
    sys.executable,
    "-m",
    "hffjax",
    "train",
    "--config",
    TINY,
    "--workdir",
    str(tmp_path / "one"),
    *args,
  ]
  one = subprocess.run(argv, cwd=ROOT, env=_env(4), capture_output=True, text=True)
  assert one.returncode == 0, one.stderr[-3000:]
  results = _finish(two)
  assert [rc for rc, _, _ in results] == [0, 0], results[0][2][-3000:]
  records = {w: writers.read(str(tmp_path / w / "metrics.jsonl")) for w in ("one", "two")}
  assert [r["step"] for r in records["two"]] == [2, 4, 6]  # (96 - 32) // 32 steps per epoch
  for key in ("test_accuracy", "validation_accuracy"):
    assert [r[key] for r in records["two"]] == [r[key] for r in records["one"]]
  for x, y in zip(_params(tmp_path / "one"), _params(tmp_path / "two"), strict=True):
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


def test_a_record_one_process_cannot_read_stops_every_process_with_one_line(tmp_path):
  """A bad record read by one process only (in a training batch, then in the validation split): every
  process exits 2 within seconds, the reader naming the record and the other naming the reader, and
  the last checkpoint before the bad batch is kept — no process is left waiting in a collective."""
  pytest.importorskip("tensorflow_datasets")
  from tfds_fixture import build_variable_size_dataset, unlabelled_positions

  from hffjax.data import TrainOrder

  args = ["--config.dataset=var_shapes", "--config.image_size=16", "--config.validation_split=train[-32:]"]
  args += ["--config.num_epochs=3", "--config.eval_batch_size=16", "--config.checkpoint_every_steps=1"]
  # Given statistics: estimating them would read every record on every process, and fail on all at once.
  args += ["--config.pixel_mean=(0.5, 0.5, 0.5)", "--config.pixel_std=(0.25, 0.25, 0.25)"]
  # Generation keys whose records TFDS stores in the training part, then in the validation part.
  for key, part in ((66, "train"), (68, "validation")):
    data_dir = tmp_path / f"tfds_{key}"
    build_variable_size_dataset(str(data_dir), num_train=96, num_test=30, bad_label_at=key)
    (position,) = unlabelled_positions(str(data_dir))
    if part == "train":  # the first step whose batch holds it, and the process that reads it
      assert position < 64
      step, reader = next(
        (s, q) for s in range(6) for q in (0, 1) if position in TrainOrder(64, 32, 0, q, 2).local_indices(s)
      )
      assert step >= 1  # so that a checkpoint precedes the bad batch
      what = "reading training batches"
    else:  # validation = stored positions 64..95, read in batches of 16, 8 per process
      assert position >= 64
      reader, what = ((position - 64) % 16) // 8, "reading the validation split"
      step = 1  # the first evaluation (step 2, an epoch of two) fails before its checkpoint is saved
    kept = f"(evaluating step 2); checkpoint {step} in " if part == "validation" else f"checkpoint {step} in "
    workdir = tmp_path / f"run_{key}"
    start = time.monotonic()
    results = _finish(_job(workdir, f"--config.data_dir={data_dir}", *args), timeout=120)
    assert time.monotonic() - start < 100
    for pid, (rc, _, err) in enumerate(results):
      last = err.strip().splitlines()[-1]
      assert rc == 2, err[-3000:]
      if pid == reader:
        assert f"record {position} of TFDS var_shapes train has label -1" in last, last
      else:
        assert f"process(es) {reader} failed while {what}; see their message" in last, last
      assert kept in last and last.endswith("is kept"), last
    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved[-1] == step, saved
