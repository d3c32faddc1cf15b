"""Flax NNX models: blocks of every family, prototype heads, the HFF network and its builder.

``heads`` (prototype heads), ``stack`` (the block stack and :class:`HFFNet`),
one file per block family (``mlp``, ``cnn``, ``resnet``) and ``registry``
(``model.kind`` → builder; the block contract) — see :mod:`hffjax.models.registry`.
"""

from hffjax.models.cnn import CONV_NORMS, READOUTS, ConvBlock
from hffjax.models.heads import PROTOTYPE_INITS, PrototypeHead
from hffjax.models.mlp import DenseBlock
from hffjax.models.registry import BUILDERS, build_blocks, build_model
from hffjax.models.resnet import BasicBlock, ResNetLearner, Stem
from hffjax.models.stack import INTERBLOCK_NORMS, BlockStack, HFFNet, interblock_normalize, output_shapes

__all__ = [
  "BUILDERS",
  "CONV_NORMS",
  "INTERBLOCK_NORMS",
  "PROTOTYPE_INITS",
  "READOUTS",
  "BasicBlock",
  "BlockStack",
  "ConvBlock",
  "DenseBlock",
  "HFFNet",
  "PrototypeHead",
  "ResNetLearner",
  "Stem",
  "build_blocks",
  "build_model",
  "interblock_normalize",
  "output_shapes",
]
