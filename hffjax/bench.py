"""Side-by-side benchmark: HFF vs Forward-Forward vs backprop on the same blocks.

Everything runs in one process on the same machine, data and architecture,
and the report leads with *ratios* (FF/HFF inference time, HFF/BP step time),
which survive the drift of absolute times on a shared machine.

  hffjax bench --out benchmarks/results/<machine>.json --markdown benchmarks/README.md
  hffjax bench --out /tmp/quick.json --quick        # synthetic data, seconds
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hffjax import config as config_lib
from hffjax import data as data_lib
from hffjax import sharding, train
from hffjax.baselines import build_ff_model
from hffjax.errors import HFFError
from hffjax.io import storage, writers
from hffjax.models import build_model
from hffjax.models.resnet import stage_sizes

# The shipped configs: a checkout's configs/, or the installed package hffjax.configs outside one.
DEFAULT_CONFIGS_DIR = config_lib.config_dirs()[0]
METHOD_CONFIG_SUFFIX = {"hff": "", "bp": "_bp", "ff": "_ff"}
TRAINING_RUNS = (("mlp", "hff"), ("mlp", "bp"), ("mlp", "ff"), ("cnn", "hff"), ("cnn", "bp"))


def machine_info() -> dict:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  device = jax.devices()[0]
  return {
    "cpu": cpu,
    "cpu_cores": os.cpu_count(),
    "cpu_cores_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    "backend": jax.default_backend(),
    "device_kind": device.device_kind,
    "device_count": jax.device_count(),
    "jax_version": jax.__version__,
    "python": platform.python_version(),
  }


def machine_name(info: dict) -> str:
  """A file-name-safe label: ``cpu-amd-epyc-2c`` or the accelerator's kind."""
  if info["backend"] == "cpu":
    label = f"cpu-{info['cpu']}-{info['cpu_cores']}c"
  else:
    label = f"{info['backend']}-{info['device_kind']}"
  return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _temp_bytes(compiled) -> int | None:
  try:
    return int(compiled.memory_analysis().temp_size_in_bytes)
  except Exception:  # Not every backend reports memory.
    return None


def bench_training(config, dataset: data_lib.Dataset, *, desc: str = "", steps: int = 20) -> dict:
  """Trains ``config`` with the library's own loop (``train_and_evaluate``), then times its pieces.

  Epoch times come from the loop's records; the median step time from
  :func:`median_step_seconds` (the same compiled step, synchronised each
  step); inference from passes over the whole test set with the trained state.
  """
  with tempfile.TemporaryDirectory(prefix="hffjax-bench-") as workdir:
    _, exp, state = train.fit(config, workdir, dataset=dataset, overwrite=True)
    records = writers.read(os.path.join(workdir, writers.FILENAME))
  if not records or not all(np.isfinite(r["train_loss"]) for r in records):
    raise HFFError(f"{desc}: training produced no finite records")
  ds = exp.dataset
  eval_fn = exp.eval_fn()
  xe, ye, me = next(data_lib.eval_batches(ds.test_images, ds.test_labels, exp.eval_batch_size))
  eval_batch = sharding.global_batch(exp.mesh, xe, ye, me)
  eval_compiled = eval_fn.lower(state.params, state.batch_stats, *eval_batch).compile()
  result = train.evaluate(eval_compiled, state, ds.test_images, ds.test_labels, exp.mesh, exp.eval_batch_size)
  inference_seconds = _median_seconds(
    lambda: train.evaluate(
      eval_compiled, state, ds.test_images, ds.test_labels, exp.mesh, exp.eval_batch_size
    ),
    repeats=3,
  )
  step_seconds, step_temp_bytes = _step_timing(exp, jax.tree.map(jnp.copy, state), steps)
  epoch_times = [r["epoch_seconds"] for r in records if "epoch_seconds" in r] or [
    sum(r["interval_seconds"] for r in records) / records[-1]["step"] * exp.steps_per_epoch
  ]
  n_train = exp.steps_per_epoch * config.batch_size
  curve, elapsed = [], 0.0
  for r in records:  # interval_seconds counts training (compilation included), not evaluation
    elapsed += r["interval_seconds"]
    point = {"train_seconds": elapsed, "epoch": r["epoch"], "test_accuracy": r["test_accuracy"]}
    if "readout_accuracy" in r:
      point["readout_accuracy"] = r["readout_accuracy"]
    curve.append(point)
  return {
    "arch": config.model.kind,
    "method": config.method,
    "epochs": config.num_epochs,
    "batch_size": config.batch_size,
    "test_accuracy": result["test_accuracy"],
    "ensemble_accuracy": result["ensemble_accuracy"],
    "layer_accuracy": result["layer_accuracy"],
    "readout_accuracy": result.get("readout_accuracy"),
    "validation_accuracy": records[-1].get("validation_accuracy"),
    "median_step_seconds": step_seconds,
    "epoch_seconds": statistics.mean(epoch_times),
    "train_examples_per_second": n_train / statistics.mean(epoch_times),
    "inference_seconds": inference_seconds,
    "inference_examples": len(ds.test_images),
    "inference_examples_per_second": len(ds.test_images) / inference_seconds,
    "train_step_temp_bytes": step_temp_bytes,
    "inference_temp_bytes": _temp_bytes(eval_compiled),
    "curve": curve,
  }


