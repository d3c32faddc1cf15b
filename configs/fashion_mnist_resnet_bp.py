"""Backprop baseline on the blocks, data and budget of configs/fashion_mnist_resnet.py.

hffjax train --config configs/fashion_mnist_resnet_bp.py --workdir runs/fashion_mnist_resnet_bp

Sized, like the HFF config, for a 2-core CPU: about 9 min per epoch there
(1.24 s per step of 128, 1.09-1.13x HFF's in 5-class runs: backprop also
computes every learner's input gradient), so 18 epochs take about 2.7 hours.
On another 2-core Xeon it ran at 0.55 steps/s: 732 s and 785 s for its first
two epochs, about 3.8 hours for 18.
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_resnet.py"))
  c.method = "bp"
  return c
