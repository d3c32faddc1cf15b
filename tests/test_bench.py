import json
import os
import subprocess
import sys

import jax
import pytest

from hffjax import bench, sharding, train
from hffjax import config as config_lib
from hffjax import data as data_lib
from hffjax.errors import HFFError
from hffjax.main import run

TRAINING_FIELDS = {
  "arch",
  "method",
  "epochs",
  "batch_size",
  "test_accuracy",
  "ensemble_accuracy",
  "layer_accuracy",
  "median_step_seconds",
  "epoch_seconds",
  "train_examples_per_second",
  "inference_seconds",
  "inference_examples",
  "inference_examples_per_second",
  "train_step_temp_bytes",
  "inference_temp_bytes",
}
RATIOS = {
  "mlp_hff_over_bp_step_time",
  "cnn_hff_over_bp_step_time",
  "mlp_ff_over_hff_step_time",
  "mlp_ff_over_hff_inference_time",
  "mlp_hff_minus_bp_accuracy",
  "cnn_hff_minus_bp_accuracy",
  "mlp_hff_minus_ff_accuracy",
  "cnn_hff_over_bp_train_temp_bytes",
}


def test_quick_bench_report_has_every_field(tmp_path, capsys):
  out, md = tmp_path / "quick.json", tmp_path / "README.md"
  md.write_text("# Benchmarks\n\nintro kept\n")
  assert run(["bench", "--out", str(out), "--quick", "--markdown", str(md), "--scaling_examples", "64"]) == 0
  report = json.loads(out.read_text())
  for key in ("cpu", "cpu_cores", "backend", "device_kind", "device_count", "jax_version"):
    assert key in report["machine"]
  assert {(r["arch"], r["method"]) for r in report["training"]} == set(bench.TRAINING_RUNS)
  for r in report["training"]:
    assert TRAINING_FIELDS <= set(r), TRAINING_FIELDS - set(r)
    assert r["median_step_seconds"] > 0 and 0 <= r["test_accuracy"] <= 1
    assert r["inference_examples"] == 200
  assert RATIOS <= set(report["ratios"]), RATIOS - set(report["ratios"])
  scaling = {(r["arch"], r["num_classes"]) for r in report["class_scaling"]}
  assert scaling == {("mlp", 10), ("mlp", 100), ("cnn", 10), ("cnn", 100)}
  for r in report["class_scaling"]:
    assert r["ff_over_hff"] == r["ff_seconds"] / r["hff_seconds"]
  mlp_rows = [r for r in report["accuracy_vs_seconds"] if r["arch"] == "mlp"]
  assert mlp_rows and all({"hff", "bp", "ff", "ff_readout"} <= set(r) for r in mlp_rows)
  shortest = min(r["curve"][-1]["train_seconds"] for r in report["training"] if r["arch"] == "mlp")
  assert mlp_rows[-1]["train_seconds"] == shortest  # the last budget is the shortest run's whole time
  for r in report["training"]:
    assert r["curve"][-1]["test_accuracy"] == r["test_accuracy"]  # the curve ends at the reported model
  text = md.read_text()
  assert "intro kept" in text and "| mlp | hff |" in text and "FF/HFF" in text
  assert "after the same training seconds" in text
  # A second run replaces this machine's section instead of appending another.
  bench.update_markdown(str(md), report)
  assert md.read_text().count("| mlp | hff |") == 1


def test_speed_rows_have_every_field():
  rows = bench.bench_speed(
    batch_size=16, image_shape=(8, 8, 3), classes=(10,), dtypes=("float32",), steps=1, small=True
  )
  assert [(r["arch"], r["dtype"], r["num_classes"]) for r in rows] == [
    ("mlp", "float32", 10),
    ("cnn", "float32", 10),
  ]
  for r in rows:
    for method in ("hff", "bp", "ff"):
      assert r[f"{method}_step_seconds"] > 0
    assert r["hff_over_bp_step_time"] == r["hff_step_seconds"] / r["bp_step_seconds"]
    assert r["ff_over_hff_inference_time"] == r["ff_inference_seconds"] / r["hff_inference_seconds"]
  md = bench.speed_markdown(
    {
      "kind": "speed",
      "machine": bench.machine_info(),
      "machine_name": "m",
      "date": "2026",
      "dataset": "synthetic",
      "seed": 0,
      "command": "c",
      "speed": rows,
    }
  )
  assert md.count("| float32 |") == 2


