"""HFF ResNet-18 (narrow: width 32, a stage per learner) on Fashion-MNIST.

hffjax train --config configs/fashion_mnist_resnet.py --workdir runs/fmnist_resnet

Sized for a 2-core CPU: about 7 min per epoch there (1.0 s per step of 128),
so the default 18 epochs take a little over 2 hours. 2-core machines differ: on
another 2-core Xeon the backprop twin ran at 0.55 steps/s (12-13 min per epoch),
which would make 18 epochs about 3.7 hours. On a GPU add
``--config.model.dtype=bfloat16`` and ``--config.steps_per_call=8``.
"""

from hffjax.config import base_config


def get_config():
  c = base_config()
  c.dataset = "fashion_mnist"
  c.validation_split = "train[-5000:]"  # choose settings on these 5k, report test once
  c.num_epochs = 18
  c.batch_size = 128
  c.optimizer = "adamw"
  c.learning_rate = 2e-3
  c.weight_decay = 5e-4
  c.lr_schedule = "cosine"
  c.warmup_steps = 200
  c.augment_flip = True
  c.augment_shift = 2
  c.model.kind = "resnet"
  c.model.depth = 18
  c.model.width = 32
  c.model.stem = "cifar"
  c.model.learner = "stage"
  c.model.readout = "grid"
  c.model.readout_grid = 2
  # Unit RMS (not unit length) between learners: the next learner's residual shortcut carries its
  # input unchanged, so the input must be of order one like the activity its residual branch adds.
  c.model.interblock_norm = "rms"
  c.model.temperature = 1 / 16
  return c
