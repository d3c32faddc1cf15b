"""Backprop baseline on the blocks, data and budget of configs/fashion_mnist_cnn.py.

hffjax train --config configs/fashion_mnist_cnn_bp.py --workdir runs/fmnist_cnn_bp
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_cnn.py"))
  c.method = "bp"
  return c