def test_speed_flops_come_from_the_compiled_step(monkeypatch):
  """A backend whose lowered programs report no cost (CUDA and TPU through the PJRT C API) still gets FLOPs."""
  monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", lambda self: None)
  ds = data_lib.make_synthetic(num_train=4, num_test=4, image_shape=(8, 8, 3), num_classes=3, seed=0)
  c = bench.resnet_config(8, method="hff", learner="stage", dtype="float32", batch_size=4, width=4, depth=10)
  c.steps_per_call = 2
  exp = train.setup(c, dataset=ds)
  t = bench._call_timing(exp, 2, calls=1, warmup=0)
  assert exp.stacked
  batch = sharding.to_global(exp.mesh, ds.train_images[None, :4], ds.train_labels[None, :4], batch_axis=1)
  one = exp.train_fn(1).lower(exp.initial_state, *batch).compile()
  assert t["flops_per_step"] == one.cost_analysis()["flops"] > 0


def test_speed_scaling_examples_reach_the_resnet_inference_table(tmp_path, monkeypatch):
  """``bench --speed --scaling_examples N`` sizes the ResNet FF/HFF table; the speed table times batches."""
  seen = {}

  def recorder(name, result):
    def record(**kwargs):
      seen[name] = kwargs
      return result

    return record

  monkeypatch.setattr(bench, "bench_speed", recorder("speed", []))
  monkeypatch.setattr(bench, "bench_resnet", recorder("resnet", {}))
  monkeypatch.setattr(bench, "to_markdown", lambda report: "")
  args = ["bench", "--speed", "--quick", "--out", str(tmp_path / "s.json")]
  assert run([*args, "--scaling_examples", "8"]) == 0
  assert seen["resnet"]["scaling_examples"] == 8 and "scaling_examples" not in seen["speed"]
  seen.clear()
  assert run(args) == 0
  assert seen["resnet"]["scaling_examples"] == bench.resnet_defaults(True, None)["scaling_examples"]


class _Compiled:
  def __init__(self, cost):
    self.cost = cost

  def cost_analysis(self):
    if isinstance(self.cost, Exception):
      raise self.cost
    return self.cost


@pytest.mark.parametrize(
  "cost, flops",
  [
    ({"flops": 12.0}, 12.0),
    ([{"flops": 5.0}], 5.0),  # older JAX: one dict per device program
    (None, None),
    ({}, None),
    ({"flops": -1.0}, None),  # XLA's "unknown"
    (NotImplementedError("no cost analysis"), None),
  ],
)
def test_compiled_flops_reads_every_form_a_backend_gives(cost, flops):
  assert bench._compiled_flops(_Compiled(cost)) == flops


def test_resnet_speed_section_has_every_field():
  """K fused steps per call, FLOPs and MFU from the compiled program, HFF/BP for each learner split."""
  section = bench.bench_resnet(**{**bench.resnet_defaults(quick=True), "calls": 1, "scaling_examples": 8})
  rows = {(r["method"], r["learner"]): r for r in section["training"]}
  assert set(rows) == {("hff", "block"), ("hff", "stage"), ("hff", "groups"), ("bp", "-")}
  assert rows["hff", "groups"]["learner_blocks"] == [2, 2] and rows["hff", "stage"]["learner_blocks"] == []
  assert section["matmul_peak_flops"] > 0
  for r in rows.values():
    assert r["steps_per_call"] == 2 and r["step_seconds"] > 0 and 0 < r["mfu"] < 1
    assert r["images_per_second"] == r["batch_size"] / r["step_seconds"]
  for learner in ("block", "stage", "groups"):
    hff = rows["hff", learner]
    assert hff["hff_over_bp_step_time"] == hff["step_seconds"] / rows["bp", "-"]["step_seconds"]
    # Backprop's extra input-gradient convolutions show in the FLOP count.
    assert hff["hff_over_bp_flops"] < 1
  assert [r["num_classes"] for r in section["class_scaling"]] == [10, 100]
  for r in section["class_scaling"]:
    assert r["image_shape"] == [16, 16, 3]
    assert r["ff_images_per_second"] == r["examples"] / r["ff_seconds"]
    assert r["hff_images_per_second"] == r["examples"] / r["hff_seconds"]
  md = "\n".join(bench.resnet_markdown(section))
  assert md.count("| resnet10 w4 |") == 4 + 2 and "| FF images/s | FF/HFF |" in md
  assert "| hff | groups (2, 2) |" in md and "| hff | stage |" in md
  r = section["class_scaling"][1]
  assert (
    f"| resnet10 w4 | 16 | 100 | 8 | {1000 * r['hff_seconds']:.1f} ms | {8 / r['hff_seconds']:.0f} |" in md
  )


