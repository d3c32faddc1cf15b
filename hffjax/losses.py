"""Pure loss functions for Hyperspherical Forward-Forward.

Shapes: ``B`` batch, ``D`` feature dimension, ``C`` classes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

_EPS = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = _EPS) -> jax.Array:
  """Scales ``x`` to unit L2 norm along ``axis``; an all-zero vector stays zero.

  Example::

    >>> import jax.numpy as jnp
    >>> l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
  """
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps))


def cosine_logits(
  features_BxD: jax.Array,
  prototypes_CxD: jax.Array,
  scale: jax.Array | float,
) -> jax.Array:
  """Cosine similarity of each feature to each prototype, times ``scale``.

  Both the features and the prototype rows are projected onto the unit
  sphere first, so the result does not depend on their lengths.

  Args:
    features_BxD: block read-outs, ``[B, D]``.
    prototypes_CxD: raw (unnormalised) prototype matrix, ``[C, D]``.
    scale: ``1/τ``, a scalar.

  Returns:
    ``[B, C]`` logits in ``[-scale, scale]``.

  Example::

    >>> import jax.numpy as jnp
    >>> features = jnp.array([[2.0, 0.0]])  # lengths do not matter
    >>> prototypes = jnp.array([[5.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> cosine_logits(features, prototypes, 10.0).tolist()
    [[10.0, 0.0, -10.0]]
  """
  z_BxD = l2_normalize(features_BxD.astype(jnp.float32))
  p_CxD = l2_normalize(prototypes_CxD.astype(jnp.float32))
  return scale * (z_BxD @ p_CxD.T)


def hff_block_loss(
  logits_BxC: jax.Array,
  labels_B: jax.Array,
  *,
  scale: jax.Array | float,
  margin: float = 0.0,
) -> jax.Array:
  """Mean cross-entropy of one block's cosine logits, with an additive margin.

  The margin ``m`` is subtracted from the target cosine (so ``scale * m`` from
  the target logit), as in CosFace: the target must beat the other
  prototypes by ``m`` in cosine before the loss is small. ``scale`` is
  required because the logits carry it: the margin is in cosine units only
  when it is multiplied by the same ``1/τ``.

  Args:
    logits_BxC: output of :func:`cosine_logits`, ``[B, C]``.
    labels_B: integer class labels, ``[B]``.
    scale: the ``1/τ`` used for ``logits_BxC`` (a head's ``scale``).
    margin: additive cosine margin ``m >= 0``.

  Example::

    >>> import jax.numpy as jnp
    >>> from hffjax.losses import hff_block_loss
    >>> logits = jnp.array([[2.0, 1.0, 0.0]])  # cosines 0.2, 0.1, 0.0 at scale 10
    >>> round(float(hff_block_loss(logits, jnp.array([0]), scale=10.0, margin=0.1)), 4)
    0.862

  Returns:
    Scalar mean loss.
  """
  if margin:
    onehot_BxC = jax.nn.one_hot(labels_B, logits_BxC.shape[-1], dtype=logits_BxC.dtype)
    logits_BxC = logits_BxC - scale * margin * onehot_BxC
  return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B).mean()


def goodness(activity_BxD: jax.Array) -> jax.Array:
  """Forward-Forward goodness: mean of squared activities per example, ``[B]``.

  Example::

    >>> import jax.numpy as jnp
    >>> goodness(jnp.array([[1.0, 3.0]])).tolist()
    [5.0]
  """
  return jnp.mean(jnp.square(activity_BxD.astype(jnp.float32)), axis=-1)


def ff_goodness_loss(
  goodness_pos_B: jax.Array, goodness_neg_B: jax.Array, threshold: float, *, sharpness: float = 1.0
) -> jax.Array:
  """Forward-Forward loss: goodness above ``threshold`` for positives, below for negatives.

  ``softplus(s (threshold - g_pos)) + softplus(s (g_neg - threshold))``, averaged,
  with ``s = sharpness``. With :func:`goodness` (a *mean* of squares) and ``s``
  the number of units, this is Hinton's logistic on the *sum* of squared
  activities against a threshold of ``threshold`` per unit.

  Example::

    >>> import jax.numpy as jnp
    >>> round(float(ff_goodness_loss(jnp.array([1.0]), jnp.array([1.0]), 1.0)), 4)  # 2 log 2
    1.3863
    >>> float(ff_goodness_loss(jnp.array([3.0]), jnp.array([0.0]), 1.0, sharpness=100.0)) < 1e-30
    True
  """
  pos = jax.nn.softplus(sharpness * (threshold - goodness_pos_B))
  neg = jax.nn.softplus(sharpness * (goodness_neg_B - threshold))
  return jnp.mean(pos + neg)
