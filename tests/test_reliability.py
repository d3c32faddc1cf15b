"""Interrupted runs resume exactly, damaged checkpoints fall back, nothing is lost."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, eval_cli, tree_hashes

from hffjax.io import writers as metrics_log
from hffjax.main import run

TINY = os.path.join(ROOT, "configs", "tiny.py")
# Long enough (a few seconds) to be killed in the middle, with a checkpoint every 16 steps.
SLOW = [
  "--config.synthetic.num_train=4096",
  "--config.synthetic.image_shape=(28, 28, 1)",
  "--config.model.widths=(384, 384)",
  "--config.num_epochs=4",
  "--config.checkpoint_every_steps=16",
]


def _train_argv(workdir, *extra):
  return [sys.executable, "-m", "hffjax", "train", "--config", TINY, "--workdir", str(workdir), *SLOW, *extra]


def _eval(workdir) -> dict:
  return eval_cli(workdir)


def _without_wall_clock(records):
  return [{k: v for k, v in r.items() if k not in metrics_log.WALL_CLOCK_KEYS} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of the SLOW setting, shared by the interruption tests."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  done = subprocess.run(_train_argv(workdir), cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  return workdir


def test_sigkill_at_a_random_point_then_resume_is_bit_identical(tmp_path, reference):
  rng = random.Random()
  for _ in range(3):
    interrupted = tmp_path / f"interrupted{_}"
    proc = subprocess.Popen(
      _train_argv(interrupted), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (interrupted / "checkpoints").is_dir() or not any(
      p.name.isdigit() for p in (interrupted / "checkpoints").iterdir()
    ):
      assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
      time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    if proc.wait() == -signal.SIGKILL:
      break
  assert proc.returncode == -signal.SIGKILL, "could not kill the run before it finished"
  resumed = subprocess.run(_train_argv(interrupted), cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-2000:]

  assert _eval(interrupted)["params_fingerprint"] == _eval(reference)["params_fingerprint"]
  got = metrics_log.read(str(interrupted / "metrics.jsonl"))
  want = metrics_log.read(str(reference / "metrics.jsonl"))
  assert _without_wall_clock(got) == _without_wall_clock(want)


def test_same_config_and_seed_give_identical_metrics(tiny_config, tmp_path):
  from hffjax.train import train_and_evaluate

  runs = []
  for name in ("a", "b"):
    train_and_evaluate(tiny_config, str(tmp_path / name), progress=False)
    runs.append(metrics_log.read(str(tmp_path / name / "metrics.jsonl")))
  assert len(runs[0]) == tiny_config.num_epochs
  assert _without_wall_clock(runs[0]) == _without_wall_clock(runs[1])


def _largest_file(folder):
  files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
  return max(files, key=os.path.getsize)


def _trained(tmp_path, capsys):
  workdir = tmp_path / "w"
  assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=3"]) == 0
  capsys.readouterr()
  return workdir


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_latest_checkpoint_falls_back(tmp_path, capsys, damage):
  workdir = _trained(tmp_path, capsys)
  steps = sorted(int(p) for p in os.listdir(workdir / "checkpoints") if p.isdigit())
  assert steps == [8, 16, 24]
  target = _largest_file(workdir / "checkpoints" / "24" / "state")
  raw = open(target, "rb").read()
  if damage == "truncate":
    raw = raw[: len(raw) // 2]
  else:
    middle = len(raw) // 2
    raw = raw[:middle] + bytes(b ^ 0xFF for b in raw[middle : middle + 64]) + raw[middle + 64 :]
  open(target, "wb").write(raw)

  assert run(["eval", "--workdir", str(workdir)]) == 0
  out = capsys.readouterr()
  assert json.loads(out.out.strip().splitlines()[-1])["step"] == 16
  warnings = [line for line in out.err.splitlines() if "warning" in line]
  assert (
    len(warnings) == 1 and "checkpoint 24" in warnings[0] and "falling back to checkpoint 16" in warnings[0]
  )

  # Training falls back too, redoes the lost epoch, and ends where it should.
  assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=3"]) == 0
  assert "falling back to checkpoint 16" in capsys.readouterr().err
  records = metrics_log.read(str(workdir / "metrics.jsonl"))
  assert [r["step"] for r in records] == [8, 16, 24]


def test_a_damaged_checkpoint_is_one_warning_line_on_the_command_line(tmp_path, capsys):
  """Not buried under the aborted reads' 'Event loop is closed' reports (one per read in flight)."""
  workdir = _trained(tmp_path, capsys)
  for name in os.listdir(workdir / "checkpoints" / "24" / "state" / "d"):
    with open(workdir / "checkpoints" / "24" / "state" / "d" / name, "r+b") as f:
      f.truncate(10)
  done = subprocess.run(
    [sys.executable, "-m", "hffjax", "eval", "--workdir", str(workdir)],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == 16
  assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr, done.stderr[-3000:]
  warnings = [line for line in done.stderr.splitlines() if line.startswith("hffjax: warning:")]
  assert len(warnings) == 1 and warnings[0].startswith("hffjax: warning: checkpoint 24 in "), warnings
  assert warnings[0].endswith("falling back to checkpoint 16"), warnings[0]


def test_a_resume_compares_the_checkpoint_lists_once(tmp_path, capsys, monkeypatch):
  from hffjax.io.checkpoint import Checkpoints

  workdir = _trained(tmp_path, capsys)
  calls = []
  agreed_steps = Checkpoints.agreed_steps

  def counted(self):
    calls.append(1)
    return agreed_steps(self)

  monkeypatch.setattr(Checkpoints, "agreed_steps", counted)
  assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=4"]) == 0
  out = capsys.readouterr().out
  assert "epoch 4/4" in out and "epoch 1/4" not in out  # (it resumed from checkpoint 24)
  assert len(calls) == 1  # (each comparison is a collective round on every process)
  assert [r["step"] for r in metrics_log.read(str(workdir / "metrics.jsonl"))] == [8, 16, 24, 32]


def test_no_intact_checkpoint_is_a_clear_error(tmp_path, capsys):
  workdir = _trained(tmp_path, capsys)
  for step in os.listdir(workdir / "checkpoints"):
    target = _largest_file(workdir / "checkpoints" / step / "state")
    open(target, "wb").write(b"")
  assert run(["eval", "--workdir", str(workdir)]) != 0
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("hffjax: error: no intact checkpoint")
  assert "Traceback" not in "\n".join(err)


def test_workdir_with_another_config_is_refused_unless_overwrite(tmp_path, capsys):
  workdir = _trained(tmp_path, capsys)
  before = open(workdir / "metrics.jsonl").read()
  argv = ["train", "--config", TINY, "--workdir", str(workdir), "--config.learning_rate=0.01"]
  assert run(argv) != 0
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "learning_rate differ" in err and "--overwrite" in err
  assert open(workdir / "metrics.jsonl").read() == before  # nothing was touched
  wider = ["train", "--config", TINY, "--workdir", str(workdir), "--config.model.widths=(32, 16)"]
  assert run([*wider, "--config.seed=3"]) != 0
  assert "(model.widths, seed differ)" in capsys.readouterr().err  # each key by its own name
  (workdir / "early_exit.json").write_text("{}")  # the discarded run's evaluation outputs go with it
  (workdir / "plots").mkdir()
  assert run([*argv, "--overwrite", "--config.num_epochs=1"]) == 0
  assert not (workdir / "early_exit.json").exists() and not (workdir / "plots").exists()
  records = metrics_log.read(str(workdir / "metrics.jsonl"))
  assert [r["step"] for r in records] == [8]


def test_a_run_without_its_config_json_or_past_a_shorter_schedule_is_refused(tmp_path, capsys):
  """Neither resumes under a config that may not be the run's, nor rewrites config.json to one."""
  workdir = _trained(tmp_path, capsys)  # 3 epochs of 8 steps
  saved = (workdir / "config.json").read_text()
  argv = ["train", "--config", TINY, "--workdir", str(workdir)]
  assert run([*argv, "--config.num_epochs=1"]) == 2
  err = capsys.readouterr().err.strip()
  assert err == (
    f"hffjax: error: {workdir} has trained to step 24, past this config's 8 steps; raise num_epochs "
    f"(or num_steps) to continue it, or evaluate it with `hffjax eval --workdir {workdir}`"
  ), err
  assert (workdir / "config.json").read_text() == saved
  assert run([*argv, "--config.num_epochs=3"]) == 0  # the schedule it was trained for: reported as it is
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["step"] == 24 and summary["epoch"] == 3 and isinstance(summary["epoch"], int)
  (workdir / "config.json").unlink()
  before = tree_hashes(workdir)
  assert run([*argv, "--config.learning_rate=0.1", "--config.num_epochs=4"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith(
    f"hffjax: error: {workdir} holds a run but no config.json, so its config cannot be"
  ), err
  assert tree_hashes(workdir) == before
  assert run([*argv, "--config.num_epochs=1", "--overwrite"]) == 0  # discards it: trains anew from step 0
  assert [r["step"] for r in metrics_log.read(str(workdir / "metrics.jsonl"))] == [8]


def test_a_trained_cosine_run_refuses_a_new_length(tmp_path, capsys):
  """A cosine schedule spans the whole run: lengthening or shortening it would rewrite the learning rates
  already used, whether the run finished or was stopped part-way."""
  workdir = tmp_path / "cosine"
  argv = ["train", "--config", TINY, "--workdir", str(workdir), "--config.lr_schedule=cosine"]
  assert run([*argv, "--config.num_epochs=2"]) == 0
  capsys.readouterr()
  saved, before = (workdir / "config.json").read_text(), tree_hashes(workdir)

  def refused(flags, length):
    assert run([*argv, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert (
      err.startswith(
        f"hffjax: error: {workdir} was trained with a cosine learning-rate schedule over 16 steps ({length});"
      )
      and f"keep {length}, or train on from its parameters in another workdir with --config.init_from={workdir}"
      in err
    )
    assert "\n" not in err, err

  for flags in (["--config.num_epochs=3"], ["--config.num_steps=20"], ["--config.num_epochs=1"]):
    refused(flags, "num_epochs=2")  # longer, or shorter: the same refusal, naming the length to keep
  assert (workdir / "config.json").read_text() == saved and tree_hashes(workdir) == before
  assert run([*argv, "--config.num_epochs=2", "--config.num_steps=16"]) == 0  # the same 16 steps
  refused(["--config.num_steps=24"], "num_steps=16")  # the length saved as num_steps now
  # Stopped part-way (its newest checkpoint at step 8): still its schedule's.
  partial = tmp_path / "partial"
  part = ["train", "--config", TINY, "--workdir", str(partial), "--config.lr_schedule=cosine"]
  assert run([*part, "--config.num_epochs=1"]) == 0
  config = json.loads((partial / "config.json").read_text())
  config["num_epochs"] = 2  # as if a 2-epoch run had been stopped after its first
  (partial / "config.json").write_text(json.dumps(config))
  capsys.readouterr()
  assert run([*part, "--config.num_epochs=3"]) == 2
  assert (
    "over 16 steps (num_epochs=2); 24 would change the learning rates of the 8 steps"
    in capsys.readouterr().err
  )
  assert run([*part, "--config.num_epochs=2"]) == 0  # resumed under the schedule it started
  capsys.readouterr()
  # From its parameters, in a new workdir, with a schedule of its own.
  on = ["train", "--config", TINY, "--workdir", str(tmp_path / "on"), "--config.lr_schedule=cosine"]
  assert run([*on, "--config.num_epochs=1", f"--config.init_from={workdir}"]) == 0


def test_partial_metrics_line_is_skipped_and_repaired(tmp_path, capsys):
  workdir = _trained(tmp_path, capsys)
  path = str(workdir / "metrics.jsonl")
  with open(path, "a") as f:
    f.write('{"step": 99, "epo')
  assert [r["step"] for r in metrics_log.read(path)] == [8, 16, 24]
  assert "partial last line" in capsys.readouterr().err
  # A resumed run drops the partial line before appending.
  assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=4"]) == 0
  assert [r["step"] for r in metrics_log.read(path)] == [8, 16, 24, 32]
  assert open(path).read().endswith("}\n")


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_sigterm_or_ctrl_c_saves_at_the_next_step_and_resumes_bit_identical(
  tmp_path, reference, signum, code
):
  """SIGTERM (a scheduler) exits 0; a first Ctrl-C (SIGINT) saves the same way and exits 130."""
  name = signal.Signals(signum).name
  stopped = tmp_path / "stopped"
  proc = subprocess.Popen(
    _train_argv(stopped), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  deadline = time.time() + 300
  while not (stopped / "checkpoints").is_dir() or not any(
    p.name.isdigit() for p in (stopped / "checkpoints").iterdir()
  ):
    assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
    time.sleep(0.02)
  time.sleep(0.3)  # mid-way between checkpoints
  proc.send_signal(signum)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == code, err[-2000:]
  line = err.strip().splitlines()[-1]
  assert line.startswith(f"hffjax: stopped by {name} at step"), line
  assert ("Ctrl-C: saving a checkpoint after this step" in err) == (signum == signal.SIGINT), err[-2000:]
  step = int(line.split("at step ")[1].split(";")[0])
  assert str(step) in os.listdir(stopped / "checkpoints")

  resumed = subprocess.run(_train_argv(stopped), cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert _eval(stopped)["params_fingerprint"] == _eval(reference)["params_fingerprint"]
  got = metrics_log.read(str(stopped / "metrics.jsonl"))
  assert _without_wall_clock(got) == _without_wall_clock(metrics_log.read(str(reference / "metrics.jsonl")))


def test_a_second_ctrl_c_stops_at_once_and_says_what_is_not_saved(capsys, monkeypatch):
  from hffjax import train
  from hffjax.train.loop import PreemptionWatch

  with PreemptionWatch() as watch:
    os.kill(os.getpid(), signal.SIGINT)  # the first: save at the next step, then stop
    time.sleep(0.01)
    assert watch.reached(5) and watch.signal_name == "SIGINT"
    assert "Ctrl-C: saving a checkpoint after this step" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)  # the second: at once
      time.sleep(0.5)
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual handler is back

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(train, "train_and_evaluate", interrupted)
  assert run(["train", "--config", TINY, "--workdir", "unused"]) == 130
  assert capsys.readouterr().err.strip() == (
    "hffjax: interrupted; steps after the last checkpoint are not saved; "
    "re-run the same command to resume from it (or to start, if there is none)"
  )

  # The bench's trainings live in temporary folders: nothing to resume, and no traceback.
  def preempted(*args, **kwargs):
    raise train.Preempted("stopped by SIGINT at step 3; …", "SIGINT")

  from hffjax import bench

  monkeypatch.setattr(bench, "main", preempted)
  assert run(["bench", "--quick", "--out", "unused.json"]) == 130
  assert capsys.readouterr().err.strip() == "hffjax: interrupted"


def test_ctrl_c_is_left_alone_where_it_is_ignored(monkeypatch):
  """A run started in the background by a script ignores SIGINT: Ctrl-C at the script does not stop it."""
  from hffjax.train.loop import PreemptionWatch

  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    with PreemptionWatch() as watch:
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
      assert not watch.reached(1)
  finally:
    signal.signal(signal.SIGINT, previous)


def test_a_reader_beside_a_save_in_flight_leaves_it_alone(tmp_path):
  """eval/predict/plot open a run's checkpoints read-only: a save still being written is not removed."""
  import numpy as np

  from hffjax import sharding
  from hffjax.io.checkpoint import Checkpoints, abstract_like

  state = {
    "params": {"w": np.ones((2000, 2000), np.float32)},
    "batch_stats": {},
    "step": np.asarray(1, np.int32),
  }
  writer = Checkpoints(str(tmp_path))
  writer.save(1, state)  # asynchronous: its temporary folder exists until it is finalised
  reader = Checkpoints(str(tmp_path), read_only=True)
  writer.wait()
  assert writer.all_steps() == [1] and reader.all_steps() in ([], [1])
  abstract = abstract_like(state, sharding.replicated(sharding.make_mesh()))
  step, restored, _ = Checkpoints(str(tmp_path), read_only=True).restore(abstract)
  assert step == 1 and np.array_equal(restored["params"]["w"], state["params"]["w"])
  writer.close()
  reader.close()


def test_a_checkpoint_of_renamed_arrays_is_refused_not_deleted_as_damaged(tmp_path):
  """Same shapes under other names (e.g. a custom builder's module renamed): an error, every checkpoint kept."""
  import numpy as np

  from hffjax import sharding
  from hffjax.errors import HFFError
  from hffjax.io.checkpoint import Checkpoints, abstract_like

  def state(name, shape=(3, 3)):
    return {"params": {name: np.ones(shape, np.float32)}, "batch_stats": {}, "step": np.asarray(1, np.int32)}

  ckpts = Checkpoints(str(tmp_path))
  for step in (1, 2):
    ckpts.save(step, state("dense_0"))
  ckpts.wait()
  replicated = sharding.replicated(sharding.make_mesh())
  with pytest.raises(HFFError, match="it has params/dense_0 where this model has params/layer_0"):
    ckpts.restore(abstract_like(state("layer_0"), replicated), delete_damaged=True)
  with pytest.raises(
    HFFError, match=r"its params/dense_0 is \(\(3, 3\), '<f4'\) where this model's is \(\(3, 4\)"
  ):
    ckpts.restore(abstract_like(state("dense_0", (3, 4)), replicated), delete_damaged=True)
  assert ckpts.all_steps() == [1, 2]
  step, _, _ = ckpts.restore(abstract_like(state("dense_0"), replicated), delete_damaged=True)
  assert step == 2
  ckpts.close()


@pytest.mark.parametrize(
  "error, why",
  [
    (PermissionError(13, "Permission denied", "/ckpt/2/state/d/0"), "permission denied"),
    (MemoryError(), "out of memory"),
    (ValueError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.0GiB"), "out of memory"),
    (ValueError("UNAVAILABLE: Error reading gs://bucket/ckpt/2: 503 Service Unavailable"), "unavailable"),
    (
      ValueError("ABORTED: Error reading \"/nfs/ckpt/2/state/d/0\": Stale file handle [os_error_code='116']"),
      "stale",
    ),
    (ValueError('UNKNOWN: Error reading "/ckpt/2/state/d/0": Input/output error'), "input/output error"),
    (ValueError("DATA_LOSS: Error reading local file: unexpected end of file"), None),
  ],
)
def test_a_restore_that_fails_for_want_of_permission_or_memory_keeps_the_checkpoint(
  tmp_path, monkeypatch, error, why
):
  """Only damage is skipped (and deleted when training resumes); other read failures are errors that keep it."""
  import numpy as np
  import orbax.checkpoint as ocp

  from hffjax import sharding
  from hffjax.errors import HFFError
  from hffjax.io.checkpoint import Checkpoints, abstract_like

  state = {"params": {"w": np.ones((3, 3), np.float32)}, "batch_stats": {}, "step": np.asarray(1, np.int32)}
  ckpts = Checkpoints(str(tmp_path))
  for step in (1, 2):
    ckpts.save(step, state)
  ckpts.wait()
  restore = ocp.CheckpointManager.restore

  def failing(self, step, *args, **kwargs):
    if step == 2:
      raise error
    return restore(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "restore", failing)
  abstract = abstract_like(state, sharding.replicated(sharding.make_mesh()))
  if why is None:  # damage: the older checkpoint is restored and the damaged one removed
    assert ckpts.restore(abstract, delete_damaged=True)[0] == 1
    assert ckpts.all_steps() == [1]
  else:
    with pytest.raises(HFFError, match=f"reading checkpoint 2 .* failed .*{why}.*the checkpoint is kept"):
      ckpts.restore(abstract, delete_damaged=True)
    assert ckpts.all_steps() == [1, 2]
  ckpts.close()