def accuracy_at(curve: list[dict], seconds: float, key: str = "test_accuracy") -> float | None:
  """Test accuracy of the last evaluation reached within ``seconds`` of training (None: none was)."""
  reached = [p[key] for p in curve if p["train_seconds"] <= seconds and p.get(key) is not None]
  return reached[-1] if reached else None


def accuracy_vs_seconds(runs: list[dict], fractions=(0.125, 0.25, 0.5, 1.0)) -> list[dict]:
  """Each method's test accuracy after the same training seconds, per architecture.

  The budgets are fractions of the shortest total training time among the
  architecture's methods, so every method has trained at least that long.
  Forward-Forward's one-pass neutral-label read-out is its own column
  (``ff_readout``).
  """
  rows = []
  for arch in dict.fromkeys(r["arch"] for r in runs):
    mine = [r for r in runs if r["arch"] == arch]
    if len(mine) < 2:
      continue
    shortest = min(r["curve"][-1]["train_seconds"] for r in mine)
    for fraction in fractions:
      seconds = fraction * shortest
      row = {"arch": arch, "train_seconds": seconds}
      for r in mine:
        row[r["method"]] = accuracy_at(r["curve"], seconds)
        if r["method"] == "ff":
          row["ff_readout"] = accuracy_at(r["curve"], seconds, "readout_accuracy")
      if any(row[m] is not None for m in row if m not in ("arch", "train_seconds")):
        rows.append(row)  # (a budget shorter than every first epoch says nothing)
  return rows


