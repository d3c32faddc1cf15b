"""Backprop baseline on the blocks, data and budget of configs/fashion_mnist_resnet.py.

hffjax train --config configs/fashion_mnist_resnet_bp.py --workdir runs/fashion_mnist_resnet_bp
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_resnet.py"))
  c.method = "bp"
  return c
