"""``train_and_evaluate(config, workdir)``: the training loop, read top to bottom.

Every process of a multi-host job runs this same loop on its own share of
each batch; process 0 alone writes files, prints and shows the progress bar.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from hffjax import config as config_lib
from hffjax import data as data_lib
from hffjax import sharding
from hffjax.errors import HFFError
from hffjax.io import checkpoint as ckpt_lib
from hffjax.io import storage, writers
from hffjax.io import workdir as workdir_lib
from hffjax.io.lock import WorkdirLock
from hffjax.io.workdir import prepare_workdir
from hffjax.models.pretrained import learner_fingerprints
from hffjax.models.registry import register_builder
from hffjax.train.evaluate import evaluate_split
from hffjax.train.experiment import Experiment, restore_experiment, setup, to_state
from hffjax.train.meter import Meter, NonFiniteLoss
from hffjax.train.state import TrainState


class Preempted(Exception):
  """Raised after the checkpoint a SIGTERM (or a first Ctrl-C) asked for is on disk.

  ``signal_name`` is ``"SIGTERM"`` or ``"SIGINT"``; the CLI exits 0 for
  SIGTERM and 130 for SIGINT, as for an interrupt.
  """

  def __init__(self, message: str, signal_name: str = "SIGTERM"):
    super().__init__(message)
    self.signal_name = signal_name


class PreemptionWatch:
  """Notices SIGTERM, and Ctrl-C on one process; every process agrees on the step at which to stop.

  On a multi-process job JAX's runtime catches SIGTERM and its preemption sync
  point names one step for all processes; on one process signal handlers set
  a flag that the loop reads after each step. There the first Ctrl-C (SIGINT)
  asks for the same save-and-stop as SIGTERM; a second one interrupts at once.
  """

  def __init__(self):
    self._flag = threading.Event()
    self._previous = {}
    self.signal_name = "SIGTERM"

  def __enter__(self):
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_signal)
      if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_signal)
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}

  def _on_signal(self, signum, frame):
    if signum == signal.SIGINT:
      if self.signal_name == "SIGINT":  # a second Ctrl-C: stop now, as without this watch
        raise KeyboardInterrupt
      self.signal_name = "SIGINT"
      print(
        "\nhffjax: Ctrl-C: saving a checkpoint after this step, then stopping (Ctrl-C again stops at once)",
        file=sys.stderr,
        flush=True,
      )
    self._flag.set()

  def reached(self, step: int, num_steps: int = 1) -> bool:
    """Whether to stop after the training call that ended at ``step`` (it ran ``num_steps`` steps).

    Every process must ask after every call. On many processes the sync point
    is a training step: the counter Orbax's checkpoint manager also reports to
    JAX's preemption service when it saves, so the two agree. Each step of a
    fused call is reported, so a sync point inside the call is not skipped.
    """
    if jax.process_count() > 1:
      hits = [multihost_utils.reached_preemption_sync_point(s) for s in range(step - num_steps + 1, step + 1)]
      return any(hits)
    return self._flag.is_set()


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _save(ckpts: ckpt_lib.Checkpoints, state: TrainState, step: int, last_saved: int | None, meta=None):
  """Saves ``state`` unless it is non-finite (then the last good checkpoint stays the newest)."""
  if not bool(sharding.fetch(_all_finite(state.params))):
    raise HFFError(
      f"parameters became non-finite by step {step}; checkpoint {last_saved} is kept; lower learning_rate"
    )
  if last_saved == step:
    return last_saved
  ckpts.save(step, state.to_dict(), meta)
  return step


def _evaluate_all(exp: Experiment, eval_fn, state: TrainState) -> dict:
  """Test metrics under the usual names, and ``validation_*`` when the run has a validation split."""
  test = evaluate_split(eval_fn, state, exp.dataset, "test", exp.mesh, exp.eval_batch_size)
  result = {k: v for k, v in test.items() if k not in ("eval_seconds", "examples_per_second", "num_examples")}
  result["eval_examples_per_second"] = test["examples_per_second"]
  if exp.dataset.validation is not None:
    val = evaluate_split(eval_fn, state, exp.dataset, "validation", exp.mesh, exp.eval_batch_size)
    result["validation_accuracy"] = val["test_accuracy"]
    result["validation_ensemble_accuracy"] = val["ensemble_accuracy"]
    result["validation_layer_accuracy"] = val["layer_accuracy"]
    for key in ("top5_accuracy", "readout_accuracy"):
      if key in val:
        result[f"validation_{key}"] = val[key]
  return result


def _writer(workdir: str, primary: bool, last_saved: int | None) -> writers.MetricWriter:
  """The metric writer (process 0), with records past the resumed checkpoint dropped."""
  error, writer = None, None
  try:
    writer = writers.MetricWriter(workdir, enabled=primary, resume_step=last_saved)
    writer.keep_up_to(last_saved)
  except HFFError as e:
    error = e
  except OSError as e:
    error = HFFError(storage.describe_os_error(e, workdir))
  sharding.raise_if_any(error, "opening the metric files")
  return writer


def _write(writer: writers.MetricWriter, record: dict) -> None:
  error = None
  try:
    writer.write(record)
  except OSError as e:
    error = HFFError(f"{storage.describe_os_error(e, writer.path)} (the last checkpoint is kept)")
  sharding.raise_if_any(error, "writing metrics")


def call_sizes(start: int, total: int, steps_per_call: int, boundaries: tuple[int, ...]) -> list[int]:
  """How many steps each training call runs: ``steps_per_call``, cut short at every multiple of ``boundaries``.

  A call never crosses an evaluation or checkpoint step, so those happen
  exactly where they would with one step per call.
  """
  sizes, step = [], start
  every = [b for b in boundaries if b > 0]
  while step < total:
    end = min([total, step + steps_per_call] + [(step // b + 1) * b for b in every])
    sizes.append(end - step)
    step = end
  return sizes


def _check_space(directory: str, state: TrainState, step: int | None) -> None:
  error = None
  try:
    ckpt_lib.check_space(directory, state.to_dict(), step)
  except HFFError as e:
    error = e
  sharding.raise_if_any(error, "checking free space")


def _compiled_train_calls(exp: Experiment, state: TrainState, sizes: list[int]) -> dict:
  """Each call size compiled ahead of time, so that the first interval's time is training, not compilation."""
  batch = sharding.batch_sharding(exp.mesh, int(exp.stacked))
  b = exp.config.batch_size
  compiled = {}
  for n in sorted(set(sizes)):
    lead = (n, b) if exp.stacked else (b,)
    labels = jax.ShapeDtypeStruct(lead, jnp.int32, sharding=batch)
    if exp.config.data_on_device:
      inputs = (labels, *exp.device_split())  # indices have the labels' shape
    else:
      inputs = (jax.ShapeDtypeStruct((*lead, *exp.dataset.image_shape), jnp.uint8, sharding=batch), labels)
    compiled[n] = exp.train_fn(n).lower(state, *inputs).compile()
  return compiled


