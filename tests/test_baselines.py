import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hffjax.baselines import build_bp_model, build_ff_model
from hffjax.baselines.ff import wrong_labels
from hffjax.config import base_config
from hffjax.errors import HFFError
from hffjax.train import merge_model, predict, split_model


def _cfg(kind="mlp"):
  c = base_config().model
  c.kind = kind
  c.widths = (16, 12, 8)
  c.channels = (4, 6)
  c.pool = (False, True)
  return c


X = jax.random.uniform(jax.random.key(0), (6, 8, 8, 1), maxval=255.0)
Y = jnp.array([0, 1, 2, 3, 4, 0])


def test_ff_negative_labels_are_uniform_over_the_other_classes():
  labels = jnp.tile(jnp.arange(5), 4000)
  wrong = np.asarray(wrong_labels(jax.random.key(1), labels, 5))
  assert not np.any(wrong == np.asarray(labels))
  for c in range(5):
    others = wrong[np.asarray(labels) == c]
    counts = np.bincount(others, minlength=5)
    assert counts[c] == 0
    assert np.all(np.abs(counts[np.arange(5) != c] / len(others) - 0.25) < 0.04)


def test_ff_label_is_written_over_the_first_inputs_as_pixels():
  model = build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0, pixel_mean=0.25, pixel_std=0.5)
  h = jnp.ones((2, 8, 8, 1)) * 7.0
  out = model.embed(h, jnp.array([3, 0])).reshape(2, -1)
  white, black = (1.0 - 0.25) / 0.5, -0.25 / 0.5  # pixel values 255 and 0 after normalisation
  np.testing.assert_allclose(out[0, :5], [black, black, black, white, black])
  np.testing.assert_allclose(out[1, :5], [white, black, black, black, black])
  assert np.all(out[:, 5:] == 7.0)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_ff_inference_is_one_pass_per_class(kind):
  model = build_ff_model(_cfg(kind), input_shape=(8, 8, 1), num_classes=5, seed=0)
  scores = model(X)
  assert len(scores) == model.num_blocks and scores[0].shape == (6, 5)
  h = model.normalize_images(X)
  for c in range(5):
    g = model.goodness(model.embed(h, jnp.full((6,), c)), train=False)
    for layer in range(model.num_blocks):
      np.testing.assert_allclose(scores[layer][:, c], g[layer], rtol=1e-5)
  # The prediction ignores the first block's goodness.
  np.testing.assert_allclose(model.predict_scores(scores), sum(scores[1:]), rtol=1e-6)
  # predict's "model" is that rule; "last" is the last block alone, as for every model.
  images = np.asarray(X, np.uint8)
  model_rule, last = (np.asarray(predict(model, images, mode)) for mode in ("model", "last"))
  np.testing.assert_array_equal(model_rule, np.argmax(model.predict_scores(model(images)), -1))
  np.testing.assert_array_equal(last, np.argmax(model(images)[-1], -1))
  np.testing.assert_array_equal(np.asarray(predict(model, images)), model_rule)
  if kind == "mlp":  # three blocks: the rule (blocks 1 and 2) and the last block disagree on some images
    assert (model_rule != last).any()


def test_ff_loss_is_local():
  model = build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0)
  graphdef, params, stats = split_model(model)

  def block_loss(params, k):
    return merge_model(graphdef, params, stats).loss(X, Y, key=jax.random.key(0))[1][k]

  grads = jax.grad(block_loss)(params, 2)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads["blocks"][0]))
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads["blocks"][2]))


def test_ff_read_out_is_one_neutral_pass_that_trains_only_itself():
  model = build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0)
  graphdef, params, stats = split_model(model)
  h = model.normalize_images(X)
  neutral = model.embed_neutral(h).reshape(6, -1)[:, :5]
  white, black = model.embed(h, jnp.zeros(6, jnp.int32)).reshape(6, -1)[0, :2]
  np.testing.assert_allclose(neutral, black + (white - black) / 5, rtol=1e-6)  # each label pixel at 1/C

  def readout_loss(params):
    m = merge_model(graphdef, params, stats)
    logits = m.extra_rules(X)["readout"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(6), Y])

  grads = jax.grad(readout_loss)(params)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads["blocks"]))
  assert np.any(np.asarray(grads["readout"]["kernel"]) != 0)
  # The read-out sees blocks 2 and 3 only: 12 + 8 features.
  assert params["readout"]["kernel"].shape == (20, 5)


