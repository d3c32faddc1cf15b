"""The optimizers a config names."""

import jax
import jax.numpy as jnp
import numpy as np

from hffjax.config import base_config
from hffjax.train.optim import make_optimizer


def _params():
  return {"blocks": {0: {"linear": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)}}}}


def test_sgd_decays_kernels_only_and_uses_momentum():
  c = base_config()
  c.optimizer, c.learning_rate, c.weight_decay, c.momentum = "sgd", 0.1, 0.5, 0.9
  tx = make_optimizer(c, total_steps=10)
  params = _params()
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, state = tx.update(zero, tx.init(params), params)
  layer = updates["blocks"][0]["linear"]
  np.testing.assert_allclose(layer["kernel"], -0.1 * 0.5 * 2.0)  # the L2 term's gradient, wd * w
  np.testing.assert_allclose(layer["bias"], 0.0)
  ones = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(ones, state, params)  # momentum: 0.9 * previous + this step's
  np.testing.assert_allclose(updates["blocks"][0]["linear"]["bias"], -0.1 * (0.9 * 0 + 1.0))
  np.testing.assert_allclose(updates["blocks"][0]["linear"]["kernel"], -0.1 * (0.9 * 1.0 + 2.0), rtol=1e-6)


def test_ff_read_out_is_trained_by_adam_whatever_trains_the_blocks():
  c = base_config()
  c.method, c.optimizer, c.learning_rate, c.momentum = "ff", "sgd", 0.1, 0.0
  params = {**_params(), "readout": {"kernel": jnp.zeros((2, 2))}}
  tx = make_optimizer(c, total_steps=10)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-4), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["blocks"][0]["linear"]["bias"], -0.1 * 1e-4)  # SGD
  np.testing.assert_allclose(
    updates["readout"]["kernel"], -1e-3, rtol=1e-3
  )  # Adam: the step, not the gradient


def test_weight_decay_that_adam_ignores_is_warned_about(capsys):
  c = base_config()
  c.optimizer, c.weight_decay = "adam", 5e-4
  make_optimizer(c, total_steps=10)
  assert "weight_decay=0.0005 has no effect with optimizer='adam'" in capsys.readouterr().err
  c.optimizer = "adamw"
  make_optimizer(c, total_steps=10)
  assert capsys.readouterr().err == ""
