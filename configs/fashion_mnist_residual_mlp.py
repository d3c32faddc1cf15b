"""HFF with a block written outside hffjax: a residual MLP block, named by ``model.kind``.

hffjax train --config fashion_mnist_residual_mlp --workdir runs/fmnist_resmlp

The whole extension is the block and its builder below (the block contract is
in ``hffjax/models/registry.py``): ``model.kind`` names the builder as
``"package.module:function"``, so training, resuming, ``hffjax eval`` and
``hffjax predict`` all rebuild this model from the run's ``config.json``.
"""

import jax
from flax import nnx

from hffjax.config import base_config


class ResidualDense(nnx.Module):
  """``x + W2 relu(W1 LN(x))`` on a flattened input (projected first when widths differ)."""

  def __init__(self, in_dim: int, width: int, *, rngs: nnx.Rngs):
    self.project = nnx.Linear(in_dim, width, rngs=rngs) if in_dim != width else None
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.hidden = nnx.Linear(width, 2 * width, rngs=rngs)
    self.out = nnx.Linear(2 * width, width, rngs=rngs)

  def __call__(self, x, *, train: bool):
    x = x.reshape(x.shape[0], -1)
    x = x if self.project is None else self.project(x)
    a = x + self.out(jax.nn.relu(self.hidden(self.norm(x))))
    return a, a  # (activity the next block sees, read-out its prototypes classify)


def build_blocks(cfg, *, input_shape, rngs):
  dims = [input_shape[0] * input_shape[1] * input_shape[2], *cfg.widths]
  return [ResidualDense(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:], strict=True)]


def get_config():
  c = base_config()
  c.dataset = "fashion_mnist"
  c.validation_split = "train[-5000:]"
  c.num_epochs = 10
  c.learning_rate = 1e-3
  c.lr_schedule = "cosine"
  c.model.kind = "hffjax.configs.fashion_mnist_residual_mlp:build_blocks"
  c.model.widths = (512, 512, 512)
  c.model.interblock_norm = "rms"
  return c
