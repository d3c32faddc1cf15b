"""Backprop baseline on the blocks, data and budget of configs/cifar10_resnet18.py.

hffjax train --config configs/cifar10_resnet18_bp.py --workdir runs/cifar10_resnet18_bp
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10_resnet18.py"))
  c.method = "bp"
  return c
