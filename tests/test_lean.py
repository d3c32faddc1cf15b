"""train_mode="lean": block by block in one jitted step, the same parameters as the fused step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hffjax import train
from hffjax.baselines import build_bp_model
from hffjax.config import base_config
from hffjax.data import make_synthetic
from hffjax.models import build_model
from hffjax.train.state import TrainState, split_model
from hffjax.train.step import make_train_step


def _deep(kind: str, depth: int):
  c = base_config().model
  c.kind, c.widths, c.channels, c.readout = kind, (32,) * depth, (8,) * depth, "gap"
  c.pool = (False, True) + (False,) * (depth - 2)  # stages past the second keep their resolution
  return c


def _compiled(model, lean: bool):
  graphdef, params, stats = split_model(model)
  opt = optax.adam(1e-3)
  state = TrainState(
    step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats, opt_state=opt.init(params)
  )
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (32, 16, 16, 1)), jnp.uint8)
  y = jnp.arange(32) % 10
  return jax.jit(make_train_step(graphdef, opt, lean=lean)).lower(state, x, y).compile(), state, x, y


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_lean_and_fused_give_the_same_parameters_after_3_steps(kind):
  """Same maths, another schedule: the parameters agree to float rounding (rtol 1e-6, atol 1e-7)."""
  finals = []
  for lean in (False, True):
    step, state, x, y = _compiled(
      build_model(_deep(kind, 4), input_shape=(16, 16, 1), num_classes=10, seed=0), lean
    )
    for _ in range(3):
      state, _ = step(state, x, y)
    finals.append(jax.device_get(state))
  for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_lean_peak_temp_memory_at_depth_16():
  """The compiled lean step's temporary memory at depth 16: at most the fused step's, below backprop's."""
  cfg = _deep("cnn", 16)
  build = dict(input_shape=(16, 16, 1), num_classes=10, seed=0)
  temp = {}
  for name, model, lean in (
    ("fused", build_model(cfg, **build), False),
    ("lean", build_model(cfg, **build), True),
    ("bp", build_bp_model(cfg, **build), False),
  ):
    temp[name] = _compiled(model, lean)[0].memory_analysis().temp_size_in_bytes
  assert temp["lean"] <= temp["fused"] and temp["lean"] < temp["bp"], temp


def test_lean_mode_through_the_loop(tiny_config, tmp_path):
  tiny_config.train_mode, tiny_config.num_epochs = "lean", 1
  record = train.train_and_evaluate(tiny_config, str(tmp_path / "lean"), progress=False)
  tiny_config.train_mode = "fused"
  fused = train.train_and_evaluate(tiny_config, str(tmp_path / "fused"), progress=False)
  assert record["test_accuracy"] == fused["test_accuracy"] and record["train_loss"] == fused["train_loss"]
  tiny_config.method, tiny_config.train_mode = "bp", "lean"
  with pytest.raises(Exception, match="needs 'fused'"):
    train.setup(
      tiny_config,
      dataset=make_synthetic(num_train=64, num_test=8, image_shape=(8, 8, 1), num_classes=4, seed=0),
    )