def _inference_fn(model: nnx.Module, batches: list[np.ndarray]):
  """A function that predicts every batch with ``model``'s own rule (jitted once)."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def infer(state, images):
    m = nnx.merge(graphdef, state)
    return jnp.argmax(m.predict_scores(m(images, train=False)), -1)

  return lambda: [infer(state, b) for b in batches]


def bench_class_scaling(
  model_config, *, classes, image_shape, num_examples: int, batch_size: int, seed: int = 0
) -> list[dict]:
  """HFF (one pass) vs FF (one pass per class) inference time on the same blocks."""
  rows = []
  for num_classes in classes:
    ds = data_lib.make_synthetic(
      num_train=1, num_test=num_examples, image_shape=image_shape, num_classes=num_classes, seed=seed
    )
    batches = [ds.test_images[i : i + batch_size] for i in range(0, num_examples, batch_size)]
    row = {
      "arch": model_config.kind,
      "num_classes": num_classes,
      "image_shape": list(image_shape),
      "examples": num_examples,
      "batch_size": batch_size,
    }
    for method, build in (("hff", build_model), ("ff", build_ff_model)):
      model = build(model_config, input_shape=image_shape, num_classes=num_classes, seed=seed)
      run_all = _inference_fn(model, batches)
      jax.block_until_ready(run_all())  # compile
      first = _median_seconds(run_all, repeats=1)
      row[f"{method}_seconds"] = first if first > 10 else _median_seconds(run_all, repeats=3)
      row[f"{method}_images_per_second"] = num_examples / row[f"{method}_seconds"]
    row["ff_over_hff"] = row["ff_seconds"] / row["hff_seconds"]
    rows.append(row)
  return rows


def _step_timing(exp, state, steps: int, warmup: int = 3) -> tuple[float, int | None]:
  """Median time of one synchronised training step of ``exp`` on a fixed batch, and its temp bytes.

  ``state`` is donated to the step.
  """
  ds, batch_size = exp.dataset, exp.config.batch_size
  batch = sharding.global_batch(exp.mesh, ds.train_images[:batch_size], ds.train_labels[:batch_size])
  step_fn = exp.train_fn().lower(state, *batch).compile()
  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    state, metrics = step_fn(state, *batch)
    jax.block_until_ready(metrics)
    if i >= warmup:
      times.append(time.perf_counter() - start)
  return statistics.median(times), _temp_bytes(step_fn)


def median_step_seconds(config, dataset: data_lib.Dataset, steps: int, warmup: int = 3) -> float:
  """Median time of one synchronised training step on a fixed batch, after ``warmup`` steps."""
  exp = train.setup(config, dataset)
  return _step_timing(exp, exp.initial_state, steps, warmup)[0]


def bench_speed(
  *,
  configs_dir: str = DEFAULT_CONFIGS_DIR,
  batch_size: int = 512,
  image_shape=(32, 32, 3),
  classes=(10, 100),
  dtypes=("float32", "bfloat16"),
  steps: int = 20,
  seed: int = 0,
  small: bool = False,
) -> list[dict]:
  """Step and inference times of HFF, BP and FF on CIFAR-shaped synthetic data (no accuracy)."""
  rows = []
  for arch in ("mlp", "cnn"):
    for dtype in dtypes:
      for num_classes in classes:
        config = config_lib.load_config(os.path.join(configs_dir, f"fashion_mnist_{arch}.py"))
        config.dataset, config.seed, config.batch_size, config.num_epochs = "synthetic", seed, batch_size, 1
        config.model.dtype = dtype
        if small:
          config.model.widths, config.model.channels = (64, 64, 64), (8, 16, 16)
        ds = data_lib.make_synthetic(
          num_train=batch_size,
          num_test=batch_size,
          image_shape=tuple(image_shape),
          num_classes=num_classes,
          seed=seed,
        )
        row = {
          "arch": arch,
          "dtype": dtype,
          "num_classes": num_classes,
          "batch_size": batch_size,
          "image_shape": list(image_shape),
        }
        config.ff_readout = False  # time Forward-Forward itself, not the read-out probe trained beside it
        for method in ("hff", "bp", "ff"):
          config.method = method
          row[f"{method}_step_seconds"] = median_step_seconds(config, ds, steps)
        for method, build in (("hff", build_model), ("ff", build_ff_model)):
          model = build(config.model, input_shape=tuple(image_shape), num_classes=num_classes, seed=seed)
          run_all = _inference_fn(model, [ds.test_images])
          jax.block_until_ready(run_all())  # compile
          row[f"{method}_inference_seconds"] = _median_seconds(run_all, repeats=5)
        row["hff_over_bp_step_time"] = row["hff_step_seconds"] / row["bp_step_seconds"]
        row["ff_over_hff_step_time"] = row["ff_step_seconds"] / row["hff_step_seconds"]
        row["ff_over_hff_inference_time"] = row["ff_inference_seconds"] / row["hff_inference_seconds"]
        rows.append(row)
        print(
          f"{arch} {dtype} C={num_classes}: HFF/BP step {row['hff_over_bp_step_time']:.2f}, "
          f"FF/HFF inference {row['ff_over_hff_inference_time']:.1f}x",
          file=sys.stderr,
        )
  return rows


def matmul_peak_flops(dtype: str, n: int | None = None, repeats: int = 5) -> float:
  """The FLOP/s of one large square matmul on the default device: the peak MFU is measured against."""
  n = n or (8192 if jax.default_backend() != "cpu" else 1024)
  a = jnp.ones((n, n), jnp.dtype(dtype))
  matmul = jax.jit(lambda a, b: a @ b).lower(a, a).compile()
  jax.block_until_ready(matmul(a, a))
  return 2 * n**3 / _median_seconds(lambda: matmul(a, a), repeats)


def two_learners(depth: int) -> tuple[int, int]:
  """``model.learner_blocks`` for a ResNet of ``depth`` as two learners: stages 1-2, then stages 3-4."""
  sizes = stage_sizes(depth)
  return sum(sizes[:2]), sum(sizes[2:])


def resnet_config(
  resolution: int,
  *,
  method: str,
  learner: str,
  dtype: str,
  batch_size: int,
  width: int,
  depth: int,
  learner_blocks: tuple[int, ...] = (),
):
  """A ResNet config for synthetic ``resolution``² RGB images: CIFAR stem below 128 pixels, ImageNet stem above;
  ``learner_blocks`` for ``learner="groups"``."""
  c = config_lib.base_config()
  c.dataset, c.method, c.batch_size, c.num_epochs = "synthetic", method, batch_size, 1
  c.model.kind, c.model.depth, c.model.width, c.model.learner = "resnet", depth, width, learner
  c.model.learner_blocks = tuple(learner_blocks)
  c.model.stem = "imagenet" if resolution >= 128 else "cifar"
  c.model.readout, c.model.interblock_norm, c.model.dtype = "grid", "rms", dtype
  return c


def _compiled_flops(compiled) -> float | None:
  """Floating-point operations per device of one run of ``compiled``; ``None`` where the backend gives none."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # Not every backend implements cost analysis.
    return None
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per device program.
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None and flops > 0 else None


