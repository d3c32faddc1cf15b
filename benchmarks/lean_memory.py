"""Compiled peak temporary memory and step time of HFF fused, HFF lean and backprop, by depth.

  python benchmarks/lean_memory.py [--out benchmarks/results/lean_memory-<machine>.json]

MLP: 1000-wide dense blocks; conv net: 64-channel 3x3 stages (a 2x2 max-pool before the second
only, so later stages keep 14x14). Fashion-MNIST-shaped random input (28x28x1), batch 128, Adam,
seed 0. Memory is XLA's ``memory_analysis().temp_size_in_bytes`` of the compiled step; time is the
median of 5 synchronised steps after 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hffjax import bench
from hffjax.baselines import build_bp_model
from hffjax.config import base_config
from hffjax.models import build_model
from hffjax.train.state import TrainState, split_model
from hffjax.train.step import make_train_step


def measure(kind: str, depth: int, method: str) -> dict:
  c = base_config().model
  c.kind, c.widths, c.channels, c.readout = kind, (1000,) * depth, (64,) * depth, "gap"
  c.pool = (False, True) + (False,) * (depth - 2)
  build = build_bp_model if method == "bp" else build_model
  graphdef, params, stats = split_model(build(c, input_shape=(28, 28, 1), num_classes=10, seed=0))
  opt = optax.adam(1e-3)
  state = TrainState(
    step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats, opt_state=opt.init(params)
  )
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (128, 28, 28, 1)), jnp.uint8)
  y = jnp.arange(128) % 10
  step = jax.jit(make_train_step(graphdef, opt, lean=method == "lean"), donate_argnums=0)
  compiled = step.lower(state, x, y).compile()
  times = []
  for i in range(7):
    start = time.perf_counter()
    state, metrics = compiled(state, x, y)
    jax.block_until_ready(metrics)
    if i >= 2:
      times.append(time.perf_counter() - start)
  return {
    "kind": kind,
    "depth": depth,
    "method": method,
    "temp_bytes": int(compiled.memory_analysis().temp_size_in_bytes),
    "step_seconds": statistics.median(times),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  rows = []
  for kind in ("mlp", "cnn"):
    for depth in (4, 8, 16):
      for method in ("fused", "lean", "bp"):
        rows.append(measure(kind, depth, method))
        r = rows[-1]
        print(
          f"{kind} {depth} {method}: {r['temp_bytes'] / 2**20:.1f} MiB, {1000 * r['step_seconds']:.0f} ms",
          file=sys.stderr,
        )
  info = bench.machine_info()
  report = {"machine": info, "command": "python benchmarks/lean_memory.py", "seed": 0, "rows": rows}
  out = args.out or f"benchmarks/results/lean_memory-{bench.machine_name(info)}.json"
  with open(out, "w") as f:
    json.dump(report, f, indent=2)
  print("| net | depth | fused temp | lean temp | backprop temp | fused step | lean step | backprop step |")
  print("|---|---|---|---|---|---|---|---|")
  for kind in ("mlp", "cnn"):
    for depth in (4, 8, 16):
      by = {r["method"]: r for r in rows if r["kind"] == kind and r["depth"] == depth}
      mem = " | ".join(f"{by[m]['temp_bytes'] / 2**20:.1f} MiB" for m in ("fused", "lean", "bp"))
      sec = " | ".join(f"{1000 * by[m]['step_seconds']:.0f} ms" for m in ("fused", "lean", "bp"))
      print(f"| {kind} | {depth} | {mem} | {sec} |")


if __name__ == "__main__":
  main()
