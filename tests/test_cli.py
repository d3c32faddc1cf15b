import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, tree_hashes
from test_data import write_idx_folder

from hffjax.main import run

TINY = os.path.join(ROOT, "configs", "tiny.py")


def _cli(*args):
  return subprocess.run(
    [sys.executable, "-m", "hffjax", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
  )


def _read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_train_resume_eval_end_to_end(tmp_path):
  workdir = str(tmp_path / "run")
  first = _cli("train", "--config", TINY, "--workdir", workdir)
  assert first.returncode == 0, first.stderr[-2000:]
  records = _read_metrics(workdir)
  assert [r["epoch"] for r in records] == [1, 2]
  for key in ("step", "epoch", "train_loss", "test_accuracy", "layer_accuracy"):
    assert key in records[-1]
  assert len(records[-1]["layer_accuracy"]) == 2
  assert "block  test accuracy" in first.stdout
  assert f"model  {100 * records[-1]['test_accuracy']:12.2f}%" in first.stdout  # the model's own rule

  # Re-running with more epochs resumes from the last checkpoint instead of starting over.
  second = _cli("train", "--config", TINY, "--workdir", workdir, "--config.num_epochs=3")
  assert second.returncode == 0, second.stderr[-2000:]
  records = _read_metrics(workdir)
  assert [r["epoch"] for r in records] == [1, 2, 3]
  assert records[-1]["step"] == 3 * records[0]["step"]

  ev = _cli("eval", "--workdir", workdir)
  assert ev.returncode == 0, ev.stderr[-2000:]
  result = json.loads(ev.stdout.strip().splitlines()[-1])
  assert result["step"] == records[-1]["step"]
  assert result["test_accuracy"] == pytest.approx(records[-1]["test_accuracy"])
  assert result["layer_accuracy"] == pytest.approx(records[-1]["layer_accuracy"])
  assert result["examples_per_second"] > 0


def _expect_error(capsys, argv, fragment):
  code = run(argv)
  err = capsys.readouterr().err.strip()
  assert code != 0
  assert len(err.splitlines()) == 1, err
  assert err.startswith("hffjax: error:") and fragment in err, err
  assert "Traceback" not in err


@pytest.mark.parametrize(
  "override,fragment",
  [
    ("--config.dataset=no_such_dataset_xyz", "unknown dataset"),
    ("--config.batch_size=0", "batch_size must be > 0"),
    ("--config.batch_size=-4", "batch_size must be > 0"),
    ("--config.batch_size=100000", "larger than the 256 training examples"),
    ("--config.no_such_key=1", "unknown config key 'no_such_key'"),
    ("--config.model.no_such_key=1", "unknown config key 'model.no_such_key'"),
    ("--config.num_epochs=two", "num_epochs"),
    ("--config.model.kind=transformer", "unknown model.kind"),
  ],
)
def test_bad_config_is_one_line(capsys, tmp_path, override, fragment):
  _expect_error(capsys, ["train", "--config", TINY, "--workdir", str(tmp_path), override], fragment)


def test_an_override_without_a_value_does_not_take_the_next_flag(capsys, tmp_path):
  argv = ["train", "--config", TINY, "--config.augment_flip", "--workdir", str(tmp_path)]
  _expect_error(capsys, argv, "--config.augment_flip needs a value: --config.augment_flip=VALUE")


@pytest.mark.parametrize(
  "flags,fragment",
  [
    (["--batch_size", "64"], "--batch_size applies only to --speed; leave it out"),
    (["--speed", "--mlp_epochs", "1"], "--mlp_epochs applies only to the bench without --speed"),
    (["--speed", "--mlp_epochs", "1", "--cnn_epochs", "1"], "--mlp_epochs and --cnn_epochs apply only to"),
  ],
)
def test_a_bench_flag_the_chosen_bench_would_ignore_is_refused(capsys, tmp_path, flags, fragment):
  _expect_error(capsys, ["bench", "--out", str(tmp_path / "b.json"), *flags], fragment)
  assert not (tmp_path / "b.json").exists()


def test_a_bench_report_path_that_cannot_be_written_is_refused_before_the_bench_runs(capsys, tmp_path):
  (tmp_path / "a_file").write_text("")
  blocked = tmp_path / "a_file" / "b.json"
  _expect_error(capsys, ["bench", "--quick", "--out", str(blocked)], f"--out {blocked} cannot be written (")
  _expect_error(capsys, ["bench", "--quick", "--out", str(tmp_path)], f"--out {tmp_path} cannot be written (")
  argv = ["bench", "--quick", "--out", str(tmp_path / "b.json"), "--markdown", str(blocked)]
  _expect_error(capsys, argv, f"--markdown {blocked} cannot be written (")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written, no empty report left


@pytest.mark.parametrize("flag", ["--batch_size", "--scaling_examples", "--mlp_epochs", "--cnn_epochs"])
def test_a_bench_count_below_one_is_a_usage_error(capsys, tmp_path, flag):
  with pytest.raises(SystemExit) as exit_info:
    run(["bench", "--out", str(tmp_path / "b.json"), flag, "-3"])
  assert exit_info.value.code == 2
  assert f"argument {flag}: must be an integer >= 1, got -3" in capsys.readouterr().err


def test_early_exit_flags_without_early_exit_and_an_empty_workdir_are_refused(capsys, tmp_path):
  workdir = str(tmp_path / "w")
  for flags in (["--confidence", "margin"], ["--thresholds", "0.9"], ["--target_loss", "0.01"]):
    _expect_error(
      capsys,
      ["eval", "--workdir", workdir, *flags],
      f"{flags[0]} applies only with --early_exit; add it or leave it out",
    )
  for argv, fragment in (
    (
      ["eval", "--workdir", workdir, "--early_exit", "--target_loss", "-1"],
      "must be a number in [0, 1], got -1.0",
    ),
    (
      ["train", "--config", TINY, "--workdir", ""],
      "argument --workdir: must be a folder path, got an empty one",
    ),
  ):
    with pytest.raises(SystemExit) as exit_info:
      run(argv)
    assert exit_info.value.code == 2 and fragment in capsys.readouterr().err


def test_an_empty_threshold_list_is_refused_not_replaced_by_the_default_grid(capsys, tmp_path):
  argv = ["eval", "--workdir", str(tmp_path / "w"), "--early_exit", "--thresholds", ""]
  _expect_error(capsys, argv, "--thresholds must be comma-separated numbers, got ''")


def test_a_damaged_config_json_is_one_line_for_train_and_eval(capsys, tmp_path):
  workdir = tmp_path / "w"
  argv = ["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=1"]
  assert run(argv) == 0
  capsys.readouterr()
  for text in ("[]", '{"model": 3}', "{"):
    (workdir / "config.json").write_text(text)
    _expect_error(capsys, ["eval", "--workdir", str(workdir)], "config.json is not a valid saved config")
    _expect_error(capsys, argv, "config.json is unreadable or not a saved config, so this run's config")
    assert (workdir / "config.json").read_text() == text  # kept for the user to restore


def test_a_shift_as_large_as_the_image_is_refused(capsys, tmp_path):
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "w"), "--config.augment_shift=8"]
  _expect_error(capsys, argv, "augment_shift=8 moves 8x8 images by as much as their side or more")


