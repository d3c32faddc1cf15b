"""Figures of a trained run, for ``hffjax plot`` and the quick-start notebook.

Built on ``matplotlib.figure.Figure`` (no pyplot), so they render headless.
"""

from __future__ import annotations

import os
import time

import jax
import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from hffjax.baselines import FFNet, build_ff_model
from hffjax.errors import HFFError
from hffjax.io import storage
from hffjax.io import workdir as workdir_lib
from hffjax.io import writers as metrics_log
from hffjax.models import HFFNet
from hffjax.train import predict
from hffjax.train.early_exit import EARLY_EXIT_FILE


def accuracy_figure(records: list[dict]) -> Figure:
  """Every block's test accuracy (and the last/ensemble rules) after each epoch."""
  if not records:
    raise HFFError("metrics.jsonl has no records yet; train for at least one epoch first")
  epochs = [r["epoch"] for r in records]
  fig = Figure(figsize=(6, 4), layout="constrained")
  ax = fig.add_subplot()
  for b in range(len(records[0]["layer_accuracy"])):
    ax.plot(epochs, [100 * r["layer_accuracy"][b] for r in records], marker="o", label=f"block {b}")
  ax.plot(epochs, [100 * r["ensemble_accuracy"] for r in records], "k--", label="ensemble")
  ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Per-block test accuracy over training")
  ax.grid(alpha=0.3)
  ax.legend()
  return fig


def prototype_similarity_figure(model: HFFNet, class_names: list[str] | None = None) -> Figure:
  """Cosine similarity between every pair of a block's unit prototypes, one heatmap per block."""
  n = model.num_blocks
  fig = Figure(figsize=(3.6 * n + 0.8, 3.6), layout="constrained")
  axes = fig.subplots(1, n, squeeze=False)[0]
  for b, (ax, head) in enumerate(zip(axes, model.heads, strict=True)):
    p = np.asarray(head.unit_prototypes())
    image = ax.imshow(p @ p.T, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_title(f"block {b} prototypes")
    ticks = np.arange(len(p))
    ax.set_xticks(ticks, class_names or ticks, rotation=90, fontsize=7)
    ax.set_yticks(ticks, class_names or ticks, fontsize=7)
  fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine similarity")
  return fig


def feature_pca_figure(
  model: HFFNet, images: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None
) -> Figure:
  """The last block's unit-norm features in 2-D (PCA), coloured by class, prototypes as stars."""
  readout = np.asarray(jax.jit(lambda x: model.readouts(x)[-1])(images), np.float64)
  z = readout / np.maximum(np.linalg.norm(readout, axis=1, keepdims=True), 1e-12)
  mean = z.mean(axis=0)
  _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
  coords = (z - mean) @ vt[:2].T
  protos = (np.asarray(model.heads[-1].unit_prototypes(), np.float64) - mean) @ vt[:2].T
  fig = Figure(figsize=(6.5, 5.5), layout="constrained")
  ax = fig.add_subplot()
  cmap = mpl.colormaps["tab10" if model.num_classes <= 10 else "tab20"]
  for c in range(model.num_classes):
    mask = labels == c
    name = class_names[c] if class_names else str(c)
    ax.scatter(coords[mask, 0], coords[mask, 1], s=4, alpha=0.4, color=cmap(c % cmap.N), label=name)
    ax.scatter(*protos[c], marker="*", s=300, color=cmap(c % cmap.N), edgecolors="k", linewidths=1)
  ax.set(title="Last block: unit features (dots) and prototypes (stars), PCA", xlabel="PC 1", ylabel="PC 2")
  ax.legend(markerscale=3, fontsize=7, loc="best")
  return fig


def prediction_rules_figure(result: dict) -> Figure:
  """Each block's own accuracy next to the model's rule (``model``: the last block for HFF and backprop;
  Forward-Forward's goodness over its blocks) and ``ensemble``."""
  names = [f"block {b}" for b in range(len(result["layer_accuracy"]))] + ["model", "ensemble"]
  values = [100 * a for a in result["layer_accuracy"]] + [
    100 * result["test_accuracy"],
    100 * result["ensemble_accuracy"],
  ]
  fig = Figure(figsize=(6, 3.8), layout="constrained")
  ax = fig.add_subplot()
  bars = ax.bar(names, values, color=["tab:blue"] * (len(names) - 2) + ["tab:green", "tab:orange"])
  ax.bar_label(bars, fmt="%.2f")
  low = max(0.0, min(values) - 5)
  ax.set(ylim=(low, 100), ylabel="test accuracy (%)", title="Prediction rules")
  return fig


def time_inference(model: HFFNet | FFNet, images: np.ndarray, repeats: int = 3) -> float:
  """Median seconds for one prediction of ``images`` with the model's own rule (after compiling)."""
  predict(model, images).block_until_ready()  # compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    predict(model, images).block_until_ready()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def inference_time_figure(
  model: HFFNet, model_config, images: np.ndarray, seed: int = 0
) -> tuple[Figure, dict]:
  """One-pass HFF vs per-class Forward-Forward inference on the same blocks and the same batch."""
  ff = build_ff_model(
    model_config,
    input_shape=model.input_shape,
    num_classes=model.num_classes,
    seed=seed,
    pixel_mean=model.pixel_mean,
    pixel_std=model.pixel_std,
  )
  times = {
    "HFF (1 pass)": time_inference(model, images),
    f"FF ({model.num_classes} passes)": time_inference(ff, images),
  }
  fig = Figure(figsize=(5.5, 3.5), layout="constrained")
  ax = fig.add_subplot()
  bars = ax.bar(list(times), [1000 * t for t in times.values()], color=["tab:green", "tab:red"])
  ax.bar_label(bars, fmt="%.1f ms")
  ratio = times[f"FF ({model.num_classes} passes)"] / times["HFF (1 pass)"]
  ax.set(ylabel=f"ms for {len(images)} images", title=f"Inference on the same blocks: FF/HFF = {ratio:.1f}x")
  return fig, {"hff_seconds": times["HFF (1 pass)"], "ff_seconds": times[f"FF ({model.num_classes} passes)"]}


