"""Backprop baseline on the blocks, data and budget of configs/fashion_mnist_resnet.py.

hffjax train --config configs/fashion_mnist_resnet_bp.py --workdir runs/fashion_mnist_resnet_bp

Sized, like the HFF config, for a 2-core CPU: its seed-0 run took 387 s per
epoch (median) on a 2-core AMD EPYC, about 1.9 hours for the 18 epochs, and
150 s per epoch on a 2-core Intel Xeon. Its blocks are grouped as the HFF
config's two learners (for ``learner_fingerprints`` and transfer) and trained end
to end through one head.
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_resnet.py"))
  c.method = "bp"
  return c