def _call_timing(exp, steps_per_call: int, calls: int, warmup: int = 2) -> dict:
  """Seconds per step when ``steps_per_call`` steps run per synchronised call, the step's FLOPs and temp memory."""
  ds, b, k = exp.dataset, exp.config.batch_size, steps_per_call
  images, labels = ds.train_images[:b], ds.train_labels[:b]
  if exp.stacked:
    images, labels = np.stack([images] * k), np.stack([labels] * k)
  batch = sharding.to_global(exp.mesh, images, labels, batch_axis=int(exp.stacked))
  call = exp.train_fn(k).lower(exp.initial_state, *batch).compile()
  # FLOPs of one step, from the compiled one-step program: a compiled program's count is per device,
  # like the matmul peak it is divided by (the lowered program counts the global batch, and backends
  # behind the PJRT C API, CUDA and TPU among them, report no cost for it at all).
  one_step = tuple(x[:1] for x in batch) if exp.stacked else batch
  single = call if k == 1 else exp.train_fn(1).lower(exp.initial_state, *one_step).compile()
  flops = _compiled_flops(single)
  state, times = jax.tree.map(jnp.copy, exp.initial_state), []
  for i in range(warmup + calls):
    start = time.perf_counter()
    state, metrics = call(state, *batch)
    jax.block_until_ready(metrics)
    if i >= warmup:
      times.append(time.perf_counter() - start)
  return {
    "step_seconds": statistics.median(times) / k,
    "flops_per_step": flops,
    "temp_bytes": _temp_bytes(call),
  }


def bench_resnet(
  *,
  resolutions=(32, 224),
  batch_size: int = 512,
  dtype: str = "bfloat16",
  steps_per_call: int = 8,
  calls: int = 5,
  width: int = 64,
  depth: int = 18,
  classes=(10, 100, 1000),
  scaling_examples: int = 512,
  scaling_resolutions=None,
  seed: int = 0,
) -> dict:
  """ResNet training speed (HFF with block, stage and two-group learners, backprop) and FF/HFF inference vs classes.

  The inference table runs at ``scaling_resolutions`` (default: every one of
  ``resolutions``), on ``scaling_examples`` images per class count.

  Each row times ``steps_per_call`` fused steps per synchronised call (one
  dispatch, one sync), as the training loop runs them, and reports
  images/s, the compiled step's FLOPs, model FLOPs utilisation against
  :func:`matmul_peak_flops` measured here, and the step's temp memory.
  """
  peak = matmul_peak_flops(dtype)
  rows = []
  for res in resolutions:
    num_classes = 1000 if res >= 128 else 10
    ds = data_lib.make_synthetic(
      num_train=batch_size, num_test=8, image_shape=(res, res, 3), num_classes=num_classes, seed=seed
    )
    timed = {}
    for method, learner in (("hff", "block"), ("hff", "stage"), ("hff", "groups"), ("bp", "stage")):
      groups = two_learners(depth) if learner == "groups" else ()
      c = resnet_config(
        res,
        method=method,
        learner=learner,
        dtype=dtype,
        batch_size=batch_size,
        width=width,
        depth=depth,
        learner_blocks=groups,
      )
      c.steps_per_call, c.seed = steps_per_call, seed
      t = _call_timing(train.setup(c, dataset=ds), steps_per_call, calls)
      row = {
        "arch": f"resnet{depth}",
        "width": width,
        "resolution": res,
        "num_classes": num_classes,
        "method": method,
        "learner": learner if method == "hff" else "-",
        "learner_blocks": list(groups),
        "dtype": dtype,
        "batch_size": batch_size,
        "steps_per_call": steps_per_call,
        **t,
        "images_per_second": batch_size / t["step_seconds"],
        "mfu": t["flops_per_step"] / t["step_seconds"] / peak if t["flops_per_step"] else None,
      }
      timed[method, learner] = row
      rows.append(row)
    bp = timed["bp", "stage"]
    for learner in ("block", "stage", "groups"):
      hff = timed["hff", learner]
      hff["hff_over_bp_step_time"] = hff["step_seconds"] / bp["step_seconds"]
      hff["hff_over_bp_flops"] = (
        hff["flops_per_step"] / bp["flops_per_step"] if bp["flops_per_step"] else None
      )
      print(
        f"resnet{depth} {res}px {dtype} HFF ({_learner(hff)}) / BP step {hff['hff_over_bp_step_time']:.2f}, "
        f"{hff['images_per_second']:.0f} img/s, MFU {hff['mfu'] or 0:.1%}",
        file=sys.stderr,
      )
  scaling = []
  for res in resolutions if scaling_resolutions is None else scaling_resolutions:
    scaling_config = resnet_config(
      res, method="hff", learner="block", dtype=dtype, batch_size=batch_size, width=width, depth=depth
    ).model
    for row in bench_class_scaling(
      scaling_config,
      classes=classes,
      image_shape=(res, res, 3),
      num_examples=scaling_examples,
      batch_size=min(batch_size, scaling_examples),
      seed=seed,
    ):
      scaling.append({**row, "arch": f"resnet{depth}", "width": width})
  return {"matmul_peak_flops": peak, "training": rows, "class_scaling": scaling}