def test_missing_config_file(capsys, tmp_path):
  _expect_error(capsys, ["train", "--config", "nope.py", "--workdir", str(tmp_path)], "not found")


def _damage_missing_file(folder):
  os.remove(folder / "train-labels-idx1-ubyte.gz")


def _damage_truncated(folder):
  path = folder / "t10k-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:-200])


@pytest.mark.parametrize(
  "damage,max_label,fragment",
  [
    (_damage_missing_file, 9, "lacks train-labels-idx1-ubyte.gz"),
    (_damage_truncated, 9, "t10k-images-idx3-ubyte.gz"),
    (None, 12, "outside [0, 10)"),
  ],
)
def test_bad_idx_data_is_one_line(capsys, tmp_path, damage, max_label, fragment):
  write_idx_folder(tmp_path, max_label=max_label, seed=3)
  if damage:
    damage(tmp_path)
  argv = ["train", "--config", TINY, "--workdir", str(tmp_path / "w"), "--config.dataset=fashion_mnist"]
  _expect_error(capsys, [*argv, f"--config.data_dir={tmp_path}"], fragment)


def test_eval_without_a_run(capsys, tmp_path):
  _expect_error(capsys, ["eval", "--workdir", str(tmp_path)], "no config.json")


def test_image_shape_mismatch_on_eval(capsys, tmp_path):
  workdir = str(tmp_path / "w")
  assert run(["train", "--config", TINY, "--workdir", workdir, "--config.num_epochs=1"]) == 0
  capsys.readouterr()
  data_dir = tmp_path / "idx"
  data_dir.mkdir()
  write_idx_folder(data_dir, n_train=64, max_label=3)
  cfg_path = os.path.join(workdir, "config.json")
  cfg = json.load(open(cfg_path))
  cfg["dataset"] = "mnist"  # 28x28 images for a model built for 8x8
  json.dump(cfg, open(cfg_path, "w"))
  _expect_error(
    capsys, ["eval", "--workdir", workdir, "--data_dir", str(data_dir)], "trained on images (8, 8, 1)"
  )