def _group(items, sizes: list[int], stacked: bool):
  """Groups per-step tuples of host arrays into per-call tuples: stacked ``[n, …]``, or as they are."""
  items = iter(items)
  for n in sizes:
    group = [next(items) for _ in range(n)]
    yield tuple(np.stack(parts) for parts in zip(*group, strict=True)) if stacked else group[0]


def _train_inputs(exp: Experiment, start: int, total: int, sizes: list[int]):
  """``(iterator of per-call device inputs, reader)`` for the calls ``sizes`` starting at step ``start``.

  ``reader`` is the guarded host reader (:class:`~hffjax.data.GuardedBatches`:
  its ``error``, ``close()``), or ``None`` when the split is on the device.
  """
  config, batch_axis = exp.config, int(exp.stacked)
  if config.data_on_device:
    indices = ((exp.order.local_indices(s).astype(np.int32),) for s in range(start, total))
    split = exp.device_split()
    calls = sharding.device_prefetch(_group(indices, sizes, exp.stacked), exp.mesh, batch_axis=batch_axis)
    return ((*idx, *split) for idx in calls), None
  batches = data_lib.guarded_train_iterator(
    exp.dataset, exp.order, start, total, workers=config.data_workers, prefetch=config.data_prefetch
  )
  pairs = ((b["image"], b["label"]) for b in batches)
  calls = sharding.device_prefetch(_group(pairs, sizes, exp.stacked), exp.mesh, batch_axis=batch_axis)
  return calls, batches


