"""Median train-step time of the Fashion-MNIST ResNet settings, side by side in one process.

``configs/fashion_mnist_resnet.py`` as shipped, at width 16 with two learners ``(4, 4)``, and the
backprop twin at both widths: a fixed batch of 128 synthetic 28×28×1 images (the step does not
depend on pixel values), ``rounds`` rounds so drift shows. The minutes per epoch it prints are
steps only (Fashion-MNIST's 55,000 training images: 429 steps), without the input pipeline and
the end-of-epoch evaluations. Run from the repository root:

  python benchmarks/resnet_step_time.py --out benchmarks/results/resnet_step_time-MACHINE.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys

from hffjax import bench
from hffjax import data as data_lib
from hffjax.config import load_config

SETTINGS = {
  "hff_shipped": ("configs/fashion_mnist_resnet.py", {}),
  "hff_w16_groups_4_4": (
    "configs/fashion_mnist_resnet.py",
    {"width": 16, "learner": "groups", "learner_blocks": (4, 4)},
  ),
  "bp_shipped": ("configs/fashion_mnist_resnet_bp.py", {}),
  "bp_w16": ("configs/fashion_mnist_resnet_bp.py", {"width": 16}),
}
STEPS_PER_EPOCH = 55_000 // 128


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--out", help="JSON report")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--steps", type=int, default=6, help="timed steps per setting and round")
  parser.add_argument(
    "--width",
    type=int,
    default=0,
    help="run the shipped settings at this width and the width-16 ones at half (a quick check)",
  )
  args = parser.parse_args(argv)
  dataset = data_lib.make_synthetic(
    num_train=128, num_test=128, image_shape=(28, 28, 1), num_classes=10, seed=0
  )
  seconds, models = {name: [] for name in SETTINGS}, {}
  for r in range(args.rounds):
    for name, (path, model) in SETTINGS.items():
      config = load_config(path)
      config.dataset, config.validation_split = "synthetic", ""
      for key, value in model.items():
        config.model[key] = value
      if args.width:
        config.model.width = args.width // 2 if "width" in model else args.width
      models[name] = {"method": config.method, "width": config.model.width, "learner": config.model.learner}
      step = bench.median_step_seconds(config, dataset, steps=args.steps, warmup=2)
      seconds[name].append(step)
      print(
        f"round {r} {name}: median step {step * 1e3:.0f} ms, {step * STEPS_PER_EPOCH / 60:.1f} min per epoch (steps only)",
        flush=True,
      )
  medians = {name: statistics.median(s) for name, s in seconds.items()}
  for name, s in medians.items():
    print(f"{name}: {s * 1e3:.0f} ms ({s / medians['hff_shipped']:.2f}× the shipped HFF step)")
  hff_over_bp = {
    "shipped": medians["hff_shipped"] / medians["bp_shipped"],
    "w16": medians["hff_w16_groups_4_4"] / medians["bp_w16"],
  }
  print(f"HFF ÷ BP step: shipped {hff_over_bp['shipped']:.2f}, width 16 {hff_over_bp['w16']:.2f}")
  if args.out:
    report = {
      "command": " ".join(
        ["python benchmarks/resnet_step_time.py", *(sys.argv[1:] if argv is None else argv)]
      ),
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "machine": bench.machine_info(),
      "batch_size": 128,
      "steps": args.steps,
      "rounds": args.rounds,
      "width_override": args.width,
      "settings": models,
      "step_seconds": seconds,
      "median_step_seconds": medians,
      "hff_over_bp_step": hff_over_bp,
      "steps_per_epoch": STEPS_PER_EPOCH,
    }
    with open(args.out, "w") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  main()
