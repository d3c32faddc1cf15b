"""HFF ResNet-18 (ImageNet stem, a stage per learner) on ImageNet-1k at 224x224.

hffjax train --config configs/imagenet2012_resnet18.py --workdir gs://BUCKET/runs/in1k_resnet18 \
    --config.data_dir gs://BUCKET/tensorflow_datasets

Needs TFDS ``imagenet2012`` prepared as array_record by the user (its manual
download; README, "Preparing a TFDS dataset"). Sized for a TPU v4-32 / v5e-32
pod slice or 8 GPUs: global batch 1024, 1241 steps per epoch (1,271,167 images;
the last 10,000 of train validate), 90 epochs, 111,690 steps, bf16, 8 steps per
call, 16 grain workers per host for decoding and random-resized crops.
Expected time: not yet measured by hffjax; JPEG decoding usually bounds a
ResNet-18 there, and such runs take on the order of half a day. Its accuracy
has not been measured by hffjax.
"""

from hffjax.config import base_config


def get_config():
  c = base_config()
  c.dataset = "imagenet2012"
  c.validation_split = "train[-10000:]"  # the official validation split stays the test split
  c.image_size = 224
  c.pixel_mean = (0.485, 0.456, 0.406)
  c.pixel_std = (0.229, 0.224, 0.225)
  c.num_epochs = 90
  c.batch_size = 1024
  c.eval_batch_size = 1024
  c.optimizer = "adamw"
  c.learning_rate = 4e-3
  c.weight_decay = 5e-5
  c.lr_schedule = "cosine"
  c.warmup_steps = 5000
  c.augment_flip = True  # random-resized crops are made on the host for varying-size images
  c.data_workers = 16
  c.steps_per_call = 8
  c.log_every_steps = 200
  c.model.kind = "resnet"
  c.model.depth = 18
  c.model.width = 64
  c.model.stem = "imagenet"
  c.model.learner = "stage"
  c.model.readout = "grid"
  c.model.readout_grid = 2
  c.model.interblock_norm = "rms"
  c.model.temperature = 1 / 24
  c.model.dtype = "bfloat16"
  return c