def _raise_unreadable(reader, count: int, at_step: int, kept: str) -> None:
  """Raises on every process: the reading process its own error, the others naming it."""
  try:
    sharding.raise_if_any(None if reader is None else reader.error, "reading training batches")
  except HFFError as e:
    raise HFFError(f"{e}; {kept}") from e.__cause__
  raise HFFError(
    f"{count} training example{'s' * (count != 1)} up to step {at_step} "
    f"{'have' if count != 1 else 'has'} a negative label; {kept}; fix the labels"
  )


def _restore(exp: Experiment, ckpts: ckpt_lib.Checkpoints) -> tuple[TrainState, int | None, dict]:
  agreed = ckpts.agreed_steps()
  if not agreed:  # (every process takes the same branch)
    return exp.initial_state, None, {}
  last_saved, tree, meta = ckpts.restore(exp.abstract_state(), delete_damaged=True, agreed=agreed)
  return to_state(tree), last_saved, meta


def _starts_anew(config: ml_collections.ConfigDict, workdir: str, overwrite: bool) -> bool:
  """Whether the run in ``workdir`` starts from step 0 (process 0's view of the shared workdir)."""
  if overwrite:
    return True
  changes = workdir_lib.config_changes(workdir, config)
  return changes is None or (changes == [] and not storage.exists(storage.join(workdir, "checkpoints")))


def _load_init_from(exp: Experiment) -> tuple[TrainState, str]:
  """``config.init_from``'s state and report; every process fails together on a bad source."""
  error, loaded = None, None
  try:
    loaded = exp.pretrained_state()
  except HFFError as e:
    error = e
  sharding.raise_if_any(error, "loading init_from")
  return loaded


def train_and_evaluate(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  dataset: data_lib.Dataset | None = None,
  model=None,
  progress: bool | None = None,
  overwrite: bool = False,
) -> dict:
  """Trains (resuming from ``workdir`` if it holds checkpoints), evaluating every ``eval_every_steps``.

  See :func:`fit`, which this calls; returns the last evaluation record.

  Example (each evaluation prints a line)::

    >>> import tempfile
    >>> from hffjax.config import load_config
    >>> config = load_config("tiny")  # a shipped config: seconds on synthetic data
    >>> config.num_epochs = 1
    >>> workdir = tempfile.mkdtemp()
    >>> record = train_and_evaluate(config, workdir)  # doctest: +ELLIPSIS
    epoch 1/1  loss ...
    >>> record["epoch"], bool(0.0 <= record["test_accuracy"] <= 1.0)
    (1, True)
    >>> bool(evaluate_workdir(workdir)["test_accuracy"] == record["test_accuracy"])
    True
  """
  return fit(config, workdir, dataset=dataset, model=model, progress=progress, overwrite=overwrite)[0]


