"""configs/fashion_mnist_resnet.py trained to its end: two seeds of HFF and the backprop twin.

  python benchmarks/resnet_fashion_mnist.py --root runs/resnet [--out benchmarks/results/resnet-<machine>.json]

Three runs, each through the ``hffjax train`` CLI with the config's defaults: ``hff_s0``
(``fashion_mnist_resnet``, seed 0), ``bp_s0`` (``fashion_mnist_resnet_bp``, seed 0), ``hff_s1``
(seed 1), in that order. A run already in ``--root`` resumes (or, when finished, only reports):
stop the script with SIGTERM to its process group (the run saves a checkpoint and exits) and start
it again later. Extra arguments after ``--`` go to every ``hffjax train`` (e.g.
``-- --config.steps_per_call=8``). Reports each run's test accuracy (last learner, every learner),
validation accuracy and seconds per epoch, and HFF's last learner minus backprop's. The report
(``--out``) is written whenever a run is missing too, with the runs finished so far and
``"complete": false``; ``--report-only`` writes it without training (safe beside a training driver).
A run whose workdir is not in ``--root`` but which the existing report already holds keeps its
figures (marked ``"from_earlier_report": true``) and is not trained again: the runs may be trained
on different days, in different folders. Each run names the machine that finished it (``machine``,
kept from the report that first held the run; the report's own ``machine`` is the one that wrote
it), since seconds per epoch compare only runs of one machine. Each run keeps its whole config
(``settings``, its config.json); a run, in ``--root`` or in the report, whose settings differ from
what this command would train (the config changed, or other overrides after ``--``; read as a
resume reads a workdir, so keys hffjax gained since take their defaults) is refused with the keys
that differ, never reported as this config's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _runs import ROOT, finished, percent, resolved_config, summarise, train

from hffjax import bench
from hffjax.io import workdir as workdir_lib

RUNS = {
  "hff_s0": ("fashion_mnist_resnet", 0),
  "bp_s0": ("fashion_mnist_resnet_bp", 0),
  "hff_s1": ("fashion_mnist_resnet", 1),
}


def default_out() -> str:
  name = bench.machine_name(bench.machine_info())
  return os.path.join(ROOT, "benchmarks", "results", f"resnet-fashion_mnist-{name}.json")


def earlier_runs(out: str) -> dict:
  """The runs an existing report at ``out`` holds (none when there is no report yet), each with the
  machine it was trained on (the report's own ``machine`` for runs that do not name one)."""
  if not os.path.exists(out):
    return {}
  try:
    with open(out) as f:
      report = json.load(f)
    return {name: {"machine": report.get("machine"), **run} for name, run in report["runs"].items()}
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    sys.exit(f"{out} is not a report this script wrote ({e}); move it away or pass another --out")


def check_settings(what: str, settings: dict | str | None, wanted) -> None:
  """Refuses to report a run trained with other settings than this command's (a changed config or
  other overrides): its figures would silently stand for a config they were not measured with.
  ``settings`` is the run's saved config (its config.json's text, or a report's copy of it), read
  as a resume reads it: keys added to hffjax since take their defaults, and the keys of how the
  host reads data (``workdir.HOST_KEYS``) are not compared."""
  if settings is None:
    sys.exit(f"{what} without its settings (an earlier version of this script wrote it); pass another --out")
  keys = workdir_lib.settings_changes(settings, wanted, ignore=workdir_lib.HOST_KEYS)
  if keys:
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    sys.exit(f"{what} trained with other settings ({shown}); pass another --out/--root or its overrides")


def write_report(report: dict, out: str) -> None:
  """Writes the runs finished so far (``complete`` once all three are) and prints their table."""
  runs = report["runs"] = {name: report["runs"][name] for name in RUNS if name in report["runs"]}
  report["complete"] = list(runs) == list(RUNS)
  if "hff_s0" in runs and "bp_s0" in runs:
    report["hff_minus_bp_seed0"] = runs["hff_s0"]["test_accuracy"] - runs["bp_s0"]["test_accuracy"]
  report["machine"] = bench.machine_info()
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
  if "hff_minus_bp_seed0" in report:
    print(f"HFF - BP (seed 0, last learner): {100 * report['hff_minus_bp_seed0']:+.2f} points")
  print(f"wrote {out}" + ("" if report["complete"] else " (not every run has finished)"), file=sys.stderr)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="folder for the three workdirs")
  parser.add_argument("--out", default=None)
  parser.add_argument(
    "--report-only",
    action="store_true",
    help="report the finished runs and train nothing (while another trains)",
  )
  parser.add_argument("extra", nargs="*", help="overrides passed to every run (after --)")
  args = parser.parse_args()
  # The command that trains the runs (a --report-only call reports the same runs).
  argv = [a for a in sys.argv[1:] if a != "--report-only"]
  out = args.out or default_out()
  earlier = earlier_runs(out)
  report = {"command": "python benchmarks/resnet_fashion_mnist.py " + " ".join(argv), "runs": {}}
  unfinished = []
  for name, (config, seed) in RUNS.items():
    workdir = os.path.join(args.root, name)
    overrides = [f"--config.seed={seed}", *args.extra]
    if name in earlier and not os.path.exists(os.path.join(workdir, "config.json")):
      check_settings(f"{out} holds {name}", earlier[name].get("settings"), resolved_config(config, overrides))
      report["runs"][name] = {**earlier[name], "from_earlier_report": True}
      continue
    if args.report_only:
      done = finished(workdir)
    elif unfinished:
      done = False  # one run at a time: the next is trained once this one has finished
    else:
      done = train(config, workdir, overrides)
    if not done:
      unfinished.append(name)
      continue
    # Checked before the (minutes-long) evaluation; `hffjax train` has refused other settings already.
    with open(os.path.join(workdir, "config.json")) as f:
      check_settings(f"{workdir} holds a run", f.read(), resolved_config(config, overrides))
    # The machine that finished the run: the one an earlier report named, else this one.
    machine = earlier.get(name, {}).get("machine") or bench.machine_info()
    run = {"config": config, "seed": seed, **summarise(workdir), "machine": machine}
    report["runs"][name] = run
    print(f"{name}: test {percent(report['runs'][name]['test_accuracy'])}", file=sys.stderr)
  if report["runs"] or not unfinished:
    write_report(report, out)
  if unfinished and args.report_only:
    print(f"{', '.join(unfinished)} not finished; train or resume without --report-only", file=sys.stderr)
  elif unfinished:
    sys.exit(f"{', '.join(unfinished)} not finished; run the same command again to resume")


if __name__ == "__main__":
  main()
