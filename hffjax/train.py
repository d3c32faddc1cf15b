"""The fused HFF step, evaluation, and ``train_and_evaluate(config, workdir)``.

Because block ``l`` sees only ``stop_gradient`` of the block below, the
gradient of ``Σ_l λ_l L_l`` with respect to block ``l``'s parameters is
``λ_l ∂L_l/∂θ_l``: one forward pass, one ``value_and_grad`` of the sum and one
optimizer update train every block at once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from collections.abc import Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from hffjax import baselines, metrics_log, parallel
from hffjax import checkpoint as ckpt_lib
from hffjax import config as config_lib
from hffjax import data as data_lib
from hffjax.errors import HFFError
from hffjax.models import build_model

PREDICT_MODES = ("last", "ensemble")


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


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam or AdamW, with an optional warm-up and cosine decay to zero."""
  lr = config.learning_rate
  if config.lr_schedule == "cosine":
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    lr = optax.warmup_cosine_decay_schedule(
      0.0 if warmup else lr, lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1)
    )
  elif config.warmup_steps:
    lr = optax.linear_schedule(0.0, lr, config.warmup_steps)
  if config.optimizer == "adamw":
    # Decay kernels only: prototypes are normalised anyway, biases and norms should not shrink.
    def decay_mask(params):
      return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
      )

    return optax.adamw(lr, weight_decay=config.weight_decay, mask=decay_mask)
  return optax.adam(lr)


def ensemble_blocks(config: ml_collections.ConfigDict, num_blocks: int) -> tuple[int, ...]:
  blocks = tuple(int(b) for b in config.ensemble_blocks) or tuple(range(num_blocks))
  bad = [b for b in blocks if not 0 <= b < num_blocks]
  if bad:
    raise HFFError(f"ensemble_blocks {bad} out of range for {num_blocks} blocks; use 0..{num_blocks - 1}")
  return blocks


def combine_logits(
  block_logits: Sequence[jax.Array], mode: str = "last", blocks: Sequence[int] | None = None
) -> jax.Array:
  """Class scores from every block's logits under a prediction rule, ``[B, C]``.

  ``last``: the last block's logits. ``ensemble``: the sum of the softmaxes of
  ``blocks`` (default: all).
  """
  if mode == "last":
    return block_logits[-1]
  if mode == "ensemble":
    blocks = range(len(block_logits)) if blocks is None else blocks
    return sum(jax.nn.softmax(block_logits[b].astype(jnp.float32)) for b in blocks)
  raise HFFError(f"unknown prediction mode {mode!r}; use one of {PREDICT_MODES}")


@functools.partial(jax.jit, static_argnames=("graphdef", "mode", "blocks"))
def _predict(graphdef, state, images, mode, blocks):
  model = nnx.merge(graphdef, state)
  block_scores = model(images, train=False)
  if mode == "last":
    return jnp.argmax(model.predict_scores(block_scores), axis=-1)
  return jnp.argmax(combine_logits(block_scores, mode, blocks), axis=-1)


def predict(model: nnx.Module, images, mode: str = "last", blocks: Sequence[int] | None = None) -> jax.Array:
  """Predicted classes for raw images (pixel values 0–255).

  An HFF model needs one forward pass for this; a Forward-Forward baseline
  model runs one pass per class.

  Args:
    model: a trained :class:`HFFNet` (or a baseline model).
    images: ``[B, H, W, K]``.
    mode: ``"last"``, the model's own rule (HFF and backprop: the last block;
      Forward-Forward: goodness summed over every block but the first), or
      ``"ensemble"`` (see :func:`combine_logits`).
    blocks: blocks the ensemble sums; default all.

  Returns:
    ``[B]`` int32 class indices.
  """
  if mode not in PREDICT_MODES:
    raise HFFError(f"unknown prediction mode {mode!r}; use one of {PREDICT_MODES}")
  graphdef, state = nnx.split(model)
  return _predict(graphdef, state, jnp.asarray(images), mode, None if blocks is None else tuple(blocks))


