"""validate_config checks every key of base_config() up front, each refusal one line naming the key and value.

The table below has a row for every leaf key; a key added to base_config()
without a row (and a check in hffjax.config.CHECKS) fails
test_every_key_has_a_row.
"""

import glob
import os

import ml_collections
import pytest
from conftest import ROOT, config_leaves, tree_hashes

from hffjax import config as config_lib
from hffjax.config import base_config, load_config, validate_config
from hffjax.errors import HFFError
from hffjax.main import run

NAN, INF = float("nan"), float("inf")
TINY = os.path.join(ROOT, "configs", "tiny.py")

# key -> [(bad value, fragment the message must hold), ...]
BAD = {
  "method": [("sgd", "unknown method"), (1, "unknown method")],
  "dataset": [("", "dataset must be a dataset name"), (3, "dataset must be")],
  "data_dir": [(3, "data_dir must be a folder path"), (None, "data_dir must be")],
  "validation_split": [
    ("train[5000]", "does not parse"),
    ("test[:10]", "must not be the test split"),
    (5, "validation_split must be"),
  ],
  "classes": [
    ((2, 2), "classes must be integer labels"),
    ((-1, 2), "classes must be integer labels"),
    ((1.0, 2.0), "classes must be integer labels"),
    ((3,), "at least 2"),
    ("ab", "classes must be integer labels"),
  ],
  "image_size": [(-1, "image_size must be >= 0"), (1.5, "image_size must be an integer")],
  "pixel_mean": [
    ((1.5,), "pixel_mean must be 1 to 4 numbers in [0, 1]"),
    ((-0.1,), "pixel_mean must be"),
    ((0.1,) * 5, "pixel_mean must be"),
    ((NAN,), "pixel_mean must be"),
    (0.5, "pixel_mean must be"),
  ],
  "pixel_std": [
    ((0.0,), "pixel_std must be"),
    ((-1.0,), "pixel_std must be"),
    ((INF,), "pixel_std must be"),
    (("a",), "pixel_std must be"),
  ],
  "data_workers": [(-1, "data_workers must be >= 0"), ("2", "data_workers must be an integer")],
  "data_prefetch": [(0, "data_prefetch must be > 0"), (2.0, "data_prefetch must be an integer")],
  "data_on_device": [
    (1, "data_on_device must be True or False"),
    ("yes", "data_on_device must be True or False"),
  ],
  "seed": [
    (-1, "seed must be >= 0"),
    (2**32, "seed must be >= 0 and < 4294967296"),
    (1.0, "seed must be an integer"),
  ],
  "num_epochs": [(0, "num_epochs must be > 0"), ("two", "num_epochs must be an integer")],
  "num_steps": [(-1, "num_steps must be >= 0"), (10.5, "num_steps must be an integer")],
  "eval_every_steps": [(-1, "eval_every_steps must be >= 0")],
  "batch_size": [
    (0, "batch_size must be > 0"),
    (-4, "batch_size must be > 0"),
    (1.5, "batch_size must be an integer, got 1.5 (float)"),
    (True, "batch_size must be an integer, got True (bool)"),
    ("64", "batch_size must be an integer"),
  ],
  "steps_per_call": [(0, "steps_per_call must be > 0")],
  "train_mode": [("layerwise", "unknown train_mode"), ("", "unknown train_mode")],
  "eval_batch_size": [(0, "eval_batch_size must be > 0")],
  "optimizer": [("lamb", "unknown optimizer"), ("SGD", "unknown optimizer")],
  "learning_rate": [
    (0.0, "learning_rate must be > 0"),
    (-1e-3, "learning_rate must be > 0"),
    (NAN, "learning_rate must be a finite number"),
    (INF, "learning_rate must be a finite number"),
    ("fast", "learning_rate must be a finite number"),
    (True, "learning_rate must be a finite number"),
  ],
  "weight_decay": [(-0.1, "weight_decay must be >= 0"), (NAN, "weight_decay must be a finite number")],
  "momentum": [(-0.1, "momentum must be >= 0"), (INF, "momentum must be a finite number")],
  "lr_schedule": [("linear", "unknown lr_schedule")],
  "warmup_steps": [(-5, "warmup_steps must be >= 0")],
  "augment_flip": [(1, "augment_flip must be True or False")],
  "augment_shift": [(-1, "augment_shift must be >= 0"), (True, "augment_shift must be an integer")],
  "loss_weights": [
    ((1.0, -1.0), "loss_weights must be finite numbers >= 0"),
    ((0.0, 0.0), "not all 0"),
    ((NAN,), "loss_weights must be"),
  ],
  "margin": [(-0.1, "margin must be >= 0"), (INF, "margin must be a finite number")],
  "ensemble_blocks": [
    ((-1,), "ensemble_blocks must be"),
    ((1, 1), "distinct"),
    ((0.5,), "ensemble_blocks must be"),
  ],
  "init_from": [(None, "init_from must be"), (3, "init_from must be")],
  "freeze": [
    ((-1,), "freeze must be learner indices"),
    ((0.5,), "freeze must be"),
    ((True,), "freeze must be"),
  ],
  "checkpoint_every_steps": [(-1, "checkpoint_every_steps must be >= 0")],
  "keep_checkpoints": [(0, "keep_checkpoints must be > 0")],
  "log_every_steps": [(0, "log_every_steps must be > 0"), (-1, "log_every_steps must be > 0")],
  "ff_threshold": [
    (NAN, "ff_threshold must be a finite number"),
    (INF, "ff_threshold must be a finite number"),
    ("2", "ff_threshold must be a finite number"),
  ],
  "ff_goodness": [("squares", "unknown ff_goodness"), ("", "unknown ff_goodness")],
  "ff_readout": [(1, "ff_readout must be True or False"), ("yes", "ff_readout must be True or False")],
  "ff_peer_norm": [(-0.1, "ff_peer_norm must be"), (NAN, "ff_peer_norm must be")],
  "model.kind": [("transformer", "unknown model.kind"), ("", "unknown model.kind")],
  "model.widths": [
    ((0,), "model.widths must be"),
    ((), "model.widths must be one or more"),
    ((32.5,), "model.widths must be"),
    ((True,), "model.widths must be"),
  ],
  "model.channels": [((), "model.channels must be one or more"), ((-4,), "model.channels must be")],
  "model.pool": [((1, 0), "model.pool must be True or False"), (True, "model.pool must be")],
  "model.depth": [(50, "unknown model.depth"), (18.0, "unknown model.depth"), ("18", "unknown model.depth")],
  "model.width": [(0, "model.width must be > 0"), (64.0, "model.width must be an integer")],
  "model.stem": [("vit", "unknown model.stem")],
  "model.learner": [("layer", "unknown model.learner")],
  "model.learner_blocks": [
    ((0, 8), "model.learner_blocks must be"),
    ((4.0,), "model.learner_blocks must be"),
  ],
  "model.norm": [("group", "unknown model.norm")],
  "model.readout": [("sideways", "unknown model.readout")],
  "model.readout_grid": [
    (0, "model.readout_grid must be > 0"),
    (2.0, "model.readout_grid must be an integer"),
  ],
  "model.interblock_norm": [("l1", "unknown model.interblock_norm")],
  "model.temperature": [
    (0.0, "model.temperature must be > 0"),
    (-0.1, "model.temperature must be > 0"),
    (NAN, "model.temperature must be a finite number"),
  ],
  "model.learn_temperature": [("yes", "model.learn_temperature must be True or False")],
  "model.prototype_init": [("uniform", "unknown model.prototype_init")],
  "model.dtype": [("bogus", "unknown model.dtype"), ("float16", "unknown model.dtype")],
  "synthetic.num_train": [(0, "synthetic.num_train must be > 0")],
  "synthetic.num_test": [(0, "synthetic.num_test must be > 0")],
  "synthetic.image_shape": [
    ((28, 28), "synthetic.image_shape must be 3 integers > 0"),
    ((28, 0, 1), "synthetic.image_shape must be"),
    ((28.0, 28, 1), "synthetic.image_shape must be"),
    ((), "synthetic.image_shape must be"),
  ],
  "synthetic.num_classes": [
    (0, "synthetic.num_classes must be >= 2"),
    (1, "synthetic.num_classes must be >= 2"),
  ],
}
ROWS = [(key, value, fragment) for key, rows in BAD.items() for value, fragment in rows]


