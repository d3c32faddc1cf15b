"""hffjax: Hyperspherical Forward-Forward in JAX/Flax.

Every block classifies its own features against learned unit-norm class
prototypes, so training and inference each take one forward pass.
"""

from hffjax.errors import HFFError
from hffjax.losses import (
  cosine_logits,
  ff_goodness_loss,
  goodness,
  hff_block_loss,
  l2_normalize,
)
from hffjax.models import ConvBlock, DenseBlock, HFFNet, PrototypeHead, build_model
from hffjax.train import (
  TrainState,
  combine_logits,
  evaluate_workdir,
  make_train_step,
  predict,
  train_and_evaluate,
)

__version__ = "0.1.0"

__all__ = [
  "ConvBlock",
  "DenseBlock",
  "HFFError",
  "HFFNet",
  "PrototypeHead",
  "TrainState",
  "build_model",
  "combine_logits",
  "cosine_logits",
  "evaluate_workdir",
  "ff_goodness_loss",
  "goodness",
  "hff_block_loss",
  "l2_normalize",
  "make_train_step",
  "predict",
  "train_and_evaluate",
]
