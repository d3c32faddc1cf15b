"""What training, evaluation and benchmarks share: data, model, mesh, optimizer, compiled steps."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from hffjax import baselines, sharding
from hffjax import config as config_lib
from hffjax import data as data_lib
from hffjax.data.pipeline import host_resize_size
from hffjax.errors import HFFError
from hffjax.io import checkpoint as ckpt_lib
from hffjax.io import storage
from hffjax.io import workdir as workdir_lib
from hffjax.models import build_model
from hffjax.models.pretrained import load_pretrained
from hffjax.models.registry import register_builder
from hffjax.train.optim import make_optimizer
from hffjax.train.predict import ensemble_blocks
from hffjax.train.state import TrainState, merge_model, split_model
from hffjax.train.step import gather_batches, make_eval_step, make_multi_step, make_train_step


@dataclasses.dataclass(eq=False)
class Experiment:
  """What training and evaluation share: data, model definition, mesh, compiled steps."""

  config: ml_collections.ConfigDict
  dataset: data_lib.Dataset
  mesh: jax.sharding.Mesh
  graphdef: nnx.GraphDef
  num_outputs: int  # score arrays the model returns: one per block (HFF, FF), one (BP)
  initial_state: TrainState
  optimizer: optax.GradientTransformation
  order: data_lib.TrainOrder
  eval_batch_size: int
  total_steps: int
  pixel_stats: tuple  # (mean, std) the model normalises images with; kept with the run in data.json

  @property
  def steps_per_epoch(self) -> int:
    return self.order.steps_per_epoch

  @property
  def eval_every_steps(self) -> int:
    return self.config.eval_every_steps or self.steps_per_epoch

  @property
  def top5(self) -> bool:
    """Whether evaluation also counts top-5 hits (for 20 classes or more)."""
    return self.dataset.num_classes >= 20

  @functools.cache  # noqa: B019  (one jitted function per experiment, so its compilations are reused)
  def eval_fn(self):
    blocks = ensemble_blocks(self.config, self.num_outputs)
    return jax.jit(
      make_eval_step(self.graphdef, blocks, top5=self.top5),
      in_shardings=(sharding.replicated(self.mesh), sharding.replicated(self.mesh))
      + (sharding.batch_sharding(self.mesh),) * 3,
      out_shardings=sharding.replicated(self.mesh),
    )

  @property
  def stacked(self) -> bool:
    """Whether a training call takes ``[K, B, …]`` inputs (``steps_per_call > 1``) rather than ``[B, …]``."""
    return self.config.steps_per_call > 1

  @functools.cache  # noqa: B019
  def train_fn(self, num_steps: int = 1):
    """The jitted training call: ``num_steps`` fused steps, state donated.

    Its inputs are ``(state, images, labels)``, or with ``data_on_device``
    ``(state, indices, *self.device_split())``; batches are ``[K, B, …]`` when
    :attr:`stacked`, else ``[B, …]`` (then ``num_steps`` must be 1).
    """
    step = make_train_step(
      self.graphdef,
      self.optimizer,
      augment_flip=self.config.augment_flip,
      augment_shift=self.config.augment_shift,
      seed=self.config.seed,
      lean=self.config.train_mode == "lean",
    )
    if self.stacked:
      step = make_multi_step(step, num_steps)
    elif num_steps != 1:
      raise ValueError("an unstacked training call runs one step")
    rep, batch = sharding.replicated(self.mesh), sharding.batch_sharding(self.mesh, int(self.stacked))
    in_shardings = (rep, batch, batch)
    if self.config.data_on_device:
      step, in_shardings = gather_batches(step), (rep, batch, rep, rep)
    return jax.jit(step, in_shardings=in_shardings, out_shardings=(rep, rep), donate_argnums=0)

  @functools.cache  # noqa: B019
  def device_split(self) -> tuple[jax.Array, jax.Array]:
    """The whole training split (images, labels), replicated on every device (``data_on_device``)."""
    split = self.dataset.train
    return sharding.replicate(self.mesh, split.images), sharding.replicate(
      self.mesh, split.labels.astype("int32")
    )

  def abstract_state(self):
    return ckpt_lib.abstract_like(self.initial_state.to_dict(), sharding.replicated(self.mesh))

  def model(self, state: TrainState) -> nnx.Module:
    return merge_model(self.graphdef, *sharding.fetch((state.params, state.batch_stats)))

  def pretrained_state(self) -> tuple[TrainState, str]:
    """The initial state with ``config.init_from``'s matching arrays loaded, and the one-line report."""
    params, stats = sharding.fetch((self.initial_state.params, self.initial_state.batch_stats))
    params, stats, report = load_pretrained(self.config.init_from, params, stats)
    state = TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats, opt_state=self.optimizer.init(params)
    )
    line = report.line()
    if not self.config.pixel_mean:
      source = workdir_lib.source_pixel_stats(self.config.init_from, self.dataset)
      if source is None:
        line += "; it records no pixel statistics, so images are normalised with this run's own"
      elif tuple(map(tuple, source)) == tuple(map(tuple, self.pixel_stats)):
        line += "; images normalised with its pixel statistics"
      else:
        line += "; images normalised with this workdir's saved pixel statistics, not the source's"
    return jax.device_put(state, sharding.replicated(self.mesh)), line