def _put(c, key, value):
  """Sets ``key`` to ``value`` past ConfigDict's type-safe assignment (so wrongly typed values get in too)."""
  *path, leaf = key.split(".")
  for part in path:
    c = c[part]
  c._fields[leaf] = value


def _refusal(c) -> str:
  with pytest.raises(HFFError) as info:
    validate_config(c)
  message = str(info.value)
  assert "\n" not in message and message.strip() == message, message
  return message


def test_every_key_has_a_row_and_a_check():
  keys = {k for k, _ in config_leaves(base_config())}
  assert set(BAD) == keys
  assert set(config_lib.CHECKS) == keys


@pytest.mark.parametrize("key,value,fragment", ROWS, ids=[f"{k}={v!r}" for k, v, _ in ROWS])
def test_bad_value_is_refused_in_one_line(key, value, fragment):
  c = base_config()
  _put(c, key, value)
  message = _refusal(c)
  assert fragment in message, message
  assert key in message, message
  assert repr(value) in message, message


def test_base_config_and_every_shipped_config_validate():
  validate_config(base_config())
  paths = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py")) if "__init__" not in p)
  assert paths
  for path in paths:
    validate_config(load_config(path))


def test_model_option_lists_match_the_models():
  """config.py repeats the models' option lists so that it imports without JAX; they must agree."""
  from hffjax.baselines import ff
  from hffjax.models import cnn, heads, registry, resnet, stack

  assert config_lib.MODEL_KINDS == tuple(registry.BUILDERS)
  assert config_lib.MODEL_DTYPES == registry.DTYPES
  assert config_lib.RESNET_DEPTHS == tuple(resnet.STAGE_SIZES)
  assert config_lib.RESNET_STEMS == resnet.STEMS
  assert config_lib.RESNET_LEARNERS == resnet.LEARNERS
  assert config_lib.CONV_NORMS == cnn.CONV_NORMS
  assert config_lib.READOUTS == cnn.READOUTS
  assert config_lib.INTERBLOCK_NORMS == stack.INTERBLOCK_NORMS
  assert config_lib.PROTOTYPE_INITS == heads.PROTOTYPE_INITS
  assert config_lib.FF_GOODNESS == ff.GOODNESS