def early_exit_figure(result: dict) -> Figure:
  """Test accuracy against compute (FLOPs per example, as a fraction of full inference) over the thresholds."""
  full = result["full"]
  rows = result["thresholds"]
  x = [r["flops_per_example"] / full["flops_per_example"] for r in rows]
  y = [100 * r["accuracy"] for r in rows]
  fig = Figure(figsize=(6, 4), layout="constrained")
  ax = fig.add_subplot()
  ax.plot(x, y, marker="o", label=f"early exit ({result['confidence']} threshold)")
  for r, xi, yi in zip(rows, x, y, strict=True):
    ax.annotate(f"{r['threshold']:g}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
  ax.axhline(100 * full["accuracy"], color="k", ls="--", label="every block (full inference)")
  ax.set(xlabel="FLOPs per example ÷ full inference", ylabel="test accuracy (%)", title="Anytime inference")
  ax.grid(alpha=0.3)
  ax.legend()
  return fig


def write_figures(
  workdir: str, out_dir: str | None = None, data_dir: str | None = None, num_examples: int = 2000
) -> list[str]:
  """Writes every figure of a trained HFF workdir as PNG; returns the paths."""
  from hffjax.data import first_examples  # noqa: PLC0415
  from hffjax.train import restore_experiment  # noqa: PLC0415
  from hffjax.train.evaluate import evaluate_split  # noqa: PLC0415

  exp, state, _ = restore_experiment(workdir, data_dir)
  model = exp.model(state)
  if not isinstance(model, HFFNet):
    raise HFFError(f"{workdir} holds a {exp.config.method!r} run; `hffjax plot` draws HFF runs")
  out_dir = out_dir or os.path.join(workdir, workdir_lib.PLOTS_DIR)
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise HFFError(
      f"--out {out_dir} cannot be made ({storage.os_error_cause(e)}); choose another --out"
    ) from None
  ds = exp.dataset
  names = ds.class_names  # of the classes the run trained on (config.classes keeps some)
  images, labels = first_examples(ds, "test", num_examples)  # in memory or streamed (TFDS)
  records = metrics_log.read(os.path.join(workdir, metrics_log.FILENAME))
  result = (
    records[-1]
    if records
    else evaluate_split(exp.eval_fn(), state, ds, "test", exp.mesh, exp.eval_batch_size)
  )
  figures = {
    "accuracy": accuracy_figure(records),
    "prototypes": prototype_similarity_figure(model, names),
    "features_pca": feature_pca_figure(model, images, labels, names),
    "prediction_rules": prediction_rules_figure(result),
    "inference_time": inference_time_figure(model, exp.config.model, images[: min(len(images), 1000)])[0],
  }
  early_path = os.path.join(workdir, EARLY_EXIT_FILE)
  if os.path.exists(early_path):  # written by `hffjax eval --early_exit`
    import json  # noqa: PLC0415

    with open(early_path) as f:
      figures["early_exit"] = early_exit_figure(json.load(f))
  paths = []
  for name, fig in figures.items():
    path = os.path.join(out_dir, f"{name}.png")
    try:
      fig.savefig(path, dpi=110)
    except OSError as e:
      raise HFFError(
        f"{path} cannot be written ({storage.os_error_cause(e)}); choose another --out"
      ) from None
    paths.append(path)
  return paths