def fit(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  dataset: data_lib.Dataset | None = None,
  model=None,
  progress: bool | None = None,
  overwrite: bool = False,
) -> tuple[dict, Experiment, TrainState]:
  """Trains (resuming from ``workdir`` if it holds checkpoints), evaluating every ``eval_every_steps``.

  Writes ``workdir/config.json``, ``workdir/metrics.jsonl`` (one record per
  evaluation), TensorBoard files and Orbax checkpoints in
  ``workdir/checkpoints``. A run killed at any point and started again with
  the same arguments ends with the same parameters and metrics as one that
  was never interrupted. SIGTERM saves a checkpoint at the next step and
  raises :class:`Preempted`.

  Args:
    config: the run's config.
    workdir: where the run lives (shared by every process of a multi-host job).
    dataset: use this instead of loading ``config.dataset``.
    model: a block builder ``builder(model_config, *, input_shape, rngs) ->
      [block, ...]`` (the block contract: :mod:`hffjax.models.registry`) to
      use instead of ``config.model.kind``; the run's ``config.json`` names it
      as ``"module:qualname"`` in ``model.kind``, so a builder from an
      importable module is also found by ``hffjax eval``/``predict``, and one
      defined in a script is passed again to resume or
      :func:`~hffjax.train.restore_experiment`. ``config.model``'s other keys
      reach the builder as its ``model_config``.
    progress: show a progress bar (default: when stderr is a terminal).
    overwrite: discard a run in ``workdir`` that was trained with another config.

  Returns:
    ``(record, experiment, state)``: the last evaluation record, what the
    run was set up with, and the final training state.

  Example: see :func:`train_and_evaluate`; :func:`fit` also returns the
  experiment and state, e.g. for the trained model::

    >>> import tempfile
    >>> from hffjax.config import load_config
    >>> config = load_config("tiny")
    >>> record, exp, state = fit(config, tempfile.mkdtemp())  # doctest: +ELLIPSIS
    epoch 1/2  loss ...
    epoch 2/2  loss ...
    >>> type(exp.model(state)).__name__, int(state.step) == record["step"]
    ('HFFNet', True)
  """
  error = None
  try:
    if model is not None:
      kind = register_builder(model)
      config = config.copy_and_resolve_references()
      config.model.kind = kind
    config_lib.validate_config(config)
    ds = dataset if dataset is not None else data_lib.load_dataset(config)
    # A resumed run normalises as it started; a new or overwritten one as init_from's run did, or by estimate.
    resumable = not overwrite and workdir_lib.same_config(workdir, config)
    saved_stats = workdir_lib.saved_pixel_stats(workdir, ds) if resumable else None
    exp = setup(config, ds, saved_pixel_stats=saved_stats)
  except HFFError as e:
    error = e
  # Every process learns whether any failed, so none is left waiting in a collective.
  sharding.raise_if_any(error, "loading the data and building the model")
  primary = sharding.is_primary()
  # One job per workdir: the primary holds the lock until the run ends (the OS drops it if the run dies).
  lock, error = WorkdirLock(workdir, enabled=primary), None
  try:
    lock.acquire()
  except HFFError as e:
    error = e
  sharding.raise_if_any(error, "locking the workdir")
  try:
    return _train(config, workdir, exp, progress=progress, overwrite=overwrite)
  finally:
    lock.release()


