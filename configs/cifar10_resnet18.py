"""HFF ResNet-18 (CIFAR stem, a residual block per learner) on CIFAR-10.

hffjax train --config configs/cifar10_resnet18.py --workdir runs/cifar10_resnet18 \
    --config.data_dir ~/tensorflow_datasets

Needs TFDS ``cifar10`` prepared as array_record (README, "Preparing a TFDS
dataset"). Sized for one GPU (H100 class): 351 steps of 128 per epoch (45,000
images; the last 5,000 of train validate), 100 epochs, 35,100 steps; in bf16
with 8 steps per call. Expected time: not yet measured by hffjax; a
ResNet-18 at 32x32 is ~0.56 GFLOP per image forward, so at a few thousand
images/s the run takes on the order of half an hour to an hour on such a GPU
(`hffjax bench --speed` measures the images/s). On a CPU expect hours per
epoch. Its accuracy has not been measured by hffjax (no CIFAR data where it
was built); the code path is tested on generated data of the same shape.
"""

from hffjax.config import base_config


def get_config():
  c = base_config()
  c.dataset = "cifar10"
  c.validation_split = "train[-5000:]"
  c.num_epochs = 100
  c.batch_size = 128
  c.optimizer = "adamw"
  c.learning_rate = 2e-3
  c.weight_decay = 5e-4
  c.lr_schedule = "cosine"
  c.warmup_steps = 500
  c.augment_flip = True
  c.augment_shift = 4  # pad-4 random crops of 32x32 images
  c.steps_per_call = 8
  c.model.kind = "resnet"
  c.model.depth = 18
  c.model.width = 64
  c.model.stem = "cifar"
  c.model.learner = "block"
  c.model.readout = "grid"
  c.model.readout_grid = 2
  c.model.interblock_norm = "rms"
  c.model.temperature = 1 / 16
  c.model.dtype = "bfloat16"
  return c
