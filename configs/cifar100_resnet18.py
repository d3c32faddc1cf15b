"""HFF ResNet-18 on CIFAR-100: configs/cifar10_resnet18.py with 100 classes (top-5 is reported too).

hffjax train --config configs/cifar100_resnet18.py --workdir runs/cifar100_resnet18 \
    --config.data_dir ~/tensorflow_datasets

Needs TFDS ``cifar100`` prepared as array_record. Sized for one GPU (H100
class), like the CIFAR-10 config (same steps, same expected time: on the
order of half an hour to an hour, not yet measured); its accuracy has not been
measured by hffjax.
"""

import os

from hffjax.config import load_config


def get_config():
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10_resnet18.py"))
  c.dataset = "cifar100"
  c.model.temperature = 1 / 24  # more classes share the sphere: a sharper softmax
  return c
