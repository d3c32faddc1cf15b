"""The training state and the NNX split/merge that turns a model into plain pytrees."""

from __future__ import annotations

import dataclasses

import flax
import jax
import optax
from flax import nnx


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. Parameters and batch statistics are plain nested dicts."""

  step: jax.Array
  params: dict
  batch_stats: dict
  opt_state: optax.OptState

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, dict, dict]:
  """``(graphdef, params, batch_stats)`` with the two states as plain nested dicts."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, ...)
  return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(batch_stats)


def merge_model(graphdef: nnx.GraphDef, params: dict, batch_stats: dict) -> nnx.Module:
  return nnx.merge(graphdef, nnx.State(params), nnx.State(batch_stats))
