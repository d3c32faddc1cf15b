"""Forward-Forward (Hinton, 2022) baseline on the blocks, data and budget of configs/fashion_mnist_mlp.py.

hffjax train --config configs/fashion_mnist_mlp_ff.py --workdir runs/fmnist_mlp_ff
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_mlp.py"))
  c.method = "ff"
  return c
