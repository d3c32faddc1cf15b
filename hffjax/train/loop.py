"""``train_and_evaluate(config, workdir)``: the training loop, read top to bottom."""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
from tqdm.auto import tqdm

from hffjax import data as data_lib
from hffjax import sharding
from hffjax.errors import HFFError
from hffjax.io import checkpoint as ckpt_lib
from hffjax.io import writers
from hffjax.io.workdir import prepare_workdir
from hffjax.train.evaluate import evaluate
from hffjax.train.experiment import restore_experiment, setup, to_state
from hffjax.train.meter import EpochMeter
from hffjax.train.state import TrainState


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


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
  prepare_workdir(config, workdir, overwrite)
  with open(os.path.join(workdir, "data.json"), "w") as f:
    json.dump({"image_shape": exp.dataset.image_shape, "num_classes": exp.dataset.num_classes}, f)
  metrics_path = os.path.join(workdir, writers.FILENAME)
  ckpts = ckpt_lib.Checkpoints(workdir, keep=config.keep_checkpoints)
  state, meta, last_saved = exp.initial_state, {}, None
  if ckpts.all_steps():
    last_saved, tree, meta = ckpts.restore(exp.abstract_state(), delete_damaged=True)
    state = to_state(tree)
  start = int(state.step)
  writers.keep_up_to(metrics_path, last_saved)

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
      meter = EpochMeter(exp.num_outputs, config.batch_size, meta.get("epoch_meter") if offset else None)
      pending = None  # the previous step's metrics: fetched one step late, so dispatch never waits
      for images, labels in data_lib.train_batches(ds, config.batch_size, config.seed, epoch, offset):
        state, metrics = train_step(state, *sharding.global_batch(exp.mesh, images, labels))
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
      writers.append(metrics_path, record)
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


def evaluate_workdir(workdir: str, data_dir: str | None = None) -> dict:
  """Restores the latest checkpoint of ``workdir`` and evaluates it on the test split."""
  exp, state, step = restore_experiment(workdir, data_dir)
  eval_fn = exp.eval_fn()
  # Compile outside the timed loop so examples_per_second measures inference only.
  x, y, m = next(data_lib.eval_batches(exp.dataset.test_images, exp.dataset.test_labels, exp.eval_batch_size))
  jax.block_until_ready(eval_fn(state.params, state.batch_stats, *sharding.global_batch(exp.mesh, x, y, m)))
  result = evaluate(
    eval_fn, state, exp.dataset.test_images, exp.dataset.test_labels, exp.mesh, exp.eval_batch_size
  )
  return {
    "step": step,
    "epoch": step / exp.steps_per_epoch,
    **result,
    "params_fingerprint": ckpt_lib.fingerprint(state.params),
  }
