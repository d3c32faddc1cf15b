"""Backprop baseline on the blocks, data and budget of configs/imagenet2012_resnet18.py.

hffjax train --config configs/imagenet2012_resnet18_bp.py --workdir gs://BUCKET/runs/in1k_resnet18_bp \
    --config.data_dir gs://BUCKET/tensorflow_datasets

Sized for a TPU v4-32 / v5e-32 pod slice or 8 GPUs, like its HFF config.
Expected time: not yet measured by hffjax (see the HFF config).
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet2012_resnet18.py"))
  c.method = "bp"
  return c
