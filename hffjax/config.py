"""Config loading, ``--config.key=value`` overrides and validation.

Configs are Python files whose ``get_config()`` returns a locked
``ml_collections.ConfigDict``; :func:`base_config` holds every key and its
default so that the files under ``configs/`` only state what they change.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
from collections.abc import Callable

import ml_collections

from hffjax.errors import HFFError

METHODS = ("hff", "bp", "ff")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")
TRAIN_MODES = ("fused", "lean")
# The models' own option lists, repeated here so that this module imports without JAX
# (tests/test_config_validation.py checks they match hffjax.models).
MODEL_KINDS = ("mlp", "cnn", "resnet")  # hffjax.models.registry.BUILDERS
MODEL_DTYPES = ("float32", "bfloat16")  # hffjax.models.registry.DTYPES
RESNET_DEPTHS = (10, 18, 34)  # hffjax.models.resnet.STAGE_SIZES
RESNET_STEMS = ("cifar", "imagenet")  # hffjax.models.resnet.STEMS
RESNET_LEARNERS = ("block", "stage", "groups")  # hffjax.models.resnet.LEARNERS
CONV_NORMS = ("batch", "layer", "none")  # hffjax.models.cnn.CONV_NORMS
READOUTS = ("gap", "grid", "flatten")  # hffjax.models.cnn.READOUTS
INTERBLOCK_NORMS = ("l2", "rms", "none")  # hffjax.models.stack.INTERBLOCK_NORMS
PROTOTYPE_INITS = ("normal", "orthogonal")  # hffjax.models.heads.PROTOTYPE_INITS
FF_GOODNESS = ("sum", "mean")  # hffjax.baselines.ff.GOODNESS


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
  c.train_mode = "fused"  # hff: "fused" (one value_and_grad of the sum) | "lean" (block by block, in order)
  c.eval_batch_size = 1000
  c.optimizer = "adam"  # "adam" | "adamw" | "sgd" (with momentum)
  c.momentum = 0.9  # sgd only
  c.learning_rate = 1e-3
  c.weight_decay = 0.0  # adamw (decoupled) and sgd (L2); on kernels, not on biases, norms or prototypes
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
  c.ff_threshold = 1.0  # method="ff": goodness threshold θ (per unit: on the mean squared activity)
  c.ff_goodness = "sum"  # method="ff": "sum" (logistic on the sum of squares vs θ·units) | "mean"
  c.ff_peer_norm = 0.0  # method="ff": weight of the peer-normalisation penalty (0 = off)
  c.ff_readout = True  # method="ff": also train the one-pass neutral-label read-out (readout_accuracy)

  c.model = ml_collections.ConfigDict()
  c.model.kind = "mlp"  # "mlp" | "cnn" | "resnet"
  c.model.widths = (1000, 1000, 1000)  # mlp
  c.model.channels = (64, 128, 256)  # cnn: one conv stage per block
  c.model.pool = (False, True, True)  # cnn: 2x2 max-pool before the stage
  c.model.depth = 18  # resnet: 10 | 18 | 34 (BasicBlocks per stage: 1,1,1,1 | 2,2,2,2 | 3,4,6,3)
  c.model.width = 64  # resnet: channels of the first stage (then x2, x4, x8)
  c.model.stem = "cifar"  # resnet: "cifar" (3x3 conv) | "imagenet" (7x7/2 conv + 3x3/2 max-pool)
  c.model.learner = "block"  # resnet: the unit of local learning, "block" | "stage" | "groups"
  c.model.learner_blocks = ()  # resnet, learner="groups": residual blocks per learner, e.g. (4, 4) for ResNet-18
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


def config_dirs() -> list[str]:
  """Where shipped configs live: the installed package ``hffjax.configs``, and a checkout's ``configs/``."""
  dirs = []
  spec = importlib.util.find_spec("hffjax.configs")
  if spec is not None and spec.submodule_search_locations:
    dirs.extend(spec.submodule_search_locations)
  checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  if os.path.isdir(checkout):
    dirs.append(checkout)
  return list(dict.fromkeys(os.path.realpath(d) for d in dirs))