def random_shift(key: jax.Array, images_BxHxWxK: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image by up to ``max_shift`` pixels each way, filling with zeros (black)."""
  b, h, w, k = images_BxHxWxK.shape
  padded = jnp.pad(images_BxHxWxK, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  offsets_Bx2 = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
  crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, k))  # noqa: E731
  return jax.vmap(crop)(padded, offsets_Bx2)


def make_train_step(
  graphdef: nnx.GraphDef,
  optimizer: optax.GradientTransformation,
  *,
  augment_flip: bool = False,
  augment_shift: int = 0,
  seed: int = 0,
):
  """The pure fused step ``(state, images_B…, labels_B) -> (state, metrics)``.

  The model's ``loss`` gives the summed objective; for HFF its gradient with
  respect to each block is that block's own local gradient. Metrics: ``loss``,
  ``block_loss`` ``[L]`` and, where the method scores classes while training,
  ``block_correct`` ``[L]`` (training examples each output got right).
  """

  def train_step(state: TrainState, images, labels):
    flip_key, loss_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), state.step))
    if augment_flip:
      flip_B = jax.random.bernoulli(flip_key, 0.5, (images.shape[0],))
      images = jnp.where(flip_B[:, None, None, None], images[:, :, ::-1, :], images)
    if augment_shift:
      images = random_shift(jax.random.fold_in(flip_key, 1), images, augment_shift)

    def loss_fn(params):
      model = merge_model(graphdef, params, state.batch_stats)
      total, block_loss, block_scores = model.loss(images, labels, key=loss_key)
      new_stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
      return total, (block_loss, block_scores, new_stats)

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
    metrics = {"loss": total, "block_loss": block_loss}
    if block_scores is not None:
      metrics["block_correct"] = jnp.stack([jnp.sum(jnp.argmax(s, -1) == labels) for s in block_scores])
    return new_state, metrics

  return train_step


def make_eval_step(graphdef: nnx.GraphDef, blocks: Sequence[int]):
  """``(params, batch_stats, images, labels, mask) -> counts [L + 2]``.

  Counts of correct, unmasked examples: one per block, then the ``last`` and
  ``ensemble`` rules.
  """
  blocks = tuple(blocks)

  def eval_step(params, batch_stats, images, labels, mask):
    model = merge_model(graphdef, params, batch_stats)
    block_scores = model(images, train=False)
    scores = list(block_scores) + [
      model.predict_scores(block_scores),
      combine_logits(block_scores, "ensemble", blocks),
    ]
    return jnp.stack([jnp.sum((jnp.argmax(s, -1) == labels) & mask) for s in scores]).astype(jnp.int32)

  return eval_step


def evaluate(
  eval_fn, state: TrainState, images: np.ndarray, labels: np.ndarray, mesh, batch_size: int
) -> dict:
  """Exact accuracy over every example (the last batch is padded and masked)."""
  counts, start = None, time.perf_counter()
  for x, y, m in data_lib.eval_batches(images, labels, batch_size):
    c = eval_fn(state.params, state.batch_stats, *parallel.global_batch(mesh, x, y, m))
    counts = c if counts is None else counts + c
  counts = np.asarray(jax.device_get(counts), np.int64)
  seconds = time.perf_counter() - start
  n = len(images)
  return {
    "test_accuracy": counts[-2] / n,
    "ensemble_accuracy": counts[-1] / n,
    "layer_accuracy": [c / n for c in counts[:-2]],
    "num_examples": n,
    "eval_seconds": seconds,
    "examples_per_second": n / seconds,
  }


# ----------------------------------------------------------------------------- set-up


@dataclasses.dataclass
class Experiment:
  """What training and evaluation share: data, model definition, mesh, compiled steps."""

  config: ml_collections.ConfigDict
  dataset: data_lib.Dataset
  mesh: jax.sharding.Mesh
  graphdef: nnx.GraphDef
  num_outputs: int  # score arrays the model returns: one per block (HFF, FF), one (BP)
  initial_state: TrainState
  optimizer: optax.GradientTransformation
  steps_per_epoch: int
  eval_batch_size: int

  @property
  def total_steps(self) -> int:
    return self.config.num_epochs * self.steps_per_epoch

  def eval_fn(self):
    blocks = ensemble_blocks(self.config, self.num_outputs)
    return jax.jit(
      make_eval_step(self.graphdef, blocks),
      in_shardings=(parallel.replicated(self.mesh), parallel.replicated(self.mesh))
      + (parallel.batch_sharding(self.mesh),) * 3,
      out_shardings=parallel.replicated(self.mesh),
    )

  def train_fn(self):
    step = make_train_step(
      self.graphdef,
      self.optimizer,
      augment_flip=self.config.augment_flip,
      augment_shift=self.config.augment_shift,
      seed=self.config.seed,
    )
    rep, batch = parallel.replicated(self.mesh), parallel.batch_sharding(self.mesh)
    return jax.jit(step, in_shardings=(rep, batch, batch), out_shardings=(rep, rep), donate_argnums=0)

  def abstract_state(self):
    return ckpt_lib.abstract_like(self.initial_state.to_dict(), parallel.replicated(self.mesh))

  def model(self, state: TrainState) -> nnx.Module:
    return merge_model(self.graphdef, *jax.device_get((state.params, state.batch_stats)))


def build_network(config: ml_collections.ConfigDict, ds: data_lib.Dataset) -> nnx.Module:
  """The model ``config.method`` trains: HFF, or a baseline on the same blocks."""
  common = dict(
    input_shape=ds.image_shape,
    num_classes=ds.num_classes,
    seed=config.seed,
    pixel_mean=ds.mean,
    pixel_std=ds.std,
  )
  if config.method == "bp":
    return baselines.build_bp_model(config.model, **common)
  if config.method == "ff":
    return baselines.build_ff_model(config.model, threshold=config.ff_threshold, **common)
  return build_model(config.model, margin=config.margin, loss_weights=config.loss_weights, **common)


def setup(
  config: ml_collections.ConfigDict,
  dataset: data_lib.Dataset | None = None,
  mesh: jax.sharding.Mesh | None = None,
) -> Experiment:
  """Validates the config, loads the data, builds the model, optimizer and mesh.

  Args:
    config: a full config (see :func:`hffjax.config.base_config`).
    dataset: use this instead of loading ``config.dataset``.
    mesh: a mesh with a ``data`` axis; default: every device.
  """
  config_lib.validate_config(config)
  ds = dataset if dataset is not None else data_lib.load_dataset(config)
  n_train = len(ds.train_images)
  if config.batch_size > n_train:
    raise HFFError(f"batch_size {config.batch_size} is larger than the {n_train} training examples; lower it")
  mesh = mesh if mesh is not None else parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  n_dev = mesh.devices.size
  eval_bs = min(config.eval_batch_size, len(ds.test_images))
  eval_bs = -(-eval_bs // n_dev) * n_dev
  model = build_network(config, ds)
  num_outputs = len(jax.eval_shape(lambda m, x: m(x), model, ds.test_images[:1]))
  ensemble_blocks(config, num_outputs)
  graphdef, params, batch_stats = split_model(model)
  steps_per_epoch = n_train // config.batch_size
  optimizer = make_optimizer(config, config.num_epochs * steps_per_epoch)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    opt_state=optimizer.init(params),
  )
  state = jax.device_put(state, parallel.replicated(mesh))
  return Experiment(config, ds, mesh, graphdef, num_outputs, state, optimizer, steps_per_epoch, eval_bs)


# ----------------------------------------------------------------------------- the loop


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _to_state(tree: dict) -> TrainState:
  return TrainState(**tree)


def _check_finite(metrics: dict, step: int, last_saved: int | None, ckpt_dir: str) -> None:
  block_loss = np.asarray(metrics["block_loss"])
  bad = np.flatnonzero(~np.isfinite(block_loss))
  if bad.size:
    kept = (
      f"checkpoint {last_saved} in {ckpt_dir} is kept"
      if last_saved is not None
      else "no checkpoint was saved"
    )
    raise HFFError(
      f"loss of block {int(bad[0])} became {block_loss[bad[0]]} at step {step}; {kept}; lower learning_rate"
    )


def format_summary(result: dict) -> str:
  """A per-block accuracy table."""
  lines = ["", "block  test accuracy", "-----  -------------"]
  for i, acc in enumerate(result["layer_accuracy"]):
    lines.append(f"{i:>5}  {100 * acc:12.2f}%")
  lines.append(f" last  {100 * result['test_accuracy']:12.2f}%")
  lines.append(f"  ens  {100 * result['ensemble_accuracy']:12.2f}%")
  return "\n".join(lines)


def _prepare_workdir(config: ml_collections.ConfigDict, workdir: str, overwrite: bool) -> None:
  """Refuses a workdir trained with another config (but for num_epochs) unless ``overwrite``."""
  config_path = os.path.join(workdir, "config.json")
  if os.path.isfile(config_path):
    with open(config_path) as f:
      saved = json.loads(f.read())
    now = json.loads(config_lib.to_json(config))
    changed = sorted(k for k in set(saved) | set(now) if k != "num_epochs" and saved.get(k) != now.get(k))
    if changed and not overwrite:
      raise HFFError(
        f"{workdir} holds a run with a different config ({', '.join(changed)} differ); "
        "use another --workdir, or --overwrite to discard that run"
      )
    if changed or overwrite:
      shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
      for name in (metrics_log.FILENAME, "config.json", "data.json"):
        if os.path.exists(os.path.join(workdir, name)):
          os.remove(os.path.join(workdir, name))
  os.makedirs(workdir, exist_ok=True)
  with open(config_path, "w") as f:
    f.write(config_lib.to_json(config))


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  dataset: data_lib.Dataset | None = None,
  progress: bool | None = None,
  overwrite: bool = False,
) -> dict:
  """Trains (resuming from ``workdir`` if it holds checkpoints) and evaluates each epoch.

  Writes ``workdir/config.json``, ``workdir/metrics.jsonl`` (one record per
  evaluation) and Orbax checkpoints in ``workdir/checkpoints``. A run killed at
  any point and started again with the same arguments ends with the same
  parameters and metrics as one that was never interrupted.

  Args:
    config: the run's config.
    workdir: where the run lives.
    dataset: use this instead of loading ``config.dataset``.
    progress: show a progress bar (default: when stderr is a terminal).
    overwrite: discard a run in ``workdir`` that was trained with another config.

  Returns:
    The last evaluation record.
  """
  exp = setup(config, dataset)
  _prepare_workdir(config, workdir, overwrite)
  with open(os.path.join(workdir, "data.json"), "w") as f:
    json.dump({"image_shape": exp.dataset.image_shape, "num_classes": exp.dataset.num_classes}, f)
  metrics_path = os.path.join(workdir, metrics_log.FILENAME)
  ckpts = ckpt_lib.Checkpoints(workdir, keep=config.keep_checkpoints)
  state, meta, last_saved = exp.initial_state, {}, None
  if ckpts.all_steps():
    last_saved, tree, meta = ckpts.restore(exp.abstract_state(), delete_damaged=True)
    state = _to_state(tree)
  start = int(state.step)
  metrics_log.keep_up_to(metrics_path, last_saved)

  train_step, eval_fn = exp.train_fn(), exp.eval_fn()
  ds, spe, total = exp.dataset, exp.steps_per_epoch, exp.total_steps
  result = None
  bar = tqdm(
    total=total,
    initial=min(start, total),
    unit="step",
    dynamic_ncols=True,
    disable=(not progress) if progress is not None else None,
    desc="train",
  )

  def consume(meter, metrics, at_step, last_saved):
    meter.add(jax.device_get(metrics), at_step, last_saved, ckpts.directory)
    if at_step % config.log_every_steps == 0 or at_step == total:
      bar.set_postfix(epoch=(at_step - 1) // spe + 1, **meter.postfix())

  try:
    step = start
    while step < total:
      epoch, offset = divmod(step, spe)
      meter = _EpochMeter(exp.num_outputs, config.batch_size, meta.get("epoch_meter") if offset else None)
      pending = None  # the previous step's metrics: fetched one step late, so dispatch never waits
      for images, labels in data_lib.train_batches(ds, config.batch_size, config.seed, epoch, offset):
        state, metrics = train_step(state, *parallel.global_batch(exp.mesh, images, labels))
        step += 1
        if pending is not None:
          consume(meter, *pending, last_saved)
        pending = (metrics, step)
        bar.update(1)
        if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0 and step % spe:
          consume(meter, *pending, last_saved)
          pending = None
          last_saved = _save(ckpts, state, step, last_saved, {"epoch_meter": meter.to_dict()})
      if pending is not None:
        consume(meter, *pending, last_saved)
      train_seconds = meter.seconds()
      result = evaluate(eval_fn, state, ds.test_images, ds.test_labels, exp.mesh, exp.eval_batch_size)
      record = {
        "step": step,
        "epoch": epoch + 1,
        **meter.summary(),
        **{k: v for k, v in result.items() if k not in ("examples_per_second", "eval_seconds")},
        "epoch_seconds": train_seconds,
        "train_examples_per_second": meter.seen / train_seconds,
        "eval_examples_per_second": result["examples_per_second"],
        "time": time.time(),
      }
      metrics_log.append(metrics_path, record)
      last_saved = _save(ckpts, state, step, last_saved)
      accs = "/".join(f"{100 * a:.1f}" for a in result["layer_accuracy"])
      bar.write(
        f"epoch {epoch + 1}/{config.num_epochs}  loss {record['train_loss']:.4f}  "
        f"test {100 * result['test_accuracy']:.2f}% (ensemble {100 * result['ensemble_accuracy']:.2f}%, "
        f"blocks {accs})  {train_seconds:.1f} s"
      )
      result = record
  finally:
    bar.close()
    ckpts.close()
  if result is None:  # Already trained to the end: report the restored model.
    result = evaluate(eval_fn, state, ds.test_images, ds.test_labels, exp.mesh, exp.eval_batch_size)
    result = {"step": start, "epoch": start // spe, **result}
  return result


class _EpochMeter:
  """Running sums of one epoch's training metrics, on the host."""

  def __init__(self, num_blocks: int, batch_size: int, saved: dict | None = None):
    """Starts an epoch, or continues one from :meth:`to_dict` of a checkpoint."""
    self.batch_size = batch_size
    self.steps = 0
    self.loss = 0.0
    self.block_loss = np.zeros(num_blocks)
    self.block_correct = None  # stays None for methods that do not score classes while training
    if saved:
      self.steps, self.loss = saved["steps"], saved["loss"]
      self.block_loss = np.asarray(saved["block_loss"], np.float64)
      if saved["block_correct"] is not None:
        self.block_correct = np.asarray(saved["block_correct"], np.int64)
    self.start = time.perf_counter()

  def to_dict(self) -> dict:
    return {
      "steps": self.steps,
      "loss": self.loss,
      "block_loss": self.block_loss.tolist(),
      "block_correct": None if self.block_correct is None else self.block_correct.tolist(),
    }

  @property
  def seen(self) -> int:
    return self.steps * self.batch_size

  def add(self, metrics: dict, step: int, last_saved: int | None, ckpt_dir: str) -> None:
    _check_finite(metrics, step, last_saved, ckpt_dir)
    self.steps += 1
    self.loss += float(metrics["loss"])
    self.block_loss += metrics["block_loss"]
    if "block_correct" in metrics:
      correct = np.asarray(metrics["block_correct"], np.int64)
      self.block_correct = correct if self.block_correct is None else self.block_correct + correct

  def seconds(self) -> float:
    return time.perf_counter() - self.start

  def accuracy(self) -> float | None:
    return None if self.block_correct is None else float(self.block_correct[-1]) / max(self.seen, 1)

  def postfix(self) -> dict:
    out = {"loss": f"{self.loss / self.steps:.4f}"}
    if self.block_correct is not None:
      out["acc"] = f"{self.accuracy():.4f}"
    return out

  def summary(self) -> dict:
    steps = max(self.steps, 1)
    return {
      "train_loss": self.loss / steps,
      "block_train_loss": (self.block_loss / steps).tolist(),
      "train_accuracy": self.accuracy(),
    }


def _save(
  ckpts: ckpt_lib.Checkpoints, state: TrainState, step: int, last_saved: int | None, meta: dict | None = None
) -> int | None:
  """Saves ``state`` unless it is non-finite (then the last good checkpoint stays the newest)."""
  if not bool(_all_finite(state.params)):
    raise HFFError(
      f"parameters became non-finite by step {step}; checkpoint {last_saved} is kept; lower learning_rate"
    )
  if last_saved == step:
    return last_saved
  ckpts.save(step, state.to_dict(), meta)
  return step


def restore_experiment(workdir: str, data_dir: str | None = None) -> tuple[Experiment, TrainState, int]:
  """The experiment a workdir was trained with, and its latest checkpointed state."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise HFFError(f"{workdir} has no config.json; pass the --workdir of a `hffjax train` run")
  with open(path) as f:
    try:
      config = config_lib.from_json(f.read())
    except (ValueError, TypeError) as e:
      raise HFFError(f"{path} is not a valid saved config ({e}); re-run train") from None
  if data_dir:
    config.data_dir = data_dir
  exp = setup(config)
  data_path = os.path.join(workdir, "data.json")
  if os.path.isfile(data_path):
    with open(data_path) as f:
      trained_on = json.load(f)
    now = {"image_shape": list(exp.dataset.image_shape), "num_classes": exp.dataset.num_classes}
    if trained_on != now:
      raise HFFError(
        f"the run was trained on images {tuple(trained_on['image_shape'])} with "
        f"{trained_on['num_classes']} classes but this data has {tuple(now['image_shape'])} with "
        f"{now['num_classes']}; pass the --data_dir of the dataset it was trained on"
      )
  ckpts = ckpt_lib.Checkpoints(workdir, keep=config.keep_checkpoints)
  try:
    step, tree, _ = ckpts.restore(exp.abstract_state())
    state = _to_state(tree)
  finally:
    ckpts.close()
  return exp, state, step


def evaluate_workdir(workdir: str, data_dir: str | None = None) -> dict:
  """Restores the latest checkpoint of ``workdir`` and evaluates it on the test split."""
  exp, state, step = restore_experiment(workdir, data_dir)
  eval_fn = exp.eval_fn()
  # Compile outside the timed loop so examples_per_second measures inference only.
  x, y, m = next(data_lib.eval_batches(exp.dataset.test_images, exp.dataset.test_labels, exp.eval_batch_size))
  jax.block_until_ready(eval_fn(state.params, state.batch_stats, *parallel.global_batch(exp.mesh, x, y, m)))
  result = evaluate(
    eval_fn, state, exp.dataset.test_images, exp.dataset.test_labels, exp.mesh, exp.eval_batch_size
  )
  return {
    "step": step,
    "epoch": step / exp.steps_per_epoch,
    **result,
    "params_fingerprint": ckpt_lib.fingerprint(state.params),
  }