def pixel_stats_for(config: ml_collections.ConfigDict, ds: data_lib.Dataset, saved=None) -> tuple:
  """``(mean, std)`` to normalise with: the config's, else a run's saved ones, else ``init_from``'s run's
  (a transferred backbone sees images as it was trained on them), else estimated from ``ds``."""
  if config.pixel_mean:
    return tuple(config.pixel_mean), tuple(config.pixel_std)
  if saved is not None:
    return tuple(saved[0]), tuple(saved[1])
  if config.init_from:
    source = workdir_lib.source_pixel_stats(config.init_from, ds)
    if source is not None:
      return source
  return ds.pixel_stats()


def build_network(config: ml_collections.ConfigDict, ds: data_lib.Dataset, pixel_stats=None) -> nnx.Module:
  """The model ``config.method`` trains: HFF, or a baseline on the same blocks."""
  pixel_mean, pixel_std = pixel_stats if pixel_stats is not None else pixel_stats_for(config, ds)
  common = dict(
    input_shape=ds.image_shape,
    num_classes=ds.num_classes,
    seed=config.seed,
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
    frozen=tuple(config.freeze),
  )
  ignored = [f"{k}={config[k]!r}" for k in ("loss_weights", "margin") if config.method != "hff" and config[k]]
  if ignored and sharding.is_primary():
    ckpt_lib.warn(
      f"{' and '.join(ignored)} shape HFF's prototype loss and have no effect with method={config.method!r} "
      "(a new run can leave them out)"
    )
  if config.method == "bp":
    return baselines.build_bp_model(config.model, **common)
  if config.method == "ff":
    return baselines.build_ff_model(
      config.model,
      threshold=config.ff_threshold,
      goodness=config.ff_goodness,
      peer_norm=config.ff_peer_norm,
      readout=config.ff_readout,
      **common,
    )
  return build_model(config.model, margin=config.margin, loss_weights=config.loss_weights, **common)


def setup(
  config: ml_collections.ConfigDict,
  dataset: data_lib.Dataset | None = None,
  mesh: jax.sharding.Mesh | None = None,
  *,
  saved_pixel_stats=None,
) -> Experiment:
  """Validates the config, loads the data, builds the model, optimizer and mesh.

  Args:
    config: a full config (see :func:`hffjax.config.base_config`).
    dataset: use this instead of loading ``config.dataset``.
    mesh: a mesh with a ``data`` axis; default: every device.
    saved_pixel_stats: ``(mean, std)`` a run was trained with (see ``pixel_stats_for``).
  """
  config_lib.validate_config(config)
  ds = dataset if dataset is not None else data_lib.load_dataset(config)
  mesh = mesh if mesh is not None else sharding.make_mesh()
  order = data_lib.TrainOrder(
    len(ds.train), config.batch_size, config.seed, jax.process_index(), jax.process_count()
  )
  sharding.check_batch_size(config.batch_size, mesh)
  if config.data_on_device and not isinstance(ds.train, data_lib.ArraySource):
    raise HFFError(
      f"data_on_device keeps the training split in device memory, but {config.dataset}'s is streamed "
      "from disk; use it with in-memory datasets (IDX, synthetic) or set data_on_device=False"
    )
  if config.data_on_device and (size := host_resize_size(ds, ds.train)):
    shape = tuple(ds.train.image_shape[:2])
    raise HFFError(
      f"data_on_device gathers the stored {shape[0]}x{shape[1]} images on the device, but image_size={size} "
      "needs them resized on the host; set data_on_device=False or image_size=0"
    )
  if config.augment_shift and config.augment_shift >= min(ds.image_shape[:2]):
    raise HFFError(
      f"augment_shift={config.augment_shift} moves {ds.image_shape[0]}x{ds.image_shape[1]} images by as much "
      "as their side or more; use a shift below it (a few pixels)"
    )
  n_dev = mesh.devices.size
  eval_bs = min(config.eval_batch_size, max(len(ds.test), len(ds.validation or ())))
  eval_bs = -(-eval_bs // n_dev) * n_dev
  pixel_stats = pixel_stats_for(config, ds, saved_pixel_stats)
  model = build_network(config, ds, pixel_stats)
  probe = jax.ShapeDtypeStruct((1, *ds.image_shape), jnp.uint8)
  num_outputs = len(jax.eval_shape(lambda m, x: m(x), model, probe))
  ensemble_blocks(config, num_outputs)
  graphdef, params, batch_stats = split_model(model)
  total_steps = config.num_steps or config.num_epochs * order.steps_per_epoch
  optimizer = make_optimizer(config, total_steps)
  state = TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    opt_state=optimizer.init(params),
  )
  state = jax.device_put(state, sharding.replicated(mesh))
  return Experiment(
    config, ds, mesh, graphdef, num_outputs, state, optimizer, order, eval_bs, total_steps, pixel_stats
  )