def shipped_configs() -> list[str]:
  """The names of the shipped configs (``fashion_mnist_mlp``, ...)."""
  names = {
    f[:-3] for d in config_dirs() for f in os.listdir(d) if f.endswith(".py") and not f.startswith("_")
  }
  return sorted(names)


def find_config(name_or_path: str) -> str:
  """A config file's path: ``name_or_path`` itself if it is a file, else the shipped config of that name."""
  if os.path.isfile(name_or_path):
    return name_or_path
  name = os.path.basename(name_or_path)
  name = name[:-3] if name.endswith(".py") else name
  # A bare name, or the path a checkout's README gives (configs/NAME.py) used outside the checkout.
  if os.path.dirname(name_or_path) in ("", "configs"):
    for folder in config_dirs():
      candidate = os.path.join(folder, f"{name}.py")
      if os.path.isfile(candidate):
        return candidate
  raise HFFError(
    f"config {name_or_path} not found: no such file, and no shipped config of that name "
    f"(shipped: {', '.join(shipped_configs())})"
  )


def load_config(path: str) -> ml_collections.ConfigDict:
  """Imports a config file (a path, or the name of a shipped config) and returns its locked ``get_config()``."""
  path = find_config(path)
  spec = importlib.util.spec_from_file_location("_hffjax_config", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise HFFError(f"config file {path} failed to load: {type(e).__name__}: {_one_line(e)}") from None
  if not hasattr(module, "get_config"):
    raise HFFError(f"config file {path} has no get_config(); define one returning a ConfigDict")
  try:
    config = module.get_config()
  except Exception as e:
    raise HFFError(f"config file {path}: get_config() failed: {type(e).__name__}: {_one_line(e)}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise HFFError(
      f"config file {path}: get_config() returned a {type(config).__name__}, not an ml_collections.ConfigDict; "
      "return hffjax.config.base_config() with your changes"
    )
  config.lock()
  return config


def _one_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return lines[0] if lines else ""


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


# ----------------------------------------------------------------------------- validation
# One check per key of base_config(); validate_config runs them all before anything is built or written.

Check = Callable[[str, object], None]


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
  """A finite int or float (not a bool)."""
  return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _show(v) -> str:
  """``repr`` on one line (a ConfigDict's spans several), shortened."""
  text = " ".join(repr(v).split()) if "\n" in repr(v) else repr(v)
  return text if len(text) <= 200 else text[:197] + "..."


def _typed(v) -> str:
  return f"{_show(v)} ({type(v).__name__})"


def _eg(example: str) -> str:
  return f"; e.g. {example}" if example else ""


def _int(lo: int, hi: int | None = None, eg: str = "") -> Check:
  """An integer >= ``lo`` (and < ``hi``)."""
  rule = "> 0" if lo == 1 else f">= {lo}"
  if hi is not None:
    rule += f" and < {hi}"

  def check(key, v):
    if not _is_int(v):
      raise HFFError(f"{key} must be an integer, got {_typed(v)}{_eg(eg)}")
    if v < lo or (hi is not None and v >= hi):
      raise HFFError(f"{key} must be {rule}, got {v!r}{_eg(eg)}")

  return check


def _real(lo: float | None = None, *, strict: bool = False, eg: str = "") -> Check:
  """A finite number (``> lo`` if ``strict``, else ``>= lo``)."""

  def check(key, v):
    if not _is_real(v):
      raise HFFError(f"{key} must be a finite number, got {_typed(v)}{_eg(eg)}")
    if lo is not None and (v <= lo if strict else v < lo):
      raise HFFError(f"{key} must be {'>' if strict else '>='} {lo:g}, got {v!r}{_eg(eg)}")

  return check


def _bool(key, v):
  if not isinstance(v, bool):
    raise HFFError(f"{key} must be True or False, got {_typed(v)}")


def _str(what: str, *, nonempty: bool = False) -> Check:
  def check(key, v):
    if not isinstance(v, str) or (nonempty and not v.strip()):
      raise HFFError(f"{key} must be {what}, got {_typed(v)}")

  return check


def _model_kind(key, v):
  """A built-in family, or ``"package.module:function"`` naming a block builder (see the block contract)."""
  if isinstance(v, str) and v.count(":") == 1 and all(part.strip() for part in v.split(":")):
    return
  if not any(type(v) is type(c) and v == c for c in MODEL_KINDS):
    raise HFFError(
      f"unknown {key} {_show(v)}; use one of {MODEL_KINDS} or 'package.module:function' naming a block builder"
    )


def _enum(choices: tuple) -> Check:
  def check(key, v):
    if not any(type(v) is type(c) and v == c for c in choices):
      raise HFFError(f"unknown {key} {_show(v)}; use one of {choices}")

  return check


def _seq(
  rule: str,
  item: Callable[[object], bool],
  *,
  eg: str,
  empty: bool = True,
  min_len: int = 1,
  max_len: int | None = None,
  distinct: bool = False,
  whole: Callable[[tuple], bool] | None = None,
) -> Check:
  """A tuple (or list) of items that pass ``item``; ``()`` too if ``empty``."""

  def check(key, v):
    ok = isinstance(v, (tuple, list))
    if ok and (len(v) or not empty):
      ok = min_len <= len(v) <= (max_len if max_len is not None else len(v))
      ok = ok and all(item(x) for x in v)
      ok = ok and (not distinct or len(set(v)) == len(v))
      ok = ok and (whole is None or whole(tuple(v)))
    if not ok:
      got = _show(v) if isinstance(v, (tuple, list)) else _typed(v)
      raise HFFError(f"{key} must be {rule}, got {got}{_eg(eg)}")

  return check


def _check_validation_split(key, v):
  _str("a split such as 'train[-5000:]' or 'validation' ('' = none)")(key, v)
  if not v:
    return
  from hffjax.data.sources import parse_split  # noqa: PLC0415  (config files import this module, keep it light)

  try:
    name, _, _ = parse_split(v)
  except HFFError as e:
    raise HFFError(f"{key}: {e}") from None
  if name == "test":
    raise HFFError(f"{key} must not be the test split, got {v!r}; carve it from train, e.g. train[-5000:]")


def _nonneg_int(x) -> bool:
  return _is_int(x) and x >= 0


def _pos_int(x) -> bool:
  return _is_int(x) and x > 0


CHECKS: dict[str, Check] = {
  "method": _enum(METHODS),
  "dataset": _str(
    "a dataset name: fashion_mnist, mnist, synthetic or a prepared TFDS dataset", nonempty=True
  ),
  "data_dir": _str("a folder path ('' = the default places)"),
  "validation_split": _check_validation_split,
  "classes": _seq(
    "integer labels: distinct, >= 0, at least 2 (() = all)",
    _nonneg_int,
    min_len=2,
    distinct=True,
    eg="(5, 6, 7, 8, 9)",
  ),
  "image_size": _int(0, eg="224 (0 = as stored)"),
  "pixel_mean": _seq(
    "1 to 4 numbers in [0, 1] (pixels scaled to [0, 1]; one, or one per channel; () = estimate)",
    lambda x: _is_real(x) and 0 <= x <= 1,
    max_len=4,
    eg="(0.5,) or (0.49, 0.48, 0.45)",
  ),
  "pixel_std": _seq(
    "1 to 4 finite numbers > 0 (one, or one per channel; () = estimate)",
    lambda x: _is_real(x) and x > 0,
    max_len=4,
    eg="(0.25,) or (0.25, 0.24, 0.26)",
  ),
  "data_workers": _int(0, eg="0 (a reader thread) or 4"),
  "data_prefetch": _int(1, eg="4"),
  "data_on_device": _bool,
  "seed": _int(0, 2**32, eg="0"),
  "num_epochs": _int(1, eg="10"),
  "num_steps": _int(0, eg="0 (= use num_epochs) or 10000"),
  "eval_every_steps": _int(0, eg="0 (= every epoch) or 1000"),
  "batch_size": _int(1, eg="128"),
  "steps_per_call": _int(1, eg="1"),
  "train_mode": _enum(TRAIN_MODES),
  "eval_batch_size": _int(1, eg="1000"),
  "optimizer": _enum(OPTIMIZERS),
  "learning_rate": _real(0, strict=True, eg="1e-3"),
  "weight_decay": _real(0, eg="0.0 or 5e-4"),
  "momentum": _real(0, eg="0.9"),
  "lr_schedule": _enum(LR_SCHEDULES),
  "warmup_steps": _int(0, eg="0 or 500"),
  "augment_flip": _bool,
  "augment_shift": _int(0, eg="0 or 4"),
  "loss_weights": _seq(
    "finite numbers >= 0, one per block, not all 0 (() = all ones)",
    lambda x: _is_real(x) and x >= 0,
    whole=lambda v: any(x > 0 for x in v),
    eg="(1.0, 1.0, 1.0)",
  ),
  "margin": _real(0, eg="0.0 or 0.2"),
  "ensemble_blocks": _seq(
    "block indices: distinct, >= 0 (() = all)", _nonneg_int, distinct=True, eg="(1, 2)"
  ),
  "init_from": _str("a workdir or Orbax checkpoint path ('' = none)"),
  "freeze": _seq("learner indices: distinct, >= 0 (() = none)", _nonneg_int, distinct=True, eg="(0, 1)"),
  "checkpoint_every_steps": _int(0, eg="0 (= at each evaluation) or 1000"),
  "keep_checkpoints": _int(1, eg="3"),
  "log_every_steps": _int(1, eg="50"),
  "ff_threshold": _real(eg="1.0"),
  "ff_goodness": _enum(FF_GOODNESS),
  "ff_peer_norm": _real(0, eg="0.0 or 0.03"),
  "ff_readout": _bool,
  "model.kind": _model_kind,
  "model.widths": _seq(
    "one or more layer widths, integers > 0", _pos_int, empty=False, eg="(1000, 1000, 1000)"
  ),
  "model.channels": _seq(
    "one or more stage channel counts, integers > 0", _pos_int, empty=False, eg="(64, 128, 256)"
  ),
  "model.pool": _seq(
    "True or False per model.channels stage (() = no pooling)",
    lambda x: isinstance(x, bool),
    eg="(False, True, True)",
  ),
  "model.depth": _enum(RESNET_DEPTHS),
  "model.width": _int(1, eg="64"),
  "model.stem": _enum(RESNET_STEMS),
  "model.learner": _enum(RESNET_LEARNERS),
  "model.learner_blocks": _seq(
    "residual blocks per learner, integers > 0, with model.learner='groups' (() = none)",
    _pos_int,
    eg="(4, 4)",
  ),
  "model.norm": _enum(CONV_NORMS),
  "model.readout": _enum(READOUTS),
  "model.readout_grid": _int(1, eg="2"),
  "model.interblock_norm": _enum(INTERBLOCK_NORMS),
  "model.temperature": _real(0, strict=True, eg="0.1"),
  "model.learn_temperature": _bool,
  "model.prototype_init": _enum(PROTOTYPE_INITS),
  "model.dtype": _enum(MODEL_DTYPES),
  "synthetic.num_train": _int(1, eg="2048"),
  "synthetic.num_test": _int(1, eg="512"),
  "synthetic.image_shape": _seq(
    "3 integers > 0 (height, width, channels)", _pos_int, empty=False, min_len=3, max_len=3, eg="(28, 28, 1)"
  ),
  "synthetic.num_classes": _int(2, eg="10"),
}


def _lookup(config: ml_collections.ConfigDict, key: str):
  node = config
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise HFFError(
        f"config has no key {key!r}; build configs on hffjax.config.base_config(), which holds every key"
      )
    node = node[part]
  return node


def _unknown_keys(config: ml_collections.ConfigDict, base: ml_collections.ConfigDict, prefix: str = ""):
  for k in config.keys():
    if k not in base:
      yield prefix + k
    elif isinstance(config[k], ml_collections.ConfigDict) and isinstance(base[k], ml_collections.ConfigDict):
      yield from _unknown_keys(config[k], base[k], f"{prefix}{k}.")


def _not_base_keys(config: ml_collections.ConfigDict) -> list[str]:
  """Keys that :func:`base_config` lacks (a misspelt one leaves the real key at its default); only a
  builder of one's own (``model.kind`` as ``module:function``) takes ``model.*`` keys of its own."""
  custom = ":" in str(config.model.kind) if "model" in config and "kind" in config.model else False
  return [k for k in _unknown_keys(config, base_config()) if not (custom and k.startswith("model."))]


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Refuses values that would fail later or train something silently wrong.

  Every key of :func:`base_config` is checked here (type, range, choices,
  tuple contents), before data is read or a workdir is touched; each bad
  value raises an :class:`HFFError` whose one line names the key, the value
  and what is allowed.
  """
  for key, check in CHECKS.items():
    check(key, _lookup(config, key))
  unknown = _not_base_keys(config)
  if unknown:
    raise HFFError(
      f"unknown config key{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; every key is in "
      "hffjax.config.base_config() (only a builder named by model.kind as 'module:function' takes model.* keys of its own)"
    )
  mean, std = tuple(config.pixel_mean), tuple(config.pixel_std)
  if bool(mean) != bool(std):
    raise HFFError(
      f"give both pixel_mean and pixel_std, or neither (then they are estimated); got {mean} and {std}"
    )
  if len(mean) != len(std):
    raise HFFError(
      f"pixel_mean has {len(mean)} values but pixel_std has {len(std)}; give the same number (one, or one per channel)"
    )
  if config.freeze and not config.init_from:
    raise HFFError(
      f"freeze={tuple(config.freeze)} keeps learners at their initial values; "
      "set init_from to the run to load them from"
    )
  if config.train_mode == "lean" and config.method != "hff":
    raise HFFError(f"train_mode='lean' trains HFF block by block; method={config.method!r} needs 'fused'")
  m = config.model
  if m.kind == "resnet" and (m.learner == "groups" or m.learner_blocks or config.freeze):
    from hffjax.models.resnet import learner_blocks, stage_sizes  # noqa: PLC0415  (keeps config imports light)
    from hffjax.models.stack import check_frozen  # noqa: PLC0415

    # Checked here too (the model checks every kind) so a run is refused before it starts.
    check_frozen(config.freeze, len(learner_blocks(m.learner, stage_sizes(m.depth), tuple(m.learner_blocks))))
  if m.kind == "cnn" and m.pool and len(m.pool) != len(m.channels):
    raise HFFError(
      f"model.pool has {len(m.pool)} entries but model.channels has {len(m.channels)}; "
      "give one per stage, or () for no pooling"
    )


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """Rebuilds a config saved with :func:`to_json` on top of :func:`base_config`."""
  saved = json.loads(text)
  if not isinstance(saved, dict):
    raise ValueError(f"a JSON {type(saved).__name__}, not an object of config keys")
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
  # Keys today's code does not know (a run saved when any key was accepted) had no effect: left out,
  # so that such a run still evaluates and resumes.
  for key in _not_base_keys(config):
    parent, _, leaf = key.rpartition(".")
    del (config[parent] if parent else config)[leaf]
  config.lock()
  return config