def _ratio(a: dict | None, b: dict | None, key: str) -> float | None:
  return a[key] / b[key] if a and b else None


def summarize(runs: list[dict]) -> dict:
  """The ratios the benchmark exists to report."""
  by = {(r["arch"], r["method"]): r for r in runs}
  g = by.get
  out = {}
  for arch in ("mlp", "cnn"):
    out[f"{arch}_hff_over_bp_step_time"] = _ratio(g((arch, "hff")), g((arch, "bp")), "median_step_seconds")
    out[f"{arch}_hff_over_bp_train_temp_bytes"] = (
      _ratio(g((arch, "hff")), g((arch, "bp")), "train_step_temp_bytes")
      if g((arch, "hff")) and g((arch, "hff"))["train_step_temp_bytes"]
      else None
    )
    if g((arch, "hff")) and g((arch, "bp")):
      out[f"{arch}_hff_minus_bp_accuracy"] = (
        g((arch, "hff"))["test_accuracy"] - g((arch, "bp"))["test_accuracy"]
      )
    out[f"{arch}_ff_over_hff_step_time"] = _ratio(g((arch, "ff")), g((arch, "hff")), "median_step_seconds")
    out[f"{arch}_ff_over_hff_inference_time"] = _ratio(g((arch, "ff")), g((arch, "hff")), "inference_seconds")
    if g((arch, "hff")) and g((arch, "ff")):
      out[f"{arch}_hff_minus_ff_accuracy"] = (
        g((arch, "hff"))["test_accuracy"] - g((arch, "ff"))["test_accuracy"]
      )
  return {k: v for k, v in out.items() if v is not None}


