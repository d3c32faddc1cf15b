"""hffjax: Hyperspherical Forward-Forward in JAX/Flax.

Every block of the network classifies its own features against learned
unit-norm class prototypes, so one forward pass trains every block at once
(each from its own local loss) and one forward pass predicts.

Example::

  from hffjax import predict, train_and_evaluate
  from hffjax.config import load_config
  from hffjax.train import restore_experiment

  config = load_config("fashion_mnist_mlp")  # a shipped config, by name or path
  config.num_epochs = 1
  record = train_and_evaluate(config, "runs/mlp")  # checkpoints, metrics, resume
  exp, state, _ = restore_experiment("runs/mlp")
  classes = predict(exp.model(state), exp.dataset.test_images[:8])

Submodules: ``losses`` (pure losses), ``models`` (blocks, heads, HFFNet),
``train`` (steps, loop, evaluation), ``data``, ``io``, ``sharding``, ``config``.
The names below are imported on first use, so ``import hffjax`` (and the
``hffjax`` command's ``--help``) does not load JAX.
"""

from __future__ import annotations

import importlib

from hffjax.errors import HFFError

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
  "cosine_logits": "hffjax.losses",
  "ff_goodness_loss": "hffjax.losses",
  "goodness": "hffjax.losses",
  "hff_block_loss": "hffjax.losses",
  "l2_normalize": "hffjax.losses",
  "BasicBlock": "hffjax.models",
  "ConvBlock": "hffjax.models",
  "DenseBlock": "hffjax.models",
  "HFFNet": "hffjax.models",
  "PrototypeHead": "hffjax.models",
  "build_model": "hffjax.models",
  "TrainState": "hffjax.train",
  "combine_logits": "hffjax.train",
  "evaluate_workdir": "hffjax.train",
  "fit": "hffjax.train",
  "make_train_step": "hffjax.train",
  "predict": "hffjax.train",
  "train_and_evaluate": "hffjax.train",
}

# ``help(hffjax)`` documents these in full: the functions a user starts from. The classes above
# (``HFFNet``, blocks, ``TrainState``) are documented in ``hffjax.models`` and ``hffjax.train``.
__all__ = ["HFFError", *sorted(name for name in _EXPORTS if name[0].islower())]


def __getattr__(name: str):
  module = _EXPORTS.get(name)
  if module is None:
    raise AttributeError(f"module 'hffjax' has no attribute {name!r}")
  value = getattr(importlib.import_module(module), name)
  globals()[name] = value  # later lookups skip this function
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