def _train(
  config: ml_collections.ConfigDict, workdir: str, exp: Experiment, *, progress: bool | None, overwrite: bool
) -> tuple[dict, Experiment, TrainState]:
  """The loop of :func:`fit`, run while the workdir is locked."""
  primary = sharding.is_primary()
  # A disk without room for one checkpoint is refused before the workdir is touched.
  _check_space(storage.join(workdir, "checkpoints"), exp.initial_state, None)
  data_info = {
    "image_shape": list(exp.dataset.image_shape),
    "num_classes": exp.dataset.num_classes,
    "steps_per_epoch": exp.steps_per_epoch,
    "pixel_mean": list(exp.pixel_stats[0]),
    "pixel_std": list(exp.pixel_stats[1]),
    # What `hffjax predict` needs to name classes without reading the dataset.
    "class_names": list(exp.dataset.class_names) if exp.dataset.class_names else None,
  }
  # init_from is read before the workdir is written, so that a bad path leaves no run behind to refuse:
  # for a new run (or one started over), not for a resumed one or one prepare_workdir will refuse.
  pretrained = None
  if config.init_from and sharding.broadcast(
    np.asarray(int(_starts_anew(config, workdir, overwrite)), np.int32)
  ):
    pretrained = _load_init_from(exp)
  prepare_workdir(config, workdir, overwrite, data_info, exp.total_steps)
  ckpts = ckpt_lib.Checkpoints(workdir, keep=config.keep_checkpoints)
  state, last_saved, meta = _restore(exp, ckpts)
  if last_saved is None and config.init_from:
    state, report = pretrained or _load_init_from(exp)
    if primary:
      print(report, flush=True)
  del pretrained
  start = int(sharding.fetch(state.step))
  writer = _writer(workdir, primary, last_saved)

  total, every, spe = exp.total_steps, exp.eval_every_steps, exp.steps_per_epoch
  sizes = call_sizes(start, total, config.steps_per_call, (every, config.checkpoint_every_steps))
  train_calls, eval_fn = _compiled_train_calls(exp, state, sizes), exp.eval_fn()
  inputs, reader = _train_inputs(exp, start, total, sizes)
  saved_meter = meta.get("meter", meta.get("epoch_meter")) if start % every else None
  meter = Meter(exp.num_outputs, config.batch_size, saved_meter)
  bar = tqdm(
    total=total,
    initial=min(start, total),
    unit="step",
    dynamic_ncols=True,
    disable=(not progress if progress is not None else None) if primary else True,
    desc="train",
  )
  result, step, pending = None, start, None

  def kept():
    return (
      f"checkpoint {last_saved} in {ckpts.directory} is kept"
      if last_saved is not None
      else "no checkpoint was saved"
    )

  def consume(metrics, at_step, num_steps):
    """Adds a call's metrics, fetched one call late so that dispatch never waits on the device.

    Always called before an evaluation or a save, so a batch that a process
    could not read (counted in ``unreadable`` on every process) stops the
    run on all processes before its stand-in's update is kept.
    """
    metrics = sharding.fetch(metrics)
    if metrics["unreadable"]:
      _raise_unreadable(reader, int(metrics["unreadable"]), at_step, kept())
    try:
      meter.add(metrics, num_steps)
    except NonFiniteLoss as e:
      raise HFFError(f"{e} at step {at_step}; {kept()}; lower learning_rate") from None
    if at_step % config.log_every_steps < num_steps or at_step == total:
      bar.set_postfix(epoch=(at_step - 1) // spe + 1, **meter.postfix())

  try:
    with PreemptionWatch() as preemption:
      for n, args in zip(sizes, inputs, strict=True):
        state, metrics = train_calls[n](state, *args)
        step += n
        bar.update(n)
        if pending is not None:
          consume(*pending)
        pending = (metrics, step, n)
        stop = preemption.reached(step, n) and step < total
        if step % every == 0 or step == total:
          consume(*pending)
          pending = None
          try:
            result = _evaluation_record(exp, eval_fn, state, step, meter)
          except HFFError as e:  # e.g. an unreadable record: every process raises here together
            raise HFFError(f"{e} (evaluating step {step}); {kept()}") from e.__cause__
          _check_space(
            ckpts.directory, state, step
          )  # before the record, so a full disk leaves the workdir as it was
          _write(writer, result)
          # A record off the evaluation grid (the run's last step) keeps its sums, so that a
          # longer run continued from here averages the whole interval.
          last_saved = _save(
            ckpts, state, step, last_saved, {"meter": meter.to_dict()} if step % every else None
          )
          if primary:
            bar.write(_progress_line(result, config, spe))
          meter = Meter(exp.num_outputs, config.batch_size)
        elif stop or (config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0):
          consume(*pending)
          pending = None
          last_saved = _save(ckpts, state, step, last_saved, {"meter": meter.to_dict()})
        if stop:
          ckpts.wait()
          raise Preempted(
            f"stopped by {preemption.signal_name} at step {step}; checkpoint {last_saved} is saved; "
            "re-run the same command to resume",
            preemption.signal_name,
          )
  finally:
    bar.close()
    if reader is not None:
      reader.close()  # stops grain's reader threads or worker processes
    writer.close()
    ckpts.close()
  if result is None:  # Already trained to the end: report the restored model.
    epoch = start // spe if start % spe == 0 else round(start / spe, 4)  # as in the records
    result = {"step": start, "epoch": epoch, **_evaluate_all(exp, eval_fn, state)}
  return result, exp, state


def _epoch_number(step: int, steps_per_epoch: int) -> int | float:
  """``step`` in epochs as train and eval both report it: whole epochs as an int, else 4 decimals."""
  return step // steps_per_epoch if step % steps_per_epoch == 0 else round(step / steps_per_epoch, 4)


def _evaluation_record(exp: Experiment, eval_fn, state: TrainState, step: int, meter: Meter) -> dict:
  seconds = meter.seconds()
  record = {
    "step": step,
    "epoch": _epoch_number(step, exp.steps_per_epoch),
    **meter.summary(),
    **_evaluate_all(exp, eval_fn, state),
    "interval_seconds": seconds,
    "train_examples_per_second": meter.examples_per_second(seconds),
    "steps_per_second": (meter.steps - meter.steps_at_start) / max(seconds, 1e-9),
    "time": time.time(),
  }
  if step % exp.steps_per_epoch == 0 and exp.config.eval_every_steps in (0, exp.steps_per_epoch):
    record["epoch_seconds"] = seconds
  return record


def _progress_line(record: dict, config: ml_collections.ConfigDict, spe: int) -> str:
  accs = "/".join(f"{100 * a:.1f}" for a in record["layer_accuracy"])
  val = f"  val {100 * record['validation_accuracy']:.2f}%" if "validation_accuracy" in record else ""
  if "readout_accuracy" in record:
    val = f"  read-out {100 * record['readout_accuracy']:.2f}%" + val
  where = (
    f"epoch {record['epoch']}/{config.num_epochs}"
    if not config.num_steps and isinstance(record["epoch"], int)
    else f"step {record['step']} (epoch {record['step'] / spe:.2f})"
  )
  return (
    f"{where}  loss {record['train_loss']:.4f}  test {100 * record['test_accuracy']:.2f}% "
    f"(ensemble {100 * record['ensemble_accuracy']:.2f}%, blocks {accs}){val}  {record['interval_seconds']:.1f} s"
  )


def evaluate_workdir(workdir: str, data_dir: str | None = None) -> dict:
  """Restores the latest checkpoint of ``workdir`` and evaluates it on the test split.

  What ``hffjax eval`` prints: the accuracies of :func:`train_and_evaluate`'s
  records, ``examples_per_second``, and ``learner_fingerprints`` (one hash per
  learner's block parameters). Example: see :func:`train_and_evaluate`.
  """
  exp, state, step = restore_experiment(workdir, data_dir)
  eval_fn = exp.eval_fn()
  # Compile outside the timed pass so examples_per_second measures inference only.
  evaluate_split(eval_fn, state, exp.dataset, "test", exp.mesh, exp.eval_batch_size)
  result = evaluate_split(eval_fn, state, exp.dataset, "test", exp.mesh, exp.eval_batch_size)
  return {
    "step": step,
    "epoch": _epoch_number(step, workdir_lib.trained_steps_per_epoch(workdir, exp.steps_per_epoch)),
    **result,
    "params_fingerprint": ckpt_lib.fingerprint(state.params),
    "learner_fingerprints": learner_fingerprints(sharding.fetch(state.params), exp.model(state).num_blocks),
  }


def predict_files(workdir: str, paths: list[str], top_k: int = 3) -> list[dict]:
  """The latest checkpoint's top-``top_k`` classes for each image file (or folder of them).

  Images are converted to the model's channels and resized to its input size.
  Scores are the model's own rule (HFF and backprop: the last block's logits);
  ``probability`` is their softmax (Forward-Forward reports ``goodness`` instead).
  """
  from hffjax.data.files import expand_paths, read_images  # noqa: PLC0415

  if top_k < 1:
    raise HFFError(f"--top_k must be >= 1, got {top_k}")
  files = expand_paths(paths)
  exp, state, _ = restore_experiment(workdir, read_data=False)
  images = read_images(files, exp.dataset.image_shape)
  model = exp.model(state)
  scores = np.asarray(model.predict_scores(model(jnp.asarray(images), train=False)), np.float64)
  names = exp.dataset.class_names or tuple(str(c) for c in range(exp.dataset.num_classes))
  key = "goodness" if exp.config.method == "ff" else "probability"
  if key == "probability":
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
  out = []
  for path, row in zip(files, scores, strict=True):
    top = np.argsort(-row, kind="stable")[: min(top_k, len(row))]
    out.append(
      {"file": path, "top": [{"class": names[c], "index": int(c), key: round(float(row[c]), 6)} for c in top]}
    )
  return out