def test_ff_without_read_out_has_no_probe():
  model = build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0, readout=False)
  assert model.readout is None and model.extra_rules(X) == {}
  with_probe = build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0)
  key = jax.random.key(0)
  np.testing.assert_allclose(
    model.loss(X, Y, key=key)[1], with_probe.loss(X, Y, key=key)[1]
  )  # same blocks' losses


def test_ff_goodness_rules_and_peer_normalisation():
  def total(**kw):
    m = build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0, **kw)
    return m.loss(X, Y, key=jax.random.key(0))[1]

  sharp, flat = total(goodness="sum"), total(goodness="mean")
  assert not np.allclose(sharp, flat)
  with pytest.raises(HFFError, match="unknown ff_goodness"):
    build_ff_model(_cfg(), input_shape=(8, 8, 1), num_classes=5, seed=0, goodness="max")
  # Peer normalisation only adds to each block's loss.
  assert np.all(np.asarray(total(peer_norm=1.0)) > np.asarray(sharp))


def test_ff_refuses_more_classes_than_inputs():
  with pytest.raises(HFFError, match="label over the first"):
    build_ff_model(_cfg(), input_shape=(4, 4, 1), num_classes=20, seed=0)


@pytest.mark.parametrize("method", ["bp", "ff"])
def test_hff_loss_settings_a_baseline_ignores_are_warned_about(capsys, method):
  from hffjax.data import make_synthetic
  from hffjax.train.experiment import build_network

  c = base_config()
  c.model.widths, c.method = (16, 12), method
  ds = make_synthetic(num_train=32, num_test=16, image_shape=(8, 8, 1), num_classes=4, seed=0)
  build_network(c, ds)
  assert "warning" not in capsys.readouterr().err  # the defaults: nothing to say
  c.margin, c.loss_weights = 0.2, (5.0,)
  build_network(c, ds)
  err = capsys.readouterr().err.strip()
  assert err == (
    f"hffjax: warning: loss_weights=(5.0,) and margin=0.2 shape HFF's prototype loss and have no effect "
    f"with method={method!r} (a new run can leave them out)"
  ), err
  c.method = "hff"
  c.loss_weights = (1.0, 0.5)
  build_network(c, ds)
  assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_bp_trains_every_block_from_one_loss(kind):
  model = build_bp_model(_cfg(kind), input_shape=(8, 8, 1), num_classes=5, seed=0)
  graphdef, params, stats = split_model(model)
  scores = model(X)
  assert len(scores) == 1 and scores[0].shape == (6, 5)

  def loss(params):
    return merge_model(graphdef, params, stats).loss(X, Y, key=jax.random.key(0))[0]

  grads = jax.grad(loss)(params)
  for block in grads["blocks"].values():
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(block))


def _compiled_convolutions(method: str) -> int:
  import re

  from hffjax import sharding, train
  from hffjax.data import make_synthetic

  c = base_config()
  c.method, c.batch_size = method, 8
  c.model = _cfg("cnn")
  c.model.channels, c.model.pool = (4, 6, 8), (False, True, True)
  ds = make_synthetic(num_train=16, num_test=4, image_shape=(8, 8, 1), num_classes=5, seed=0)
  exp = train.setup(c, dataset=ds)
  x, y = sharding.global_batch(exp.mesh, ds.train_images[:8], ds.train_labels[:8])
  hlo = exp.train_fn().lower(exp.initial_state, x, y).compile().as_text()
  return len(re.findall(r"= \S+ convolution\(", hlo))


def test_hff_step_computes_no_input_gradient_convolutions():
  """With stop-gradient, the compiled HFF step has only forward and weight-gradient convolutions."""
  num_blocks = 3
  assert _compiled_convolutions("hff") == 2 * num_blocks
  # Backprop also needs the gradient with respect to every block's input but the first.
  assert _compiled_convolutions("bp") == 3 * num_blocks - 1
