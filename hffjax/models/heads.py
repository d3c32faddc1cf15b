"""The prototype head every HFF learner ends in: cosine logits against learned unit-norm prototypes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from hffjax import losses
from hffjax.errors import HFFError

PROTOTYPE_INITS = ("normal", "orthogonal")


class PrototypeHead(nnx.Module):
  """``C`` learned prototypes and a temperature: cosine logits of a read-out.

  Prototypes, temperature and logits are float32 whatever the compute dtype.
  """

  def __init__(
    self,
    dim: int,
    num_classes: int,
    *,
    temperature: float,
    learn_temperature: bool,
    init: str,
    rngs: nnx.Rngs,
  ):
    if temperature <= 0:
      raise HFFError(f"model.temperature must be > 0, got {temperature}; try 0.1")
    if init == "orthogonal":
      initializer = jax.nn.initializers.orthogonal()
    elif init == "normal":
      initializer = jax.nn.initializers.normal(stddev=1.0)
    else:
      raise HFFError(f"unknown model.prototype_init {init!r}; use one of {PROTOTYPE_INITS}")
    self.prototypes = nnx.Param(initializer(rngs.params(), (num_classes, dim), jnp.float32))
    log_scale = -math.log(temperature)
    # A learnable temperature lives in the block's parameters; a fixed one is a Python constant.
    self.log_scale = nnx.Param(jnp.asarray(log_scale, jnp.float32)) if learn_temperature else log_scale

  @property
  def scale(self) -> jax.Array:
    log_scale = self.log_scale[...] if isinstance(self.log_scale, nnx.Variable) else self.log_scale
    return jnp.exp(log_scale)

  def unit_prototypes(self) -> jax.Array:
    """The prototypes projected onto the unit sphere, ``[C, D]``."""
    return losses.l2_normalize(self.prototypes[...])

  def __call__(self, readout_BxD: jax.Array) -> jax.Array:
    return losses.cosine_logits(readout_BxD, self.prototypes[...], self.scale)