def test_good_values_pass():
  c = base_config()
  c.classes, c.pixel_mean, c.pixel_std = (5, 6, 7), (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)
  c.loss_weights, c.ensemble_blocks, c.init_from, c.freeze = (0.0, 1.0, 1.0), (1, 2), "/some/run", (0, 1)
  c.validation_split, c.learning_rate, c.seed = "train[-10%:]", 1, 2**32 - 1
  c.model.kind, c.model.channels, c.model.pool, c.model.depth = "cnn", (4, 8), (), 34
  validate_config(c)


@pytest.mark.parametrize(
  "changes,fragment",
  [
    ({"pixel_mean": (0.5,)}, "give both pixel_mean and pixel_std"),
    ({"pixel_std": (0.2,)}, "give both pixel_mean and pixel_std"),
    ({"pixel_mean": (0.5, 0.5, 0.5), "pixel_std": (0.2,)}, "pixel_mean has 3 values but pixel_std has 1"),
    ({"freeze": (0, 1)}, "freeze=(0, 1) keeps learners at their initial values; set init_from"),
    ({"model.kind": "cnn", "model.channels": (4, 8), "model.pool": (True,)}, "model.pool has 1 entries"),
    (
      {"model.kind": "resnet", "model.learner": "groups", "model.learner_blocks": (3, 4)},
      "add up to the 8 residual blocks (stages of (2, 2, 2, 2)), got (3, 4); e.g. (4, 4)",
    ),
    (
      {"model.kind": "resnet", "model.depth": 34, "model.learner": "groups"},
      "add up to the 16 residual blocks (stages of (3, 4, 6, 3)), got (); e.g. (8, 8)",
    ),
    (
      {"model.kind": "resnet", "model.learner": "stage", "model.learner_blocks": (4, 4)},
      "model.learner_blocks=(4, 4) groups blocks only with model.learner='groups' (it is 'stage')",
    ),
  ],
)
def test_keys_that_must_agree(changes, fragment):
  c = base_config()
  for key, value in changes.items():
    _put(c, key, value)
  assert fragment in _refusal(c)