def test_two_learners_splits_each_depth_at_its_third_stage():
  assert [bench.two_learners(d) for d in (10, 18, 34)] == [(2, 2), (4, 4), (7, 9)]
  with pytest.raises(HFFError, match=r"^unknown model.depth 50; use one of \(10, 18, 34\)$"):
    bench.two_learners(50)


def _run(arch, method, points):
  curve = [{"train_seconds": t, "epoch": i + 1, "test_accuracy": a} for i, (t, a) in enumerate(points)]
  if method == "ff":
    for p in curve:
      p["readout_accuracy"] = p["test_accuracy"] + 0.01
  return {"arch": arch, "method": method, "curve": curve}


def test_accuracy_vs_seconds_compares_at_equal_training_time():
  runs = [
    _run("mlp", "hff", [(10, 0.80), (20, 0.85), (30, 0.88), (40, 0.89)]),
    _run("mlp", "ff", [(25, 0.70), (50, 0.75)]),
    _run("cnn", "hff", [(100, 0.9)]),  # alone: nothing to compare it with
  ]
  rows = bench.accuracy_vs_seconds(runs, fractions=(0.25, 0.5, 1.0))
  # Budgets are fractions of the shorter run's 40 s: 10, 20 and 40 s.
  assert [r["train_seconds"] for r in rows] == [10, 20, 40]
  assert [r["hff"] for r in rows] == [0.80, 0.85, 0.89]
  assert [r["ff"] for r in rows] == [None, None, 0.70]  # FF finished its first epoch at 25 s
  assert rows[-1]["ff_readout"] == 0.71
  md = "\n".join(bench.accuracy_vs_seconds_markdown(rows))
  assert "| mlp | 10 | 80.00% | — | — |" in md
  short = bench.accuracy_vs_seconds_markdown([{"arch": "mlp", "train_seconds": 0.375, "hff": 0.5}])
  assert "| mlp | 0.38 | 50.00% |" in "\n".join(short)  # a --quick run's budgets are not all "0"


def _resnet_report(tmp_path, out, *extra):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  argv = [sys.executable, os.path.join(root, "benchmarks", "resnet_fashion_mnist.py")]
  argv += ["--root", str(tmp_path / "runs"), "--out", str(out), "--report-only", *extra]
  return subprocess.run(argv, capture_output=True, text=True, cwd=root)


def _settings(name, **overrides):
  """A run's whole config as its config.json (and a report's ``settings``) holds it."""
  c = config_lib.load_config(name)
  config_lib.apply_overrides(c, {k: str(v) for k, v in overrides.items()})
  return json.loads(config_lib.to_json(c))


def test_resnet_report_keeps_runs_whose_workdirs_are_elsewhere(tmp_path):
  out = tmp_path / "resnet.json"
  hff = {"config": "fashion_mnist_resnet", "seed": 0, "test_accuracy": 0.9255, "layer_accuracy": [0.9255]}
  hff |= {"validation_accuracy": 0.93, "median_seconds_per_epoch": 510.0}
  hff["settings"] = _settings("fashion_mnist_resnet", seed=0)
  trained_on = {"cpu": "an earlier CPU", "cpu_cores": 2}
  out.write_text(json.dumps({"command": "x", "runs": {"hff_s0": hff}, "machine": trained_on}))
  done = _resnet_report(tmp_path, out)
  assert done.returncode == 0, done.stderr
  assert "bp_s0, hff_s1 not finished" in done.stderr
  report = json.loads(out.read_text())
  assert report["runs"] == {"hff_s0": {"machine": trained_on, **hff, "from_earlier_report": True}}
  assert report["machine"]["cpu"] != trained_on["cpu"]  # the report names the machine that wrote it
  assert report["complete"] is False and "hff_minus_bp_seed0" not in report
  assert "| hff_s0 | 0 | 92.55% | 92.55 | 93.00% | 510 |" in done.stdout


