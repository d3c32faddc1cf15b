"""The pure fused training step and the evaluation step (both jitted by the caller).

Because block ``l`` sees only ``stop_gradient`` of the block below, the
gradient of ``Σ_l λ_l L_l`` with respect to block ``l``'s parameters is
``λ_l ∂L_l/∂θ_l``: one forward pass, one ``value_and_grad`` of the sum and one
optimizer update train every block at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hffjax import losses
from hffjax.data.augment import random_flip, random_shift
from hffjax.models.stack import interblock_normalize
from hffjax.train.predict import combine_logits
from hffjax.train.state import TrainState, merge_model


def lean_value_and_grad(graphdef: nnx.GraphDef, params: dict, batch_stats: dict, images, labels):
  """The HFF objective and its gradient, one block at a time, in that order (``train_mode="lean"``).

  Block ``l``'s forward, loss and gradient are computed before block ``l+1``
  starts: its input and block ``l``'s gradient pass through one
  ``optimization_barrier``, so the compiler cannot schedule block ``l+1``'s
  forward before block ``l``'s backward, and block ``l``'s activations can be
  freed once the next block has its input. Same values as the fused
  ``value_and_grad`` of the sum (the blocks are independent by construction).

  Returns:
    ``((total, (block_loss [L], block_logits, new_batch_stats)), grads)``, shaped like the fused step's.
  """
  model = merge_model(graphdef, params, batch_stats)
  h = model.normalize_images(images)
  grads = {"blocks": {}, "heads": {}}
  new_stats = {"blocks": {}} if "blocks" in batch_stats else {}
  block_loss, block_logits = [], []
  for i, (block, head) in enumerate(zip(model.blocks, model.heads, strict=True)):
    if i > 0:
      h = interblock_normalize(h, model.interblock_norm)
    x = jax.lax.stop_gradient(h)
    block_def, _, block_rest = nnx.split(block, nnx.Param, ...)
    head_def, _, head_rest = nnx.split(head, nnx.Param, ...)
    block_rest, head_rest = nnx.to_pure_dict(block_rest), nnx.to_pure_dict(head_rest)
    weight = model.loss_weights[i]

    def loss_fn(p_block, p_head, x=x, block_def=block_def, block_rest=block_rest, head_def=head_def,
                head_rest=head_rest, i=i, weight=weight):  # fmt: skip
      b = nnx.merge(block_def, nnx.State(p_block), nnx.State(block_rest))
      hd = nnx.merge(head_def, nnx.State(p_head), nnx.State(head_rest))
      a, r = b(x, train=i not in model.frozen)
      logits = hd(r)
      loss = losses.hff_block_loss(logits, labels, scale=hd.scale, margin=model.margin)
      return weight * loss, (loss, a, logits, nnx.to_pure_dict(nnx.state(b, nnx.BatchStat)))

    (_, (loss, a, logits, stats)), (g_block, g_head) = jax.value_and_grad(
      loss_fn, argnums=(0, 1), has_aux=True
    )(params["blocks"][i], params["heads"][i])
    # Block i's gradient is done before block i+1 may start.
    h, g_block, g_head = jax.lax.optimization_barrier((a, g_block, g_head))
    grads["blocks"][i], grads["heads"][i] = g_block, g_head
    if "blocks" in new_stats:
      new_stats["blocks"][i] = stats
    block_loss.append(loss)
    block_logits.append(logits)
  block_loss = jnp.stack(block_loss)
  total = jnp.dot(jnp.asarray(model.loss_weights, jnp.float32), block_loss)
  return (total, (block_loss, block_logits, new_stats)), grads


def make_train_step(
  graphdef: nnx.GraphDef,
  optimizer: optax.GradientTransformation,
  *,
  augment_flip: bool = False,
  augment_shift: int = 0,
  seed: int = 0,
  lean: bool = False,
):
  """The pure fused step ``(state, images_B…, labels_B) -> (state, metrics)``.

  The model's ``loss`` gives the summed objective; for HFF its gradient with
  respect to each block is that block's own local gradient. Metrics: ``loss``,
  ``block_loss`` ``[L]`` and, where the method scores classes while training,
  ``block_correct`` ``[L]`` (training examples each output got right), and
  ``unreadable`` (examples with a negative label: the stand-ins of a batch a
  process could not read, see :class:`hffjax.data.GuardedBatches`).

  Example::

    >>> import jax, jax.numpy as jnp, numpy as np, optax
    >>> from hffjax.config import base_config
    >>> from hffjax.models import build_model
    >>> from hffjax.train import TrainState, split_model
    >>> model_config = base_config().model
    >>> model_config.widths = (16, 16)
    >>> graphdef, params, stats = split_model(build_model(model_config, input_shape=(4, 4, 1), num_classes=2, seed=0))
    >>> tx = optax.adam(1e-2)
    >>> state = TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats, opt_state=tx.init(params))
    >>> step = jax.jit(make_train_step(graphdef, tx))
    >>> images = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
    >>> state, metrics = step(state, images, np.array([0, 1] * 4))
    >>> int(state.step), metrics["block_loss"].shape, metrics["block_correct"].shape  # one loss per block
    (1, (2,), (2,))
  """

  def train_step(state: TrainState, images, labels):
    flip_key, loss_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), state.step))
    if augment_flip:
      images = random_flip(flip_key, images)
    if augment_shift:
      images = random_shift(jax.random.fold_in(flip_key, 1), images, augment_shift)

    def loss_fn(params):
      model = merge_model(graphdef, params, state.batch_stats)
      total, block_loss, block_scores = model.loss(images, labels, key=loss_key)
      new_stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
      return total, (block_loss, block_scores, new_stats)

    if lean:
      (total, (block_loss, block_scores, new_stats)), grads = lean_value_and_grad(
        graphdef, state.params, state.batch_stats, images, labels
      )
    else:
      (total, (block_loss, block_scores, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params
      )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_state = state.replace(
      step=state.step + 1,
      params=optax.apply_updates(state.params, updates),
      batch_stats=new_stats,
      opt_state=opt_state,
    )
    # Stand-ins for a batch a process could not read (GuardedBatches): counted, so every process sees them.
    metrics = {"loss": total, "block_loss": block_loss, "unreadable": jnp.sum(labels < 0).astype(jnp.int32)}
    if block_scores is not None:
      metrics["block_correct"] = jnp.stack([jnp.sum(jnp.argmax(s, -1) == labels) for s in block_scores])
    return new_state, metrics

  return train_step


def make_multi_step(train_step, num_steps: int):
  """``num_steps`` fused steps per call, a ``lax.scan`` over batches already on the device.

  ``(state, images_KxB…, labels_KxB) -> (state, metrics)``, the metrics summed
  over the ``K`` steps on the device, so that the host fetches them once per
  call. Each step inside is exactly ``train_step`` (same keys, same
  augmentation), so ``K`` steps of one call equal ``K`` calls of one step.
  """

  def multi_step(state: TrainState, images, labels):
    state, metrics = jax.lax.scan(
      lambda s, batch: train_step(s, *batch), state, (images, labels), length=num_steps
    )
    return state, jax.tree.map(lambda m: jnp.sum(m, axis=0), metrics)

  return multi_step


def gather_batches(step_fn):
  """A step over a training split kept on the device: ``(state, indices, split_images, split_labels)``.

  The batch (or the ``K`` batches) is gathered on the device by index, so the
  host sends only the indices of each step.
  """

  def gathered(state: TrainState, indices, split_images, split_labels):
    return step_fn(state, jnp.take(split_images, indices, axis=0), jnp.take(split_labels, indices, axis=0))

  return gathered


def make_eval_step(graphdef: nnx.GraphDef, blocks: Sequence[int], top5: bool = False):
  """``(params, batch_stats, images, labels, mask) -> counts``: correct, unmasked examples.

  ``counts`` is a dict: ``block`` ``[L]`` (each output on its own), ``last``
  and ``ensemble`` (the two prediction rules), with ``top5``, ``top5``
  (labels among the ``last`` rule's five highest scores), and one count per
  further rule a model offers through ``extra_rules(images) -> {name: scores}``
  (Forward-Forward's one-pass ``readout``), and ``unreadable`` (examples
  with a negative label, as in :func:`make_train_step`).
  """
  blocks = tuple(blocks)

  def eval_step(params, batch_stats, images, labels, mask):
    model = merge_model(graphdef, params, batch_stats)
    block_scores = model(images, train=False)
    own = model.predict_scores(block_scores)  # the model's own rule: test_accuracy

    def correct(scores):
      return jnp.sum((jnp.argmax(scores, -1) == labels) & mask).astype(jnp.int32)

    counts = {
      "block": jnp.stack([correct(s) for s in block_scores]),
      "model": correct(own),
      "ensemble": correct(combine_logits(block_scores, "ensemble", blocks)),
      "unreadable": jnp.sum(labels < 0).astype(jnp.int32),  # stand-ins of a batch a process could not read
    }
    if top5:
      _, top_B5 = jax.lax.top_k(own, 5)
      counts["top5"] = jnp.sum(jnp.any(top_B5 == labels[:, None], axis=-1) & mask).astype(jnp.int32)
    if hasattr(model, "extra_rules"):
      counts["rules"] = {name: correct(s) for name, s in model.extra_rules(images).items()}
    return counts

  return eval_step