def run_bench(
  *,
  quick: bool,
  configs_dir: str = DEFAULT_CONFIGS_DIR,
  mlp_epochs: int | None = None,
  cnn_epochs: int | None = None,
  scaling_classes=(10, 100, 1000),
  scaling_examples: int = 128,
  seed: int = 0,
) -> dict:
  """Runs every measurement; returns the JSON-ready report."""
  info = machine_info()
  runs = []
  for arch, method in TRAINING_RUNS:
    # Each method's own shipped config (the baselines' are tuned for them): fashion_mnist_mlp_ff.py, ...
    path = os.path.join(configs_dir, f"fashion_mnist_{arch}{METHOD_CONFIG_SUFFIX[method]}.py")
    config = config_lib.load_config(path)
    config.method = method
    config.seed = seed
    if quick:
      config.dataset, config.validation_split = "synthetic", "train[-64:]"
      config.synthetic.num_train, config.synthetic.num_test = 512, 200
      config.synthetic.image_shape = (16, 16, 1)
      config.batch_size, config.num_epochs = 64, 1
      config.model.widths = (64, 64, 64)
      config.model.channels = (8, 16, 16)
    else:
      epochs = mlp_epochs if arch == "mlp" else cnn_epochs
      if epochs:
        config.num_epochs = epochs
    dataset = data_lib.load_dataset(config)
    runs.append(bench_training(config, dataset, desc=f"{arch}/{method}", steps=3 if quick else 20))
    r = runs[-1]
    print(
      f"{arch}/{method}: test {100 * r['test_accuracy']:.2f}%  step {1000 * r['median_step_seconds']:.1f} ms  "
      f"inference {r['inference_seconds']:.3f} s",
      file=sys.stderr,
    )

  scaling = []
  for arch in ("mlp", "cnn"):
    model_config = config_lib.load_config(os.path.join(configs_dir, f"fashion_mnist_{arch}.py")).model
    image_shape = (32, 32, 3)
    classes = tuple(scaling_classes)
    if quick:
      image_shape, classes = (16, 16, 3), (10, 100)
      model_config.widths, model_config.channels = (64, 64, 64), (8, 16, 16)
    scaling += bench_class_scaling(
      model_config,
      classes=classes,
      image_shape=image_shape,
      num_examples=scaling_examples,
      batch_size=min(scaling_examples, 128),
      seed=seed,
    )
    for row in scaling[-len(classes) :]:
      print(f"{arch} C={row['num_classes']}: FF/HFF inference {row['ff_over_hff']:.1f}x", file=sys.stderr)

  return {
    "kind": "training",
    "machine": info,
    "machine_name": machine_name(info),
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "command": " ".join(["hffjax", *sys.argv[1:]]) if sys.argv and "bench" in sys.argv else "run_bench()",
    "quick": quick,
    "seed": seed,
    "dataset": "synthetic" if quick else "fashion_mnist",
    "training": runs,
    "ratios": summarize(runs),
    "accuracy_vs_seconds": accuracy_vs_seconds(runs),
    "class_scaling": scaling,
  }


def _pct(x):
  return f"{100 * x:.2f}%"


def _header(report: dict) -> list[str]:
  m = report["machine"]
  kind = "speed" if report.get("kind") == "speed" else "training and inference"
  return [
    f"### {report['machine_name']}: {kind} ({report['date'][:10]})",
    "",
    f"Machine: {m['cpu']}, {m['cpu_cores']} cores ({m.get('cpu_cores_used', m['cpu_cores'])} used); JAX {m['jax_version']} on {m['backend']} "
    f"({m['device_count']} × {m['device_kind']}). Data: {report['dataset']}. Seed {report['seed']}. "
    f"Command: `{report['command']}`.",
    "",
  ]