@pytest.mark.parametrize(
  "settings, extra, message",
  [
    # The config changed since the run was trained.
    (
      {"seed": 0, "model.width": 8, "learning_rate": 0.5},
      [],
      "trained with other settings (learning_rate, model.width)",
    ),
    # The same settings, but this command adds an override the run was not trained with.
    ({"seed": 0}, ["--", "--config.num_epochs=3"], "trained with other settings (num_epochs)"),
    (None, [], "without its settings"),
  ],
)
def test_resnet_report_refuses_runs_of_other_settings(tmp_path, settings, extra, message):
  out = tmp_path / "resnet.json"
  hff = {"config": "fashion_mnist_resnet", "seed": 0, "test_accuracy": 0.9255, "layer_accuracy": [0.9255]}
  if settings is not None:
    hff["settings"] = _settings("fashion_mnist_resnet", **settings)
  before = json.dumps({"command": "x", "runs": {"hff_s0": hff}, "machine": {"cpu": "c"}})
  out.write_text(before)
  done = _resnet_report(tmp_path, out, *extra)
  assert done.returncode == 1 and f"holds hff_s0 {message}" in done.stderr, done.stderr
  assert out.read_text() == before  # nothing reported, nothing lost


def test_resnet_report_reads_settings_as_a_resume_does(tmp_path):
  """A run saved before a key existed compares with that key's default, and the keys a resume may
  change (how the host reads data, how long to train) are not held against it."""
  out = tmp_path / "resnet.json"
  hff = {"config": "fashion_mnist_resnet", "seed": 0, "test_accuracy": 0.9255, "layer_accuracy": [0.9255]}
  hff |= {"validation_accuracy": 0.93, "median_seconds_per_epoch": 510.0}
  hff["settings"] = _settings("fashion_mnist_resnet", seed=0, data_workers=3)
  # Keys at their defaults in this config (learner_blocks is not: the config sets (4, 4)).
  del hff["settings"]["model"]["prototype_init"], hff["settings"]["steps_per_call"]
  out.write_text(json.dumps({"command": "x", "runs": {"hff_s0": hff}, "machine": {"cpu": "c"}}))
  done = _resnet_report(tmp_path, out)
  assert done.returncode == 0, done.stderr
  assert json.loads(out.read_text())["runs"]["hff_s0"]["from_earlier_report"] is True
  # A missing key whose default is not the config's value is held against the run.
  del hff["settings"]["model"]["learner_blocks"]
  out.write_text(json.dumps({"command": "x", "runs": {"hff_s0": hff}, "machine": {"cpu": "c"}}))
  done = _resnet_report(tmp_path, out)
  assert done.returncode == 1 and "trained with other settings (model.learner_blocks)" in done.stderr, (
    done.stderr
  )


def test_resnet_report_refuses_a_finished_workdir_of_other_settings(tmp_path):
  """--report-only over a finished run in --root trained otherwise: refused before it is evaluated."""
  workdir = tmp_path / "runs" / "hff_s0"
  workdir.mkdir(parents=True)
  settings = _settings("fashion_mnist_resnet", seed=0, **{"model.width": 8})
  (workdir / "config.json").write_text(json.dumps(settings))
  (workdir / "metrics.jsonl").write_text(json.dumps({"step": 1, "epoch": settings["num_epochs"]}) + "\n")
  out = tmp_path / "resnet.json"
  done = _resnet_report(tmp_path, out)
  assert (
    done.returncode == 1 and "hff_s0 holds a run trained with other settings (model.width)" in done.stderr
  )
  assert not out.exists()


def test_resnet_report_refuses_a_file_it_did_not_write(tmp_path):
  out = tmp_path / "resnet.json"
  out.write_text("[1, 2]")
  done = _resnet_report(tmp_path, out)
  assert done.returncode != 0 and "is not a report this script wrote" in done.stderr
  assert out.read_text() == "[1, 2]"


def _tiny_runs(num_train: int = 48, num_test: int = 16) -> list[str]:
  """``hffjax train`` overrides for a benchmark script's runs on tiny synthetic 8×8 images, 16 held out."""
  tiny = ["--config.dataset=synthetic", f"--config.synthetic.num_train={num_train}"]
  tiny += [f"--config.synthetic.num_test={num_test}", "--config.synthetic.image_shape=(8,8,1)"]
  tiny += ["--config.validation_split=train[-16:]", "--config.batch_size=16", "--config.eval_batch_size=16"]
  return [*tiny, "--config.warmup_steps=0"]