def test_missing_keys_and_sections_are_refused_in_one_line():
  c = base_config()
  del c["log_every_steps"]
  assert "config has no key 'log_every_steps'" in _refusal(c)
  c = base_config()
  _put(c, "model", "mlp")
  assert "config has no key 'model.kind'" in _refusal(c)
  c = base_config()
  _put(c, "model.widths", ml_collections.ConfigDict({"a": 1, "b": 2}))
  assert "model.widths must be" in _refusal(c)


def test_a_key_base_config_lacks_is_refused_unless_a_builder_of_ones_own_takes_it():
  """A misspelt key in a config file (``c.batchsize = 3``) would leave ``batch_size`` at its default."""
  c = base_config()
  c.batchsize = 3
  assert "unknown config key 'batchsize'; every key is in hffjax.config.base_config()" in _refusal(c)
  c = base_config()
  c.model.widht = 64  # misspelt
  c.synthetic.classes = 4
  assert "unknown config keys 'model.widht', 'synthetic.classes'" in _refusal(c)
  c = base_config()
  c.model.kind = "mypackage.blocks:build"  # its builder reads config.model's keys of its own
  c.model.hidden = 64
  validate_config(c)
  c.learning_rte = 1e-3
  assert "unknown config key 'learning_rte'" in _refusal(c)


def test_a_saved_config_with_keys_base_config_lacks_restores_without_them():
  """A run saved when any key was accepted (``c.notes``) still evaluates and resumes."""
  import json

  saved = json.loads(config_lib.to_json(load_config("tiny")))
  saved["notes"], saved["model"]["widht"] = "first try", 3
  restored = config_lib.from_json(json.dumps(saved))
  assert "notes" not in restored and "widht" not in restored.model
  validate_config(restored)
  assert config_lib.to_json(restored) == config_lib.to_json(load_config("tiny"))
  saved["model"]["kind"] = "mypackage.blocks:build"  # a builder of one's own keeps its model.* keys
  assert config_lib.from_json(json.dumps(saved)).model.widht == 3


@pytest.mark.parametrize(
  "body,fragment",
  [
    ("def get_config():\n  raise ValueError('no\\nway')\n", "get_config() failed: ValueError: no"),
    ("def get_config():\n  return {'method': 'hff'}\n", "returned a dict, not an ml_collections.ConfigDict"),
    ("def get_config():\n  return None\n", "returned a NoneType"),
    ("get_config = 3\n", "get_config() failed: TypeError"),
    ("def get_config(:\n", "failed to load: SyntaxError"),
    ("raise RuntimeError('a\\nb')\n", "failed to load: RuntimeError: a"),
  ],
)
def test_bad_config_file_is_one_line_naming_it(tmp_path, body, fragment):
  path = tmp_path / "bad_config.py"
  path.write_text(body)
  with pytest.raises(HFFError) as info:
    load_config(str(path))
  message = str(info.value)
  assert "\n" not in message and str(path) in message and fragment in message, message


def test_cli_refuses_a_bad_value_before_touching_the_workdir(capsys, tmp_path):
  workdir = str(tmp_path / "run")
  assert run(["train", "--config", TINY, "--workdir", workdir, "--config.num_epochs=1"]) == 0
  capsys.readouterr()
  before = tree_hashes(workdir)
  assert any(name.endswith("metrics.jsonl") for name in before)
  code = run(["train", "--config", TINY, "--workdir", workdir, "--config.log_every_steps=0"])
  err = capsys.readouterr().err.strip()
  assert code == 2
  assert len(err.splitlines()) == 1 and err.startswith("hffjax: error:"), err
  assert "log_every_steps must be > 0, got 0" in err, err
  assert tree_hashes(workdir) == before
