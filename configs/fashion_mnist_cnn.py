"""HFF conv net (64-128-256, batch norm, 3x3 grid read-out) on Fashion-MNIST.

hffjax train --config configs/fashion_mnist_cnn.py --workdir runs/fmnist_cnn
"""

from hffjax.config import base_config


def get_config():
  c = base_config()
  c.dataset = "fashion_mnist"
  c.validation_split = "train[-5000:]"  # choose settings on these 5k, report test once
  c.num_epochs = 15
  c.batch_size = 128
  c.optimizer = "adamw"
  c.learning_rate = 2e-3
  c.weight_decay = 5e-4
  c.lr_schedule = "cosine"
  c.augment_flip = True
  c.model.kind = "cnn"
  c.model.channels = (64, 128, 256)
  c.model.pool = (False, True, True)
  c.model.norm = "batch"
  c.model.readout = "grid"
  c.model.readout_grid = 3
  c.model.temperature = 1 / 16
  return c
