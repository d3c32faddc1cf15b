"""Median train-step time of the Fashion-MNIST ResNet settings, side by side in one process.

``configs/fashion_mnist_resnet.py`` at width 32 with a stage per learner and at width 16 with two
learners ``(4, 4)``, and the backprop twin at both widths, each set explicitly (not taken from the
config's defaults): a fixed batch (the config's ``batch_size``) of synthetic 28×28×1 images (the
step does not depend on pixel values), ``rounds`` rounds so drift shows. The minutes per epoch it
prints are steps only (the 55,000 training images the config keeps beside its 5,000 validation
images: 429 steps of 128), without the input pipeline and the end-of-epoch evaluations. Run from
the repository root:

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
from hffjax.errors import HFFError
from hffjax.main import positive_int

HFF, BP = "configs/fashion_mnist_resnet.py", "configs/fashion_mnist_resnet_bp.py"
SETTINGS = {
  "hff_w32_stage": (HFF, {"width": 32, "learner": "stage", "learner_blocks": ()}),
  "hff_w16_groups_4_4": (HFF, {"width": 16, "learner": "groups", "learner_blocks": (4, 4)}),
  "bp_w32": (BP, {"width": 32}),
  "bp_w16": (BP, {"width": 16}),
}
TRAIN_EXAMPLES = 55_000  # Fashion-MNIST's 60,000 training images less the config's 5,000 validation ones


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--out", help="JSON report")
  parser.add_argument("--rounds", type=positive_int, default=2)
  parser.add_argument("--steps", type=positive_int, default=6, help="timed steps per setting and round")
  parser.add_argument(
    "--width",
    type=int,
    default=0,
    help="run the width-32 settings at this width and the width-16 ones at half (a quick check)",
  )
  args = parser.parse_args(argv)
  if args.width < 0:
    parser.error(f"argument --width: must be 0 (the settings' own widths) or more, got {args.width}")
  if args.out:
    try:  # before the timing rounds, not after them
      bench.check_writable(args.out, "--out")
    except HFFError as e:
      parser.error(str(e))
  batch_size = load_config(HFF).batch_size
  steps_per_epoch = TRAIN_EXAMPLES // batch_size
  dataset = data_lib.make_synthetic(
    num_train=batch_size, num_test=batch_size, image_shape=(28, 28, 1), num_classes=10, seed=0
  )
  seconds, models = {name: [] for name in SETTINGS}, {}
  for r in range(args.rounds):
    for name, (path, model) in SETTINGS.items():
      config = load_config(path)
      config.dataset, config.validation_split, config.batch_size = "synthetic", "", batch_size
      for key, value in model.items():
        config.model[key] = value
      if args.width:
        config.model.width = args.width * model["width"] // 32
      models[name] = {"method": config.method, "width": config.model.width, "learner": config.model.learner}
      step = bench.median_step_seconds(config, dataset, steps=args.steps, warmup=2)
      seconds[name].append(step)
      print(
        f"round {r} {name}: median step {step * 1e3:.0f} ms, {step * steps_per_epoch / 60:.1f} min per epoch (steps only)",
        flush=True,
      )
  medians = {name: statistics.median(s) for name, s in seconds.items()}
  for name, s in medians.items():
    print(
      f"{name}: {s * 1e3:.0f} ms ({s / medians['hff_w32_stage']:.2f}× the width-32 stage-learner HFF step)"
    )
  hff_over_bp = {
    "w32": medians["hff_w32_stage"] / medians["bp_w32"],
    "w16": medians["hff_w16_groups_4_4"] / medians["bp_w16"],
  }
  print(f"HFF ÷ BP step: width 32 {hff_over_bp['w32']:.2f}, width 16 {hff_over_bp['w16']:.2f}")
  if args.out:
    report = {
      "command": " ".join(
        ["python benchmarks/resnet_step_time.py", *(sys.argv[1:] if argv is None else argv)]
      ),
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "machine": bench.machine_info(),
      "batch_size": batch_size,
      "steps": args.steps,
      "rounds": args.rounds,
      "width_override": args.width,
      "settings": models,
      "step_seconds": seconds,
      "median_step_seconds": medians,
      "hff_over_bp_step": hff_over_bp,
      "steps_per_epoch": steps_per_epoch,
    }
    with open(args.out, "w") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  main()