def test_nan_stops_training_and_keeps_last_good_checkpoint(capsys, tmp_path):
  workdir = str(tmp_path / "w")
  # Without inter-block normalisation a huge step overflows the next block's activity.
  argv = [
    "train",
    "--config",
    TINY,
    "--workdir",
    workdir,
    "--config.learning_rate=1e30",
    "--config.model.interblock_norm=none",
    "--config.checkpoint_every_steps=1",
  ]
  code = run(argv)
  err = capsys.readouterr().err.strip()
  assert code != 0
  assert "loss of block 1 became nan at step 2" in err and "checkpoint 1" in err, err
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1"]
  assert run(["eval", "--workdir", workdir]) == 0
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 1


def test_eval_on_other_data(capsys, tmp_path):
  """Classes come from the data; other classes, other data for a synthetic run are refused; the epoch is the run's."""
  ten, five, big = tmp_path / "ten", tmp_path / "five", tmp_path / "big"
  for folder, n_train, max_label in ((ten, 64, 9), (five, 64, 4), (big, 640, 9)):
    folder.mkdir()
    write_idx_folder(folder, n_train=n_train, max_label=max_label)
  workdir = tmp_path / "w"
  argv = ["train", "--config", TINY, "--workdir", str(workdir), "--config.dataset=fashion_mnist"]
  assert run([*argv, f"--config.data_dir={ten}", "--config.synthetic.image_shape=(28, 28, 1)"]) == 0
  capsys.readouterr()
  before = tree_hashes(workdir)
  _expect_error(
    capsys, ["eval", "--workdir", str(workdir), "--data_dir", str(five)], "10 classes but this data has"
  )
  # 640 training images instead of 64: the checkpoint's epoch is still the run's own (2 epochs).
  assert run(["eval", "--workdir", str(workdir), "--data_dir", str(big)]) == 0
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epoch"] == 2
  assert tree_hashes(workdir) == before
  synthetic = tmp_path / "s"
  assert run(["train", "--config", TINY, "--workdir", str(synthetic), "--config.num_epochs=1"]) == 0
  capsys.readouterr()
  _expect_error(
    capsys, ["eval", "--workdir", str(synthetic), "--data_dir", str(ten)], "--data_dir does not apply"
  )


