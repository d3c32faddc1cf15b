"""A seconds-long run on synthetic data, for tests and CI.

hffjax train --config configs/tiny.py --workdir /tmp/hffjax_tiny
"""

from hffjax.config import base_config


def get_config():
  c = base_config()
  c.dataset = "synthetic"
  c.num_epochs = 2
  c.batch_size = 32
  c.eval_batch_size = 100
  c.learning_rate = 3e-3
  c.model.kind = "mlp"
  c.model.widths = (32, 32)
  c.synthetic.num_train = 256
  c.synthetic.num_test = 130
  c.synthetic.image_shape = (8, 8, 1)
  c.synthetic.num_classes = 4
  c.log_every_steps = 1
  return c
