"""The training state and the NNX split/merge that turns a model into plain pytrees."""

from __future__ import annotations

import dataclasses

import flax
import jax
import optax
from flax import nnx

from hffjax.errors import HFFError


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
  """``(graphdef, params, batch_stats)`` with the two states as plain nested dicts.

  Raises:
    HFFError: the model holds variables of another kind, which the training
      state would not carry (nor checkpoint).
  """
  graphdef, params, batch_stats, other = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  kinds = sorted(
    {type(v).__name__ for v in jax.tree.leaves(other, is_leaf=lambda x: isinstance(x, nnx.Variable))}
  )
  if kinds:
    raise HFFError(
      f"the model holds {', '.join(kinds)} variables; hffjax trains and saves only nnx.Param and "
      "nnx.BatchStat ones: make the others one of these, or keep them outside the model"
    )
  return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(batch_stats)


def merge_model(graphdef: nnx.GraphDef, params: dict, batch_stats: dict) -> nnx.Module:
  return nnx.merge(graphdef, nnx.State(params), nnx.State(batch_stats))