def to_state(tree: dict) -> TrainState:
  return TrainState(**tree)


# What a run's data.json must hold for it to be restored without reading its dataset.
STAND_IN_KEYS = ("image_shape", "num_classes", "pixel_mean", "pixel_std", "class_names")


def _stand_in_dataset(name: str, saved: dict, batch_size: int) -> data_lib.Dataset:
  """A dataset of one batch of blank images with the shape, classes and names a run saved: all a
  restored model needs to be rebuilt (no memory: the batch is one image, broadcast)."""
  shape = tuple(saved["image_shape"])
  images = np.broadcast_to(np.zeros((1, *shape), np.uint8), (batch_size, *shape))
  split = data_lib.ArraySource(images, np.zeros(batch_size, np.int32))
  names = tuple(saved["class_names"]) if saved["class_names"] else None
  return data_lib.Dataset(name, split, split, int(saved["num_classes"]), class_names=names)


def restore_experiment(
  workdir: str, data_dir: str | None = None, *, model=None, read_data: bool = True
) -> tuple[Experiment, TrainState, int]:
  """The experiment a workdir was trained with, and its latest checkpointed state.

  ``data_dir`` evaluates on another copy of the dataset; data whose image
  shape or class count differs from what the run was trained on is refused.
  ``model`` is the block builder a run was trained with through
  ``train_and_evaluate(..., model=builder)`` when it is not importable (a
  script's or notebook's own function). ``read_data=False`` (what
  ``hffjax predict`` passes) rebuilds the model from the run's ``data.json``
  alone, so the dataset need not be on this machine; its splits are then
  stand-ins, one batch of blank images (a run saved before ``data.json``
  named its classes still reads its dataset).
  """
  path = storage.join(workdir, "config.json")
  if not storage.exists(path):
    raise HFFError(f"{workdir} has no config.json; pass the --workdir of a `hffjax train` run")
  try:
    config = config_lib.from_json(storage.read_text(path))
  except (ValueError, TypeError, AttributeError) as e:
    raise HFFError(f"{path} is not a valid saved config ({e}); re-run train") from None
  passed = register_builder(model) if model is not None else config.model.kind
  if passed != config.model.kind:
    raise HFFError(
      f"{workdir} was trained with model.kind {config.model.kind!r}, not {passed!r}; "
      "pass the builder it was trained with"
    )
  if data_dir:
    if config.dataset == "synthetic":
      raise HFFError(
        f"{workdir} was trained on synthetic data, which is generated, not read: --data_dir does not apply"
      )
    config.data_dir = data_dir
  config_lib.validate_config(config)
  saved = workdir_lib.read_data_json(workdir, "restore it from a copy of the run") or {}
  # Evaluation does not need the training batch: round it to this machine's device count.
  n_dev = len(jax.devices())
  config.batch_size = max(-(-config.batch_size // n_dev) * n_dev, n_dev)
  if not read_data and all(k in saved for k in STAND_IN_KEYS):
    ds = _stand_in_dataset(config.dataset, saved, config.batch_size)
  else:
    ds = data_lib.load_dataset(config)
  if saved:
    trained_on = {k: saved.get(k) for k in ("image_shape", "num_classes")}
    now = {"image_shape": list(ds.image_shape), "num_classes": ds.num_classes}
    if trained_on != now:
      raise HFFError(
        f"the run was trained on images {tuple(trained_on['image_shape'])} with "
        f"{trained_on['num_classes']} classes but this data has {tuple(now['image_shape'])} with "
        f"{now['num_classes']}; pass the --data_dir of the dataset it was trained on"
      )
  exp = setup(config, ds, saved_pixel_stats=workdir_lib.saved_pixel_stats(workdir, ds))
  ckpts = ckpt_lib.Checkpoints(workdir, read_only=True)  # the run may be training beside us
  try:
    step, tree, _ = ckpts.restore(exp.abstract_state())
    state = to_state(tree)
  finally:
    ckpts.close()
  return exp, state, step
