"""Config loading, ``--config.key=value`` overrides and validation.

Configs are Python files whose ``get_config()`` returns a locked
``ml_collections.ConfigDict``; :func:`base_config` holds every key and its
default so that the files under ``configs/`` only state what they change.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os

import ml_collections

from hffjax.errors import HFFError

METHODS = ("hff", "bp", "ff")


def base_config() -> ml_collections.ConfigDict:
  """Every config key with its default. Configs override a few of them."""
  c = ml_collections.ConfigDict()
  c.method = "hff"  # "hff" | "bp" (backprop baseline) | "ff" (Forward-Forward baseline)
  c.dataset = "fashion_mnist"
  c.data_dir = ""  # a folder with the four IDX .gz files, or a TFDS data dir
  c.validation_split = ""  # e.g. "train[-5000:]" (carved from train) or "validation"; "" = none
  c.classes = ()  # keep only these labels, relabelled 0..k-1 in this order; empty = all
  c.image_size = 0  # crop/resize images to this size (needed when their sizes vary); 0 = as stored
  c.pixel_mean = ()  # of pixels scaled to [0, 1], one value or one per channel; () = estimate
  c.pixel_std = ()  # from <= 10k evenly spaced training records (and keep with the run)
  c.data_workers = 0  # grain worker processes reading and decoding batches; 0 = a reader thread
  c.data_prefetch = 4  # batches read ahead on the host (per process)
  c.data_on_device = False  # keep the whole training split on every device; batches gathered there
  c.seed = 0
  c.num_epochs = 10
  c.num_steps = 0  # > 0 overrides num_epochs
  c.eval_every_steps = 0  # 0 = at the end of every epoch
  c.batch_size = 128
  c.steps_per_call = 1  # training steps fused into one device call (lax.scan); metrics fetched per call
  c.eval_batch_size = 1000
  c.optimizer = "adam"  # "adam" | "adamw"
  c.learning_rate = 1e-3
  c.weight_decay = 0.0  # adamw only; applied to kernels, not to biases, norms or prototypes
  c.lr_schedule = "constant"  # "constant" | "cosine"
  c.warmup_steps = 0
  c.augment_flip = False  # random horizontal flips of training images
  c.augment_shift = 0  # random translations of training images by up to this many pixels
  c.loss_weights = ()  # λ_l per block; empty = all ones
  c.margin = 0.0  # additive cosine margin on the target class
  c.ensemble_blocks = ()  # blocks summed by the "ensemble" rule; empty = all
  c.init_from = ""  # a workdir or Orbax checkpoint whose matching parameters start this run
  c.freeze = ()  # learners whose blocks stay fixed (their prototype heads still train), e.g. (0, 1, 2)
  c.checkpoint_every_steps = 0  # 0 = save at each evaluation only
  c.keep_checkpoints = 3
  c.log_every_steps = 50
  c.ff_threshold = 2.0  # method="ff": goodness threshold θ

  c.model = ml_collections.ConfigDict()
  c.model.kind = "mlp"  # "mlp" | "cnn" | "resnet"
  c.model.widths = (1000, 1000, 1000)  # mlp
  c.model.channels = (64, 128, 256)  # cnn: one conv stage per block
  c.model.pool = (False, True, True)  # cnn: 2x2 max-pool before the stage
  c.model.depth = 18  # resnet: 10 | 18 | 34 (BasicBlocks per stage: 1,1,1,1 | 2,2,2,2 | 3,4,6,3)
  c.model.width = 64  # resnet: channels of the first stage (then x2, x4, x8)
  c.model.stem = "cifar"  # resnet: "cifar" (3x3 conv) | "imagenet" (7x7/2 conv + 3x3/2 max-pool)
  c.model.learner = "block"  # resnet: the unit of local learning, "block" (residual block) | "stage"
  c.model.norm = "batch"  # cnn, resnet: "batch" | "layer" | "none"
  c.model.readout = "gap"  # cnn, resnet: "gap" | "grid" | "flatten"
  c.model.readout_grid = 2  # readout="grid": average-pool to grid x grid, then flatten
  c.model.interblock_norm = "l2"  # "l2" | "rms" | "none"
  c.model.temperature = 0.1  # τ; logits are cos/τ
  c.model.learn_temperature = False
  c.model.prototype_init = "orthogonal"  # "orthogonal" | "normal"
  c.model.dtype = "float32"  # compute dtype; parameters stay float32

  c.synthetic = ml_collections.ConfigDict()
  c.synthetic.num_train = 2048
  c.synthetic.num_test = 512
  c.synthetic.image_shape = (28, 28, 1)
  c.synthetic.num_classes = 10
  return c


def load_config(path: str) -> ml_collections.ConfigDict:
  """Imports a config file and returns its locked ``get_config()``."""
  if not os.path.isfile(path):
    raise HFFError(f"config file {path} not found; pass e.g. --config configs/fashion_mnist_mlp.py")
  spec = importlib.util.spec_from_file_location("_hffjax_config", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise HFFError(f"config file {path} failed to load: {type(e).__name__}: {e}") from None
  if not hasattr(module, "get_config"):
    raise HFFError(f"config file {path} has no get_config(); define one returning a ConfigDict")
  config = module.get_config()
  config.lock()
  return config


def _parse_value(text: str, current):
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if isinstance(current, bool):
    if isinstance(value, str) and value.lower() in ("true", "false"):
      return value.lower() == "true"
    if not isinstance(value, bool):
      raise HFFError(f"expected True or False, got {text!r}")
  elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  elif isinstance(current, tuple) and isinstance(value, (list, int, float)):
    value = tuple(value) if isinstance(value, list) else (value,)
  return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> None:
  """Applies ``{"model.temperature": "0.05", ...}`` to a locked config, type-checked."""
  for key, text in overrides.items():
    parent, leaf = config, key
    if "." in key:
      path, leaf = key.rsplit(".", 1)
      for part in path.split("."):
        if not isinstance(parent, ml_collections.ConfigDict) or part not in parent:
          raise HFFError(f"unknown config key {key!r}; see the config reference in README.md")
        parent = parent[part]
    if not isinstance(parent, ml_collections.ConfigDict) or leaf not in parent:
      raise HFFError(f"unknown config key {key!r}; see the config reference in README.md")
    current = parent[leaf]
    try:
      value = _parse_value(text, current)
      parent[leaf] = value
    except HFFError as e:
      raise HFFError(f"--config.{key}: {e}") from None
    except (TypeError, ValueError) as e:
      raise HFFError(
        f"--config.{key}={text!r} does not fit the key's type {type(current).__name__} ({e})"
      ) from None


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Refuses values that would fail later or train something silently wrong."""
  if config.method not in METHODS:
    raise HFFError(f"unknown method {config.method!r}; use one of {METHODS}")
  for key in ("num_epochs", "batch_size", "eval_batch_size", "steps_per_call"):
    if config[key] <= 0:
      raise HFFError(f"{key} must be > 0, got {config[key]}")
  if config.learning_rate <= 0:
    raise HFFError(f"learning_rate must be > 0, got {config.learning_rate}")
  if config.optimizer not in ("adam", "adamw"):
    raise HFFError(f"unknown optimizer {config.optimizer!r}; use 'adam' or 'adamw'")
  if config.lr_schedule not in ("constant", "cosine"):
    raise HFFError(f"unknown lr_schedule {config.lr_schedule!r}; use 'constant' or 'cosine'")
  for key in ("num_steps", "eval_every_steps", "checkpoint_every_steps", "image_size", "data_workers"):
    if config[key] < 0:
      raise HFFError(f"{key} must be >= 0, got {config[key]}")
  if config.log_every_steps <= 0 or config.data_prefetch <= 0:
    raise HFFError("log_every_steps and data_prefetch must be > 0")
  if config.validation_split:
    from hffjax.data.sources import parse_split  # noqa: PLC0415  (config files import this module)

    parse_split(config.validation_split)
  if bool(config.pixel_mean) != bool(config.pixel_std):
    raise HFFError("give both pixel_mean and pixel_std, or neither (then they are estimated)")
  if any(s <= 0 for s in config.pixel_std):
    raise HFFError(f"pixel_std values must be > 0, got {config.pixel_std}")
  if not all(isinstance(c, int) and not isinstance(c, bool) for c in config.classes):
    raise HFFError(f"classes must be integer labels, e.g. (5, 6, 7, 8, 9); got {config.classes}")
  if config.augment_shift < 0:
    raise HFFError(f"augment_shift must be >= 0, got {config.augment_shift}")
  if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in config.freeze):
    raise HFFError(f"freeze must be learner indices >= 0, e.g. (0, 1); got {config.freeze}")
  if config.freeze and not config.init_from:
    raise HFFError(
      "freeze keeps learners at their initial values; set init_from to the run to load them from"
    )
  if config.margin < 0:
    raise HFFError(f"margin must be >= 0, got {config.margin}")


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """Rebuilds a config saved with :func:`to_json` on top of :func:`base_config`."""
  saved = json.loads(text)
  config = base_config()

  def merge(dst, src):
    for k, v in src.items():
      if isinstance(v, dict) and k in dst and isinstance(dst[k], ml_collections.ConfigDict):
        merge(dst[k], v)
      elif k in dst:
        dst[k] = tuple(v) if isinstance(dst[k], tuple) else v
      else:
        dst[k] = v

  merge(config, saved)
  config.lock()
  return config
