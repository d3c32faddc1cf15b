import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from hffjax import losses
from hffjax.config import base_config
from hffjax.errors import HFFError
from hffjax.models import build_model
from hffjax.train import merge_model, split_model


def _model_config(kind: str) -> ml_collections.ConfigDict:
  c = base_config().model
  c.kind = kind
  c.widths = (16, 12, 8)
  c.channels = (4, 6, 8)
  c.pool = (False, True, True)
  c.readout = "grid"
  return c


def _batch(shape=(8, 8, 1), n=6, num_classes=5):
  x = jax.random.uniform(jax.random.key(1), (n, *shape), maxval=255.0)
  y = jnp.arange(n) % num_classes
  return x, y


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_gradient_locality(kind):
  """Block k's parameters and prototypes get exactly zero gradient from every other block's loss."""
  model = build_model(_model_config(kind), input_shape=(8, 8, 1), num_classes=5, seed=0)
  graphdef, params, stats = split_model(model)
  x, y = _batch()

  def block_loss(params, k):
    m = merge_model(graphdef, params, stats)
    logits = m(x, train=True)[k]
    return losses.hff_block_loss(logits, y, scale=m.heads[k].scale, margin=0.1)

  num_blocks = len(params["blocks"])
  for k in range(num_blocks):
    grads = jax.grad(block_loss)(params, k)
    for j in range(num_blocks):
      own = jax.tree.leaves((grads["blocks"][j], grads["heads"][j]))
      if j == k:
        assert any(float(jnp.abs(g).max()) > 0 for g in own), f"block {k} got no gradient from its own loss"
      else:
        for g in own:
          assert np.array_equal(np.asarray(g), np.zeros_like(g)), f"block {j} got gradient from loss {k}"


def test_learnable_temperature_is_per_block_and_local():
  cfg = _model_config("mlp")
  cfg.learn_temperature = True
  model = build_model(cfg, input_shape=(8, 8, 1), num_classes=5, seed=0)
  graphdef, params, stats = split_model(model)
  assert all("log_scale" in params["heads"][k] for k in range(3))
  x, y = _batch()

  def loss0(params):
    m = merge_model(graphdef, params, stats)
    return losses.hff_block_loss(m(x)[0], y, scale=m.heads[0].scale)

  grads = jax.grad(loss0)(params)
  assert float(grads["heads"][0]["log_scale"]) != 0.0
  assert float(grads["heads"][1]["log_scale"]) == 0.0


def _sub_jaxprs(eqn):
  for value in eqn.params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jax.extend.core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jax.extend.core.Jaxpr):
        yield item


def _matmul_flops(jaxpr, trips: int = 1) -> int:
  """FLOPs of every dot and convolution in a jaxpr, each multiplied by the trip count of the loops it is in.

  (XLA's ``cost_analysis()`` counts a loop body once, so it cannot tell one pass from a ``lax.map``
  over classes; this walk can.)
  """
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    out = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      total += trips * 2 * out * math.prod(eqn.invars[0].aval.shape[d] for d in contract)
    elif name == "conv_general_dilated":
      kernel = eqn.invars[1].aval.shape
      total += trips * 2 * out * math.prod(kernel) // kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
    assert name != "while", "an unbounded loop in the inference program"
    inner = trips * (eqn.params["length"] if name == "scan" else 1)
    total += sum(_matmul_flops(sub, inner) for sub in _sub_jaxprs(eqn))
  return total


def _inference_flops(builder, kind: str, num_classes: int, batch: int = 4) -> int:
  model = builder(_model_config(kind), input_shape=(8, 8, 1), num_classes=num_classes, seed=0)
  graphdef, state = nnx.split(model)
  jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x, train=False))(
    state, jnp.zeros((batch, 8, 8, 1))
  )
  return _matmul_flops(jaxpr.jaxpr)


@pytest.mark.parametrize("kind,readout_dims", [("mlp", (16, 12, 8)), ("cnn", (16, 24, 32))])
def test_inference_is_one_pass(kind, readout_dims):
  """From 10 to 1000 classes the inference work grows by the prototype products alone (2·B·ΔC·Σ D_l).

  The same walk finds Forward-Forward's pass per class: 5× the classes, 5× the work.
  """
  from hffjax.baselines import build_ff_model

  grown = _inference_flops(build_model, kind, 1000) - _inference_flops(build_model, kind, 10)
  assert grown == 2 * 4 * (1000 - 10) * sum(readout_dims)
  assert _inference_flops(build_ff_model, kind, 50) == 5 * _inference_flops(build_ff_model, kind, 10)


def test_prototype_init_orthogonal_gives_orthonormal_rows():
  cfg = _model_config("mlp")
  model = build_model(cfg, input_shape=(8, 8, 1), num_classes=5, seed=0)
  p = model.heads[0].unit_prototypes()
  np.testing.assert_allclose(p @ p.T, np.eye(5), atol=1e-5)


def test_image_shape_mismatch_is_refused():
  model = build_model(_model_config("cnn"), input_shape=(8, 8, 1), num_classes=5, seed=0)
  with pytest.raises(HFFError, match="rebuild the model"):
    model(jnp.zeros((2, 9, 9, 1)))


def test_unknown_model_options_are_refused():
  cfg = _model_config("cnn")
  cfg.readout = "sideways"
  with pytest.raises(HFFError, match="readout"):
    build_model(cfg, input_shape=(8, 8, 1), num_classes=5, seed=0)
  cfg = _model_config("transformer")
  with pytest.raises(HFFError, match="model.kind"):
    build_model(cfg, input_shape=(8, 8, 1), num_classes=5, seed=0)


@pytest.mark.parametrize("readout,dim", [("gap", 8), ("grid", 32), ("flatten", 2 * 2 * 8)])
def test_conv_readout_dimensions(readout, dim):
  cfg = _model_config("cnn")
  cfg.readout = readout
  model = build_model(cfg, input_shape=(8, 8, 1), num_classes=5, seed=0)
  r = model.readouts(jnp.zeros((3, 8, 8, 1)))
  assert r[-1].shape == (3, dim)
  assert model.heads[-1].prototypes.shape == (5, dim)


def test_interblock_normalisation_lengths():
  from hffjax.models import interblock_normalize

  a = jax.random.normal(jax.random.key(0), (3, 4, 4, 5)) * jnp.array([0.1, 1.0, 50.0])[:, None, None, None]
  for kind, length in (("l2", 1.0), ("rms", np.sqrt(80.0))):
    out = interblock_normalize(a, kind).reshape(3, -1)
    np.testing.assert_allclose(jnp.linalg.norm(out, axis=1), length, rtol=1e-5)
  np.testing.assert_array_equal(interblock_normalize(a, "none"), a)


def test_a_variable_the_training_state_would_not_carry_is_refused():
  """Only nnx.Param and nnx.BatchStat travel in the training state: any other kind is an error, not
  a silent passenger in batch_stats."""
  model = build_model(_model_config("mlp"), input_shape=(8, 8, 1), num_classes=5, seed=0)
  graphdef, params, stats = split_model(model)
  assert stats == {} and merge_model(graphdef, params, stats).num_blocks == 3
  model.blocks[0].counter = nnx.Variable(jnp.zeros(()))
  with pytest.raises(HFFError, match="the model holds Variable variables"):
    split_model(model)
