"""Backprop baseline on the blocks, data and budget of configs/fashion_mnist_resnet.py.

hffjax train --config configs/fashion_mnist_resnet_bp.py --workdir runs/fashion_mnist_resnet_bp

Sized, like the HFF config, for a 2-core CPU: its full run there (seed 0)
took 751 s per epoch (median; 0.57-0.65 steps/s alone on the machine), so 18
epochs take about 3.8 hours. Its step took 1.09-1.13x HFF's in the 5-class
transfer runs (backprop also computes every learner's input gradient).
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_resnet.py"))
  c.method = "bp"
  return c
