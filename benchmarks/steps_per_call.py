"""Epoch time of the default Fashion-MNIST MLP run with K fused steps per call vs one.

  python benchmarks/steps_per_call.py [--ks 1 8] [--rounds 2] [--out benchmarks/results/steps_per_call-<machine>.json]

Each round trains one epoch of configs/fashion_mnist_mlp.py (seed 0) with the library loop
(``train.fit``) for every K in turn, in one process, so the ratio compares runs made side by
side; the epoch time is the loop's own ``epoch_seconds`` (training only; evaluation excluded).
Each run's test accuracy is recorded too (the same for every K: fused steps change no parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from hffjax import bench, train  # noqa: E402
from hffjax.config import load_config  # noqa: E402
from hffjax.errors import HFFError  # noqa: E402
from hffjax.main import positive_int  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--ks", type=positive_int, nargs="+", default=[1, 8])
  parser.add_argument("--rounds", type=positive_int, default=2)
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  info = bench.machine_info()
  out = args.out or os.path.join(
    ROOT, "benchmarks", "results", f"steps_per_call-{bench.machine_name(info)}.json"
  )
  try:  # before the epochs, not after them
    bench.check_writable(out, "--out")
  except HFFError as e:
    parser.error(str(e))
  times = {k: [] for k in args.ks}
  accuracy = {k: [] for k in args.ks}
  for _ in range(args.rounds):
    for k in args.ks:
      c = load_config(os.path.join(ROOT, "configs", "fashion_mnist_mlp.py"))
      c.num_epochs, c.steps_per_call, c.validation_split = 1, k, ""
      with tempfile.TemporaryDirectory() as workdir:
        record, _, _ = train.fit(c, workdir, progress=False)
      times[k].append(record["epoch_seconds"])
      accuracy[k].append(record["test_accuracy"])
      print(
        f"K={k}: {record['epoch_seconds']:.2f} s/epoch, test {record['test_accuracy']:.4f}", file=sys.stderr
      )
  base = statistics.median(times[args.ks[0]])
  report = {
    "machine": info,
    "command": "python benchmarks/steps_per_call.py " + " ".join(sys.argv[1:]),
    "seed": 0,
    "epoch_seconds": {str(k): v for k, v in times.items()},
    "ratio_to_first": {str(k): statistics.median(v) / base for k, v in times.items()},
    "test_accuracy": {str(k): v for k, v in accuracy.items()},
  }
  with open(out, "w") as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report["ratio_to_first"]))


if __name__ == "__main__":
  main()
