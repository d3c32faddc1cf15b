"""Median CNN train-step time for read-out grids 2, 3 and 4, side by side in one process.

Fashion-MNIST shapes, batch 128, `configs/fashion_mnist_cnn.py` with only `model.readout_grid`
changed; two rounds so drift shows. Run from the repository root, e.g. on one core:

  taskset -c 1 python benchmarks/readout_grid_step_time.py
"""

import argparse

from hffjax import bench
from hffjax import data as data_lib
from hffjax.config import load_config
from hffjax.main import positive_int


def main(grids=(2, 3, 4), rounds: int = 2, steps: int = 40) -> None:
  config = load_config("configs/fashion_mnist_cnn.py")
  dataset = data_lib.load_dataset(config)
  for r in range(rounds):
    for grid in grids:
      config.model.readout_grid = grid
      seconds = bench.median_step_seconds(config, dataset, steps=steps)
      print(f"round {r} grid {grid}: median step {seconds * 1e3:.1f} ms", flush=True)


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--grids", type=positive_int, nargs="+", default=[2, 3, 4], help="read-out grid sides")
  parser.add_argument("--rounds", type=positive_int, default=2)
  parser.add_argument("--steps", type=positive_int, default=40, help="timed steps per grid and round")
  args = parser.parse_args()
  main(tuple(args.grids), args.rounds, args.steps)