def test_learner_study_reports_every_run_against_backprop(tmp_path):
  """benchmarks/resnet_learners.py end to end on tiny synthetic runs: one row and one gap per run."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = tmp_path / "learners.json"
  tiny = _tiny_runs()
  argv = [
    sys.executable,
    os.path.join(root, "benchmarks", "resnet_learners.py"),
    "--root",
    str(tmp_path / "runs"),
  ]
  argv += ["--width", "2", "--epochs", "1", "--runs", "bp,hff_groups_3_5", "--out", str(out), "--", *tiny]
  done = subprocess.run(argv, capture_output=True, text=True, cwd=root)
  assert done.returncode == 0, done.stderr[-2000:]
  report = json.loads(out.read_text())
  assert report["complete"] is True and (report["width"], report["epochs"]) == (2, 1)
  runs = report["runs"]
  assert list(runs) == ["bp", "hff_groups_3_5"]
  assert [len(r["layer_accuracy"]) for r in runs.values()] == [1, 2]
  hff, bp = runs["hff_groups_3_5"], runs["bp"]
  assert hff["minus_bp_test"] == pytest.approx(hff["test_accuracy"] - bp["test_accuracy"])
  assert hff["minus_bp_validation"] == pytest.approx(hff["validation_accuracy"] - bp["validation_accuracy"])
  assert f"| hff_groups_3_5 | 2 | {100 * hff['test_accuracy']:.2f}% | " in done.stdout
  assert "minus_bp_test" not in runs["bp"]
  # Each run keeps its whole config: the backprop twin's method, the groups split, the overrides.
  assert runs["bp"]["settings"]["method"] == "bp" and runs["bp"]["settings"]["model"]["width"] == 2
  assert runs["bp"]["settings"]["model"]["learner"] == "stage"  # set explicitly, like hff_stage's
  assert runs["hff_groups_3_5"]["settings"]["model"]["learner_blocks"] == [3, 5]
  refused = subprocess.run(
    argv[:2] + ["--root", str(tmp_path), "--runs", "hff_block"], capture_output=True, text=True
  )
  assert refused.returncode == 2 and "unknown run 'hff_block'" in refused.stderr
  # A split that does not add up to the net's blocks is refused before anything trains.
  refused = subprocess.run(
    argv[:2] + ["--root", str(tmp_path / "none"), "--runs", "bp,hff_groups_3_4"],
    capture_output=True,
    text=True,
  )
  assert refused.returncode == 2 and "hff_groups_3_4: model.learner='groups' needs" in refused.stderr
  assert not (tmp_path / "none").exists()


def test_transfer_study_runs_four_runs_and_names_the_frozen_learners(tmp_path):
  """benchmarks/transfer.py end to end on tiny synthetic runs: the frozen learner alone keeps bp04's parameters."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = tmp_path / "transfer.json"
  tiny = _tiny_runs(num_train=64, num_test=32)
  tiny += ["--config.model.width=2", "--config.model.depth=10", "--config.model.learner_blocks=(2,2)"]
  argv = [sys.executable, os.path.join(root, "benchmarks", "transfer.py"), "--root", str(tmp_path / "runs")]
  argv += ["--epochs", "1", "--out", str(out), "--", *tiny]
  done = subprocess.run(argv, capture_output=True, text=True, cwd=root)
  assert done.returncode == 0, done.stderr[-2000:]
  runs = json.loads(out.read_text())["runs"]
  assert list(runs) == ["bp04", "scratch59", "unfrozen59", "frozen59"]
  assert [r["learners_equal_to_bp04"] for r in runs.values()] == [[0, 1], [], [], [0]]
  assert runs["frozen59"]["settings"]["freeze"] == [0] and runs["bp04"]["settings"]["method"] == "bp"
  assert runs["scratch59"]["settings"]["classes"] == [5, 6, 7, 8, 9]
  assert f"| frozen59 | 5-9 | {100 * runs['frozen59']['test_accuracy']:.2f}% |" in done.stdout
  # A freeze beyond the net's two learners is refused before anything trains.
  argv[argv.index(str(tmp_path / "runs"))] = str(tmp_path / "none")
  refused = subprocess.run(
    [*argv[:4], "--freeze", "(0,2)", *argv[4:]], capture_output=True, text=True, cwd=root
  )
  assert (
    refused.returncode == 2 and "frozen59: freeze names learners [2] but the model has 2" in refused.stderr
  )
  assert not (tmp_path / "none").exists()


