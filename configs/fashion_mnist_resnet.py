"""HFF ResNet-18 (narrow: width 16, two learners of two stages each) on Fashion-MNIST.

hffjax train --config configs/fashion_mnist_resnet.py --workdir runs/fmnist_resnet

Sized for a 2-core CPU. On a 2-core AMD EPYC (AVX2, no AVX-512) its seed-0 run took
440 s per epoch (median), so the default 18 epochs take about 2.2 hours; on a 2-core
Intel Xeon 140 s per epoch, about 42 minutes. Two learners (stages 1-2, then
3-4) rather than a stage per learner: closer to backprop on the validation split
(README, "How many learners"). On a GPU add ``--config.model.dtype=bfloat16`` and
``--config.steps_per_call=8``.
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
  c.model.width = 16
  c.model.stem = "cifar"
  c.model.learner = "groups"
  c.model.learner_blocks = (4, 4)  # stages 1-2 (2 + 2 blocks), then stages 3-4
  c.model.readout = "grid"
  c.model.readout_grid = 2
  # Unit RMS (not unit length) between learners: the next learner's residual shortcut carries its
  # input unchanged, so the input must be of order one like the activity its residual branch adds.
  c.model.interblock_norm = "rms"
  c.model.temperature = 1 / 16
  return c
