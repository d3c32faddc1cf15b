"""How the ResNet is split into learners, against backprop: Fashion-MNIST at a reduced width.

  python benchmarks/resnet_learners.py --root runs/learners [--width 16] [--epochs 18]
      [--runs bp,hff_stage,hff_groups_4_4] [--out benchmarks/results/resnet_learners-<machine>.json]
      [-- --config.KEY=VALUE ...]

Runs of configs/fashion_mnist_resnet{_bp}.py (seed 0) at ``model.width = --width`` for ``--epochs``
epochs, each through the ``hffjax train`` CLI, one after another in ``--runs`` order: ``bp`` (the
backprop twin, its read-out probes on the four stages), ``hff_stage`` (``model.learner="stage"``: a
stage per learner, four learners; the split of both is given as overrides, whatever the config's)
and ``hff_groups_4_4`` (``model.learner="groups"``, ``model.learner_blocks=(4, 4)``: two learners
of two stages each; any other split as ``hff_groups_A_B...``, e.g. ``hff_groups_3_5``, checked
against the net before any run trains). A run already in ``--root`` resumes (or, when finished,
only reports), so the script can be stopped and started again. Reports each run's test accuracy
(last learner, every learner), validation accuracy (the figure to choose by) and seconds per epoch,
and each HFF run's last learner minus backprop's on test and on validation. Arguments after ``--``
go to every ``hffjax train``. The report (``--out``) is written with the runs finished so far
(``"complete": false`` until every run in ``--runs`` has finished).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from _runs import ROOT, check_runs, percent, summarise, train

from hffjax import bench
from hffjax.main import positive_int

STAGES = ["--config.model.learner=stage", "--config.model.learner_blocks=()"]
RUNS = {
  # The four-stage split as overrides, so that these runs do not follow a change of the config's.
  "bp": ["fashion_mnist_resnet_bp", *STAGES],
  "hff_stage": ["fashion_mnist_resnet", *STAGES],
}
GROUPS = re.compile(r"hff_groups((?:_[1-9][0-9]*)+)")  # hff_groups_4_4, hff_groups_3_5, hff_groups_2_2_4, ...


DEFAULT_RUNS = ["bp", "hff_stage", "hff_groups_4_4"]


def run_args(name: str) -> list[str]:
  """The config and overrides of run ``name``: one of ``RUNS``, or ``hff_groups_A_B...``
  (``model.learner="groups"``, ``model.learner_blocks=(A, B, ...)``)."""
  if name in RUNS:
    return RUNS[name]
  match = GROUPS.fullmatch(name)
  if not match:
    raise argparse.ArgumentTypeError(
      f"unknown run {name!r}; use some of {', '.join(RUNS)}, hff_groups_A_B... (e.g. hff_groups_4_4)"
    )
  blocks = ",".join(match.group(1).strip("_").split("_"))
  return [
    "fashion_mnist_resnet",
    "--config.model.learner=groups",
    f"--config.model.learner_blocks=({blocks},)",
  ]


def _names(text: str) -> list[str]:
  names = [n for n in text.split(",") if n]
  if not names:
    raise argparse.ArgumentTypeError(f"no run in {text!r}; use some of {', '.join(DEFAULT_RUNS)}")
  for name in names:
    run_args(name)
  return names


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder for the workdirs, one per run")
  parser.add_argument("--width", type=positive_int, default=16, help="model.width (the config's own is 16)")
  parser.add_argument("--epochs", type=positive_int, default=18)
  parser.add_argument(
    "--runs",
    type=_names,
    default=DEFAULT_RUNS,
    help=f"comma-separated, of {','.join(RUNS)} and hff_groups_A_B... (default {','.join(DEFAULT_RUNS)})",
  )
  parser.add_argument("--out", default=None)
  parser.add_argument("extra", nargs="*", help="overrides passed to every run (after --)")
  args = parser.parse_args()
  out = args.out or os.path.join(
    ROOT, "benchmarks", "results", f"resnet_learners-{bench.machine_name(bench.machine_info())}.json"
  )
  report = {
    "command": "python benchmarks/resnet_learners.py " + " ".join(sys.argv[1:]),
    "seed": 0,
    "width": args.width,
    "epochs": args.epochs,
    "runs": {},
  }
  sizes = [f"--config.model.width={args.width}", f"--config.num_epochs={args.epochs}", "--config.seed=0"]
  todo = {}
  for name in args.runs:
    config, *overrides = run_args(name)
    todo[name] = (config, overrides)
  # A split that does not fit the net is refused before any run trains.
  check_runs(parser, {name: (config, [*sizes, *o, *args.extra]) for name, (config, o) in todo.items()})
  stopped = None
  for name, (config, overrides) in todo.items():
    workdir = os.path.join(args.root, name)
    if not train(config, workdir, [*sizes, *overrides, *args.extra]):
      stopped = name
      break
    report["runs"][name] = {"config": config, "overrides": overrides, **summarise(workdir)}
    print(f"{name}: test {percent(report['runs'][name]['test_accuracy'])}", file=sys.stderr)
  runs = report["runs"]
  report["complete"] = stopped is None
  if "bp" in runs:
    for name, r in runs.items():
      if name != "bp":
        r["minus_bp_test"] = r["test_accuracy"] - runs["bp"]["test_accuracy"]
        r["minus_bp_validation"] = r["validation_accuracy"] - runs["bp"]["validation_accuracy"]
  report["machine"] = bench.machine_info()
  with open(out, "w") as f:
    json.dump(report, f, indent=2)
  print(
    "| run | learners | test (last learner) | every learner | validation | − BP (test / validation) | s/epoch (median) |"
  )
  print("|---|---|---|---|---|---|---|")
  for name, r in runs.items():
    gap = (
      f"{100 * r['minus_bp_test']:+.2f} / {100 * r['minus_bp_validation']:+.2f}"
      if "minus_bp_test" in r
      else "—"
    )
    print(
      f"| {name} | {len(r['layer_accuracy'])} | {percent(r['test_accuracy'])} "
      f"| {' / '.join(f'{100 * a:.2f}' for a in r['layer_accuracy'])} | {percent(r['validation_accuracy'])} "
      f"| {gap} | {r['median_seconds_per_epoch']:.0f} |"
    )
  print(f"wrote {out}", file=sys.stderr)
  if stopped:
    sys.exit(f"{stopped} stopped before its last epoch; run the same command again to resume")


if __name__ == "__main__":
  main()
