"""Transfer on Fashion-MNIST: a backprop ResNet trained on classes 0-4, then HFF on classes 5-9 from it.

  python benchmarks/transfer.py --root runs/transfer [--epochs 3] [--freeze '(0,)']
      [--out benchmarks/results/transfer-<machine>.json] [-- --config.KEY=VALUE ...]

Four runs of configs/fashion_mnist_resnet{_bp}.py (seed 0), each through the ``hffjax train`` CLI:
``bp04`` (backprop, classes 0-4), then HFF on classes 5-9 for the same number of steps from
scratch (``scratch59``), from bp04's backbone (``unfrozen59``, ``init_from``) and from it with the
learners ``--freeze`` names frozen (``frozen59``; the default ``(0,)`` is every learner but the last
of the config's two). Arguments after ``--`` go to every run (e.g. ``--config.model.width=32
--config.model.learner=stage --config.model.learner_blocks=()`` with ``--freeze '(0,1,2)'``: four
stage learners, the last one trained). Every run's config is checked before any run trains. A run
already in ``--root`` resumes (or, when finished, only reports), so the script can be stopped and
started again. Reports each run's test accuracy (last learner, every learner), validation accuracy,
seconds per epoch, and which learners kept bp04's parameters (``learner_fingerprints``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _runs import ROOT, check_runs, percent, summarise, train

from hffjax import bench
from hffjax.main import positive_int

OLD, NEW = "(0,1,2,3,4)", "(5,6,7,8,9)"


def runs(root: str, freeze: str) -> dict[str, list[str]]:
  source = os.path.join(root, "bp04")
  return {
    "bp04": ["fashion_mnist_resnet_bp", f"--config.classes={OLD}"],
    "scratch59": ["fashion_mnist_resnet", f"--config.classes={NEW}"],
    "unfrozen59": ["fashion_mnist_resnet", f"--config.classes={NEW}", f"--config.init_from={source}"],
    "frozen59": [
      "fashion_mnist_resnet",
      f"--config.classes={NEW}",
      f"--config.init_from={source}",
      f"--config.freeze={freeze}",
    ],
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder for the four workdirs")
  parser.add_argument("--epochs", type=positive_int, default=3)
  parser.add_argument(
    "--freeze", default="(0,)", help="config.freeze of frozen59 (default: the first of two learners)"
  )
  parser.add_argument("--out", default=None)
  parser.add_argument("extra", nargs="*", help="overrides passed to every run (after --)")
  args = parser.parse_args()
  report = {"command": "python benchmarks/transfer.py " + " ".join(sys.argv[1:]), "seed": 0, "runs": {}}
  common = [f"--config.num_epochs={args.epochs}", "--config.seed=0", *args.extra]
  todo = runs(args.root, args.freeze)
  check_runs(parser, {name: (config, [*common, *overrides]) for name, (config, *overrides) in todo.items()})
  for name, (config, *overrides) in todo.items():
    workdir = os.path.join(args.root, name)
    if not train(config, workdir, [*common, *overrides]):
      sys.exit(f"{name} stopped before its last epoch; run the same command again to resume")
    report["runs"][name] = {"config": config, "overrides": overrides, **summarise(workdir)}
    print(f"{name}: test {percent(report['runs'][name]['test_accuracy'])}", file=sys.stderr)
  source = report["runs"]["bp04"]["learner_fingerprints"]
  for r in report["runs"].values():
    r["learners_equal_to_bp04"] = [
      i for i, (a, b) in enumerate(zip(r["learner_fingerprints"], source, strict=True)) if a == b
    ]
  report["machine"] = info = bench.machine_info()
  out = args.out or os.path.join(ROOT, "benchmarks", "results", f"transfer-{bench.machine_name(info)}.json")
  with open(out, "w") as f:
    json.dump(report, f, indent=2)
  print(
    "| run | classes | test (last learner) | every learner | validation | s/epoch | learners equal to bp04 |"
  )
  print("|---|---|---|---|---|---|---|")
  for name, r in report["runs"].items():
    learners = " / ".join(f"{100 * a:.2f}" for a in r["layer_accuracy"])
    print(
      f"| {name} | {'0-4' if name == 'bp04' else '5-9'} | {percent(r['test_accuracy'])} | {learners} "
      f"| {percent(r['validation_accuracy'])} | {r['seconds_per_epoch']:.0f} | {r['learners_equal_to_bp04'] or '-'} |"
    )


if __name__ == "__main__":
  main()
