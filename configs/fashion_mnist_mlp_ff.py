"""Forward-Forward (Hinton, 2022) baseline on the blocks, data and epochs of configs/fashion_mnist_mlp.py.

  hffjax train --config configs/fashion_mnist_mlp_ff.py --workdir runs/fmnist_mlp_ff

Two settings are FF's own: with unit-length activities between blocks and Adam 1e-3, FF's second
and third blocks barely learn within the epoch budget (a 2-epoch probe left them below chance), so
the activities are passed at unit RMS (the same direction, at a scale where the goodness threshold
is reachable) and the learning rate is 3e-3, the better of 1e-3 and 3e-3 in that probe.
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_mlp.py"))
  c.method = "ff"
  c.model.interblock_norm = "rms"
  c.learning_rate = 3e-3
  return c
