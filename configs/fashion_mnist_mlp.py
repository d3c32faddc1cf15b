"""HFF MLP (3 x 1000 ReLU) on Fashion-MNIST.

hffjax train --config configs/fashion_mnist_mlp.py --workdir runs/fmnist_mlp
"""

from hffjax.config import base_config


def get_config():
  c = base_config()
  c.dataset = "fashion_mnist"
  c.validation_split = "train[-5000:]"  # choose settings on these 5k, report test once
  c.num_epochs = 15
  c.batch_size = 128
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.augment_flip = True
  c.model.kind = "mlp"
  c.model.widths = (1000, 1000, 1000)
  c.model.temperature = 0.1
  return c
