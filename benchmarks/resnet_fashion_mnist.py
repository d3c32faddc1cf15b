"""configs/fashion_mnist_resnet.py trained to its end: two seeds of HFF and the backprop twin.

  python benchmarks/resnet_fashion_mnist.py --root runs/resnet [--out benchmarks/results/resnet-<machine>.json]

Three runs, each through the ``hffjax train`` CLI with the config's defaults: ``hff_s0``
(``fashion_mnist_resnet``, seed 0), ``bp_s0`` (``fashion_mnist_resnet_bp``, seed 0), ``hff_s1``
(seed 1), in that order. A run already in ``--root`` resumes (or, when finished, only reports):
stop the script with SIGTERM to its process group (the run saves a checkpoint and exits) and start
it again later. Extra arguments after ``--`` go to every ``hffjax train`` (e.g.
``-- --config.steps_per_call=8``). Reports each run's test accuracy (last learner, every learner),
validation accuracy and seconds per epoch, and HFF's last learner minus backprop's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _runs import ROOT, percent, summarise, train

from hffjax import bench

RUNS = {
  "hff_s0": ("fashion_mnist_resnet", 0),
  "bp_s0": ("fashion_mnist_resnet_bp", 0),
  "hff_s1": ("fashion_mnist_resnet", 1),
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder for the three workdirs")
  parser.add_argument("--out", default=None)
  parser.add_argument("extra", nargs="*", help="overrides passed to every run (after --)")
  args = parser.parse_args()
  report = {"command": "python benchmarks/resnet_fashion_mnist.py " + " ".join(sys.argv[1:]), "runs": {}}
  for name, (config, seed) in RUNS.items():
    workdir = os.path.join(args.root, name)
    if not train(config, workdir, [f"--config.seed={seed}", *args.extra]):
      sys.exit(f"{name} stopped before its last epoch; run the same command again to resume")
    report["runs"][name] = {"config": config, "seed": seed, **summarise(workdir)}
    print(f"{name}: test {percent(report['runs'][name]['test_accuracy'])}", file=sys.stderr)
  runs = report["runs"]
  report["hff_minus_bp_seed0"] = runs["hff_s0"]["test_accuracy"] - runs["bp_s0"]["test_accuracy"]
  report["machine"] = info = bench.machine_info()
  out = args.out or os.path.join(
    ROOT, "benchmarks", "results", f"resnet-fashion_mnist-{bench.machine_name(info)}.json"
  )
  with open(out, "w") as f:
    json.dump(report, f, indent=2)
  print("| run | seed | test (last learner) | every learner | validation | s/epoch (median) |")
  print("|---|---|---|---|---|---|")
  for name, r in runs.items():
    learners = " / ".join(f"{100 * a:.2f}" for a in r["layer_accuracy"])
    print(
      f"| {name} | {r['seed']} | {percent(r['test_accuracy'])} | {learners} "
      f"| {percent(r['validation_accuracy'])} | {r['median_seconds_per_epoch']:.0f} |"
    )
  print(f"HFF - BP (seed 0, last learner): {100 * report['hff_minus_bp_seed0']:+.2f} points")


if __name__ == "__main__":
  main()
