import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hffjax import losses
from hffjax.models import PrototypeHead


def test_cosine_logits_scale_invariant():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  z = jax.random.normal(k1, (5, 7))
  w = jax.random.normal(k2, (3, 7))
  row_scale = jax.random.uniform(k3, (5, 1), minval=0.01, maxval=100.0)
  a = losses.cosine_logits(z, w, 10.0)
  b = losses.cosine_logits(z * row_scale, w * 42.0, 10.0)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  assert float(jnp.max(jnp.abs(a))) <= 10.0 + 1e-4


def test_cosine_logits_match_explicit_unit_vectors():
  z = jnp.array([[3.0, 4.0], [0.0, -2.0]])
  w = jnp.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
  expected = np.array([[0.6, 0.8, 0.7 * np.sqrt(2)], [0.0, -1.0, -np.sqrt(0.5)]]) * 4.0
  np.testing.assert_allclose(losses.cosine_logits(z, w, 4.0), expected, rtol=1e-6, atol=1e-6)


def test_prototypes_are_unit_norm_in_the_logits():
  head = PrototypeHead(6, 4, temperature=0.5, learn_temperature=False, init="normal", rngs=nnx.Rngs(0))
  head.prototypes[...] = head.prototypes[...] * jnp.arange(1.0, 5.0)[:, None]  # unequal lengths
  p = head.unit_prototypes()
  np.testing.assert_allclose(jnp.linalg.norm(p, axis=-1), 1.0, rtol=1e-6)
  # Feeding a prototype direction in gives cosine 1 on its own class: logit = 1/τ.
  logits = head(p * 7.0)
  np.testing.assert_allclose(jnp.diag(logits), 2.0, rtol=1e-5)
  assert np.all(np.asarray(logits) <= 2.0 + 1e-5)


def test_margin_penalises_only_the_target():
  logits = jnp.array([[2.0, 1.0, 0.0]])
  labels = jnp.array([0])
  plain = losses.hff_block_loss(logits, labels, scale=10.0)
  with_margin = losses.hff_block_loss(logits, labels, scale=10.0, margin=0.1)
  # margin 0.1 at scale 10 lowers the target logit by exactly 1.
  np.testing.assert_allclose(
    with_margin, losses.hff_block_loss(jnp.array([[1.0, 1.0, 0.0]]), labels, scale=10.0), rtol=1e-6
  )
  assert with_margin > plain
  with pytest.raises(TypeError, match="scale"):
    losses.hff_block_loss(logits, labels, margin=0.1)  # no silent default scale


def test_l2_normalize_keeps_zero_vectors_finite():
  out = losses.l2_normalize(jnp.zeros((2, 3)))
  assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_ff_goodness_loss_orders_correctly():
  pos = losses.goodness(jnp.full((4, 8), 2.0))
  np.testing.assert_allclose(pos, 4.0)
  good = losses.ff_goodness_loss(jnp.full(4, 5.0), jnp.full(4, 0.0), threshold=2.0)
  bad = losses.ff_goodness_loss(jnp.full(4, 0.0), jnp.full(4, 5.0), threshold=2.0)
  assert good < bad