def speed_markdown(report: dict) -> str:
  lines = _header(report) + [
    "| arch | dtype | classes | batch | HFF step | BP step | FF step | HFF/BP step | FF/HFF step "
    "| HFF inference | FF inference | FF/HFF inference |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in report["speed"]:
    lines.append(
      f"| {r['arch']} | {r['dtype']} | {r['num_classes']} | {r['batch_size']} "
      f"| {1000 * r['hff_step_seconds']:.2f} ms | {1000 * r['bp_step_seconds']:.2f} ms "
      f"| {1000 * r['ff_step_seconds']:.2f} ms | {r['hff_over_bp_step_time']:.2f} | {r['ff_over_hff_step_time']:.2f} "
      f"| {1000 * r['hff_inference_seconds']:.2f} ms | {1000 * r['ff_inference_seconds']:.2f} ms "
      f"| {r['ff_over_hff_inference_time']:.1f}× |"
    )
  if report.get("resnet"):
    lines += resnet_markdown(report["resnet"])
  return "\n".join(lines) + "\n"


def _learner(row: dict) -> str:
  """A training row's learner split as the table shows it, e.g. ``groups (4, 4)``."""
  blocks = row.get("learner_blocks")
  return f"{row['learner']} ({', '.join(map(str, blocks))})" if blocks else row["learner"]


def resnet_markdown(section: dict) -> list[str]:
  lines = [
    "",
    f"ResNet training speed (synthetic, {section['training'][0]['steps_per_call']} steps per synchronised "
    f"call; MFU against a measured matmul peak of {section['matmul_peak_flops'] / 1e12:.1f} TFLOP/s):",
    "",
    "| net | pixels | classes | method | learner | dtype | batch | step | images/s | GFLOP/step | MFU "
    "| HFF/BP step | HFF/BP FLOPs | temp memory |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in section["training"]:
    ratio = f"{r['hff_over_bp_step_time']:.2f}" if "hff_over_bp_step_time" in r else ""
    fratio = f"{r['hff_over_bp_flops']:.2f}" if r.get("hff_over_bp_flops") else ""
    gflop = f"{r['flops_per_step'] / 1e9:.1f}" if r["flops_per_step"] else "n/a"
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] else "n/a"
    mem = f"{r['temp_bytes'] / 2**20:.0f} MiB" if r["temp_bytes"] is not None else "n/a"
    lines.append(
      f"| {r['arch']} w{r['width']} | {r['resolution']} | {r['num_classes']} | {r['method']} | {_learner(r)} "
      f"| {r['dtype']} | {r['batch_size']} | {1000 * r['step_seconds']:.2f} ms | {r['images_per_second']:.0f} "
      f"| {gflop} | {mfu} | {ratio} | {fratio} | {mem} |"
    )
  lines += [
    "",
    "| net | pixels | classes | examples | HFF inference | HFF images/s | FF inference | FF images/s | FF/HFF |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in section["class_scaling"]:
    lines.append(
      f"| {r['arch']} w{r['width']} | {r['image_shape'][0]} | {r['num_classes']} | {r['examples']} "
      f"| {1000 * r['hff_seconds']:.1f} ms | {r['examples'] / r['hff_seconds']:.0f} "
      f"| {1000 * r['ff_seconds']:.1f} ms | {r['examples'] / r['ff_seconds']:.0f} | {r['ff_over_hff']:.1f}× |"
    )
  return lines


def to_markdown(report: dict) -> str:
  if report.get("kind") == "speed":
    return speed_markdown(report)
  lines = _header(report) + [
    "| arch | method | epochs | batch | test acc (last) | ensemble | per block | median step | s/epoch "
    "| inference, test set | inference ex/s | step temp memory |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in report["training"]:
    mem = f"{r['train_step_temp_bytes'] / 2**20:.1f} MiB" if r["train_step_temp_bytes"] is not None else "n/a"
    blocks = " / ".join(f"{100 * a:.1f}" for a in r["layer_accuracy"])
    lines.append(
      f"| {r['arch']} | {r['method']} | {r['epochs']} | {r['batch_size']} | {_pct(r['test_accuracy'])} "
      f"| {_pct(r['ensemble_accuracy'])} | {blocks} | {1000 * r['median_step_seconds']:.1f} ms "
      f"| {r['epoch_seconds']:.1f} | {r['inference_seconds']:.3f} s | {r['inference_examples_per_second']:.0f} "
      f"| {mem} |"
    )
  lines += ["", "| ratio | value |", "|---|---|"]
  for key, value in report["ratios"].items():
    shown = f"{100 * value:+.2f} points" if key.endswith("accuracy") else f"{value:.2f}"
    lines.append(f"| {key} | {shown} |")
  lines += accuracy_vs_seconds_markdown(report.get("accuracy_vs_seconds", []))
  lines += [
    "",
    "Inference time vs number of classes (synthetic, untrained, same blocks; FF runs one pass per class):",
    "",
    "| arch | classes | input | examples | HFF | FF | FF/HFF |",
    "|---|---|---|---|---|---|---|",
  ]
  for r in report["class_scaling"]:
    shape = "×".join(str(s) for s in r["image_shape"])
    lines.append(
      f"| {r['arch']} | {r['num_classes']} | {shape} | {r['examples']} | {r['hff_seconds'] * 1000:.1f} ms "
      f"| {r['ff_seconds'] * 1000:.1f} ms | {r['ff_over_hff']:.1f}× |"
    )
  return "\n".join(lines) + "\n"


def accuracy_vs_seconds_markdown(rows: list[dict]) -> list[str]:
  if not rows:
    return []
  columns = [m for m in ("hff", "bp", "ff", "ff_readout") if any(m in r for r in rows)]
  names = {"hff": "HFF", "bp": "BP", "ff": "FF (goodness, C passes)", "ff_readout": "FF (read-out, 1 pass)"}
  lines = [
    "",
    "Test accuracy after the same training seconds (the last end-of-epoch evaluation within the budget; "
    "training time only, compilation included; — = no epoch finished yet):",
    "",
    "| arch | training seconds | " + " | ".join(names[c] for c in columns) + " |",
    "|---|---|" + "---|" * len(columns),
  ]
  for r in rows:
    cells = [_pct(r[c]) if r.get(c) is not None else "—" for c in columns]
    # Whole seconds, but two digits for the short budgets of a --quick run (not all "0").
    seconds = f"{r['train_seconds']:.0f}" if r["train_seconds"] >= 10 else f"{r['train_seconds']:.2g}"
    lines.append(f"| {r['arch']} | {seconds} | " + " | ".join(cells) + " |")
  return lines


BEGIN, END = "<!-- bench:{name}:begin -->", "<!-- bench:{name}:end -->"


def update_markdown(path: str, report: dict) -> None:
  """Replaces (or appends) this machine's section of a Markdown file."""
  name = report["machine_name"] + ("-speed" if report.get("kind") == "speed" else "")
  name += "-quick" if report["quick"] else ""
  begin, end = BEGIN.format(name=name), END.format(name=name)
  section = f"{begin}\n{to_markdown(report)}{end}\n"
  text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
  if begin in text and end in text:
    text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1 :]
  else:
    text = text.rstrip("\n") + "\n\n" + section
  with open(path, "w") as f:
    f.write(text)


def resnet_defaults(quick: bool, batch_size: int | None = None) -> dict:
  """The ResNet section's settings: ResNet-18 at 32 and 224 pixels, bf16, 8 steps per call on accelerators."""
  if quick:
    return dict(
      resolutions=(16,), batch_size=8, dtype="float32", steps_per_call=2, calls=2, width=4, depth=10,
      classes=(10, 100), scaling_examples=16,
    )  # fmt: skip
  if jax.default_backend() == "cpu":  # a CPU is here to check the numbers' shape, not to race
    return dict(
      batch_size=batch_size or 16,
      dtype="float32",
      steps_per_call=1,
      calls=3,
      classes=(10, 100),
      scaling_examples=32,
      scaling_resolutions=(32,),
    )
  return dict(batch_size=batch_size or 512)


def run_speed_bench(*, quick: bool = False, resnet: bool = True, **kwargs) -> dict:
  """The speed-only report (``hffjax bench --speed``): what an accelerator run measures."""
  info = machine_info()
  resnet_kwargs = resnet_defaults(quick, kwargs.get("batch_size"))
  scaling_examples = kwargs.pop("scaling_examples", None)  # the ResNet inference table's; the speed
  if scaling_examples:  # table times whole batches
    resnet_kwargs["scaling_examples"] = scaling_examples
  if quick:
    kwargs = {
      "batch_size": 64,
      "image_shape": (16, 16, 3),
      "steps": 3,
      "small": True,
      "dtypes": ("float32",),
      **kwargs,
    }
  return {
    "kind": "speed",
    "machine": info,
    "machine_name": machine_name(info),
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "command": " ".join(["hffjax", *sys.argv[1:]])
    if sys.argv and "bench" in sys.argv
    else "run_speed_bench()",
    "quick": quick,
    "seed": kwargs.get("seed", 0),
    "dataset": "synthetic",
    "speed": bench_speed(**kwargs),
    "resnet": bench_resnet(seed=kwargs.get("seed", 0), **resnet_kwargs) if resnet else None,
  }


def check_writable(path: str, what: str) -> None:
  """Refuses, before any work, a report path that could not be written (its folder is made)."""
  existed = os.path.exists(path)
  try:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a"):
      pass
  except OSError as e:
    raise HFFError(
      f"{what} {path} cannot be written ({storage.os_error_cause(e)}); choose another path"
    ) from None
  if not existed:
    os.remove(path)


def main(out: str, *, quick: bool, markdown: str | None = None, speed: bool = False, **kwargs) -> dict:
  check_writable(out, "--out")
  if markdown:
    check_writable(markdown, "--markdown")
  report = run_speed_bench(quick=quick, **kwargs) if speed else run_bench(quick=quick, **kwargs)
  try:
    with open(out, "w") as f:
      json.dump(report, f, indent=2)
    if markdown:
      update_markdown(markdown, report)
  except OSError as e:
    print(json.dumps(report))  # the report is not lost
    where = e.filename if isinstance(e.filename, str) and e.filename else out
    raise HFFError(
      f"{where} cannot be written ({storage.os_error_cause(e)}); the report is printed above"
    ) from None
  print(to_markdown(report))
  return report
