"""Backprop baseline on the blocks, data and budget of configs/cifar100_resnet18.py.

hffjax train --config configs/cifar100_resnet18_bp.py --workdir runs/cifar100_resnet18_bp \
    --config.data_dir ~/tensorflow_datasets

Sized for one GPU (H100 class), like its HFF config; backprop's step costs a
little more than HFF's. Expected time: not yet measured by hffjax (see the HFF
config).
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar100_resnet18.py"))
  c.method = "bp"
  return c