def test_accelerator_script_runs_end_to_end_on_tiny_settings(tmp_path):
  """benchmarks/resnet_accelerator.sh, the one call an accelerator gets, on tiny synthetic settings:
  the speed bench with its ResNet rows, the three trainings and their table."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  tiny = _tiny_runs()
  tiny += ["--config.model.width=2", "--config.num_epochs=1"]
  env = {**os.environ, "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "BENCH_ARGS": "--quick"}
  env |= {"EXTRA": " ".join(tiny), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
  script = os.path.join(root, "benchmarks", "resnet_accelerator.sh")
  done = subprocess.run(["bash", script], capture_output=True, text=True, cwd=root, env=env)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  speed = json.loads((tmp_path / "out" / "speed.json").read_text())
  learners = [(r["method"], r["learner"]) for r in speed["resnet"]["training"]]
  assert learners == [("hff", "block"), ("hff", "stage"), ("hff", "groups"), ("bp", "-")]
  for name in ("hff_s0", "hff_s1", "bp_s0"):
    last = json.loads((tmp_path / "out" / f"resnet_{name}.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 1 and f"| {name} | 1 | {100 * last['test_accuracy']:.2f}% |" in done.stdout


def test_resnet_step_time_times_each_setting_side_by_side(tmp_path):
  """benchmarks/resnet_step_time.py at tiny widths: every setting timed, its HFF ÷ BP ratios from its medians."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = tmp_path / "step.json"
  argv = [sys.executable, os.path.join(root, "benchmarks", "resnet_step_time.py")]
  argv += ["--width", "4", "--steps", "1", "--rounds", "2", "--out", str(out)]
  done = subprocess.run(argv, capture_output=True, text=True, cwd=root)
  assert done.returncode == 0, done.stderr[-2000:]
  report = json.loads(out.read_text())
  names = ["hff_w32_stage", "hff_w16_groups_4_4", "bp_w32", "bp_w16"]
  assert list(report["step_seconds"]) == names and all(len(s) == 2 for s in report["step_seconds"].values())
  assert [report["settings"][n]["width"] for n in names] == [4, 2, 4, 2]
  assert [report["settings"][n]["method"] for n in names] == ["hff", "hff", "bp", "bp"]
  assert [report["settings"][n]["learner"] for n in names[:2]] == ["stage", "groups"]
  assert report["batch_size"] == 128 and report["steps_per_epoch"] == 55_000 // 128
  medians = report["median_step_seconds"]
  assert medians["hff_w32_stage"] == pytest.approx(sum(report["step_seconds"]["hff_w32_stage"]) / 2)
  assert report["hff_over_bp_step"]["w32"] == pytest.approx(medians["hff_w32_stage"] / medians["bp_w32"])
  assert report["hff_over_bp_step"]["w16"] == pytest.approx(medians["hff_w16_groups_4_4"] / medians["bp_w16"])
  assert report["command"].endswith(f"--out {out}") and report["machine"]["backend"] == "cpu"


@pytest.mark.parametrize(
  "script,flags,message",
  [
    ("resnet_step_time.py", ["--rounds", "0"], "argument --rounds: must be an integer >= 1, got 0"),
    ("resnet_step_time.py", ["--out", "{blocked}/step.json"], "--out {blocked}/step.json cannot be written"),
    ("steps_per_call.py", ["--ks", "1", "0"], "argument --ks: must be an integer >= 1, got 0"),
    ("steps_per_call.py", ["--out", "{blocked}/k.json"], "--out {blocked}/k.json cannot be written"),
    ("readout_grid_step_time.py", ["--steps", "-2"], "argument --steps: must be an integer >= 1, got -2"),
  ],
)
def test_timing_scripts_refuse_bad_arguments_before_timing(tmp_path, script, flags, message):
  """A count below one or a report path under a file: a usage error at once, not a traceback after the timing."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  blocked = tmp_path / "a_file"
  blocked.write_text("")
  flags = [f.format(blocked=blocked) for f in flags]
  done = subprocess.run(
    [sys.executable, os.path.join(root, "benchmarks", script), *flags],
    capture_output=True,
    text=True,
    cwd=root,
  )
  err = done.stderr.strip().splitlines()
  assert done.returncode == 2 and message.format(blocked=blocked) in err[-1], done.stderr[-2000:]
  assert "Traceback" not in done.stderr and "median step" not in done.stdout