def test_eval_picks_its_own_batch_for_the_devices_it_has(tmp_path):
  """A run trained with batch 32 evaluates on 3 devices (which do not divide 32)."""
  workdir = tmp_path / "w"
  assert run(["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=1"]) == 0
  from conftest import eval_cli  # noqa: PLC0415

  result = eval_cli(workdir, env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=3"})
  assert result["step"] == 8 and 0 <= result["test_accuracy"] <= 1


def test_predict_image_files(capsys, tmp_path):
  """`hffjax predict` reads PNGs (any size or mode), agrees with the model on the same pixels, and refuses junk."""
  from PIL import Image

  from hffjax import predict
  from hffjax.train import restore_experiment

  workdir = str(tmp_path / "w")
  assert run(["train", "--config", TINY, "--workdir", workdir, "--config.num_epochs=1"]) == 0
  exp, state, _ = restore_experiment(workdir)
  images = exp.dataset.test_images[:3]
  folder = tmp_path / "images"
  folder.mkdir()
  for i, image in enumerate(images):
    Image.fromarray(image[..., 0]).save(folder / f"{i}.png")
  Image.fromarray(images[0][..., 0]).convert("RGB").resize((16, 16), Image.NEAREST).save(tmp_path / "big.png")
  capsys.readouterr()
  assert run(["predict", "--workdir", workdir, str(folder), str(tmp_path / "big.png"), "--top_k", "2"]) == 0
  lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
  assert [os.path.basename(r["file"]) for r in lines] == ["0.png", "1.png", "2.png", "big.png"]
  expected = np.asarray(predict(exp.model(state), images))
  assert [r["top"][0]["index"] for r in lines[:3]] == expected.tolist()
  assert lines[3]["top"][0]["index"] == expected[0]  # a 16x16 RGB copy, converted and resized back
  for r in lines:
    assert len(r["top"]) == 2 and r["top"][0]["probability"] >= r["top"][1]["probability"]
  (tmp_path / "junk.png").write_text("not an image")
  _expect_error(capsys, ["predict", "--workdir", workdir, str(tmp_path / "junk.png")], "cannot read image")
  _expect_error(capsys, ["predict", "--workdir", workdir, str(tmp_path / "nope.png")], "does not exist")


def test_predict_needs_only_the_workdir_not_the_dataset(capsys, tmp_path):
  """The model is rebuilt from data.json (shape, classes, their names, pixel statistics): the same
  answers after the training data is gone; a run whose data.json predates class names still reads it."""
  from PIL import Image

  data_dir = tmp_path / "idx"
  data_dir.mkdir()
  write_idx_folder(data_dir, n_train=64, max_label=9)
  workdir = tmp_path / "w"
  argv = ["train", "--config", TINY, "--workdir", str(workdir), "--config.num_epochs=1"]
  assert run([*argv, "--config.dataset=fashion_mnist", f"--config.data_dir={data_dir}"]) == 0
  image = tmp_path / "x.png"
  Image.fromarray(np.arange(784, dtype=np.uint8).reshape(28, 28)).save(image)
  info_path = workdir / "data.json"
  info = json.loads(info_path.read_text())
  assert info["class_names"][:2] == ["T-shirt/top", "Trouser"]
  older = {k: v for k, v in info.items() if k != "class_names"}  # as a run saved before the key
  info_path.write_text(json.dumps(older))
  capsys.readouterr()
  assert run(["predict", "--workdir", str(workdir), str(image), "--top_k", "10"]) == 0  # reads the dataset
  from_dataset = capsys.readouterr().out
  info_path.write_text(json.dumps(info))
  data_dir.rename(tmp_path / "moved")
  assert run(["predict", "--workdir", str(workdir), str(image), "--top_k", "10"]) == 0  # from data.json alone
  assert capsys.readouterr().out == from_dataset  # the same classes, names and probabilities
  info_path.write_text(json.dumps(older))
  _expect_error(capsys, ["predict", "--workdir", str(workdir), str(image)], f"{data_dir}")
  info_path.write_text("[]")
  _expect_error(capsys, ["predict", "--workdir", str(workdir), str(image)], "data.json is a JSON list")
  _expect_error(capsys, ["eval", "--workdir", str(workdir)], "data.json is a JSON list")


def test_a_block_written_outside_hffjax_trains_resumes_and_evaluates(capsys, tmp_path):
  """configs/fashion_mnist_residual_mlp.py names its own block builder; the CLI rebuilds it from config.json."""
  workdir = str(tmp_path / "w")
  argv = [
    "train",
    "--config",
    "fashion_mnist_residual_mlp",
    "--workdir",
    workdir,
    "--config.dataset=synthetic",
  ]
  argv += [
    "--config.validation_split=",
    "--config.model.widths=(16, 16)",
    "--config.synthetic.image_shape=(8, 8, 1)",
    "--config.lr_schedule=constant",  # so that a finished run may be given another epoch
  ]
  assert run([*argv, "--config.num_epochs=1"]) == 0
  assert run([*argv, "--config.num_epochs=2"]) == 0  # resumed
  capsys.readouterr()
  assert run(["eval", "--workdir", workdir]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["step"] == 2 * 2048 // 128 and len(result["layer_accuracy"]) == 2
  base = ["train", "--config", TINY, "--workdir", str(tmp_path / "x")]
  _expect_error(
    capsys, [*base, "--config.model.kind=no_such_module_xyz:build"], "cannot import no_such_module_xyz"
  )
  _expect_error(capsys, [*base, "--config.model.kind=hffjax.losses:nothing"], "hffjax.losses has no nothing")
  _expect_error(capsys, [*base, "--config.model.kind=hffjax.losses:goodness"], "does not take (model_config")


def test_a_builder_of_ones_own_that_fails_is_one_line_naming_it(capsys, tmp_path, monkeypatch):
  (tmp_path / "failing_blocks.py").write_text(
    "def build(model_config, *, input_shape, rngs):\n  raise KeyError('hidden_size')\n"
  )
  monkeypatch.syspath_prepend(str(tmp_path))
  argv = [
    "train",
    "--config",
    TINY,
    "--workdir",
    str(tmp_path / "w"),
    "--config.model.kind=failing_blocks:build",
  ]
  _expect_error(
    capsys, argv, "model.kind 'failing_blocks:build' failed to build the blocks: KeyError: 'hidden_size'"
  )
