import os

import pytest
from conftest import ROOT

from hffjax.main import run

TINY = os.path.join(ROOT, "configs", "tiny.py")
FIGURES = ("accuracy", "prototypes", "features_pca", "prediction_rules", "inference_time")


def _train_one_epoch(workdir: str, *flags: str) -> None:
  assert run(["train", "--config", TINY, "--workdir", workdir, "--config.num_epochs=1", *flags]) == 0


def test_plot_writes_every_figure_as_png(tmp_path, capsys):
  workdir = str(tmp_path / "w")
  assert run(["train", "--config", TINY, "--workdir", workdir]) == 0
  capsys.readouterr()
  assert run(["plot", "--workdir", workdir, "--out", str(tmp_path / "png")]) == 0
  printed = capsys.readouterr().out.split()
  assert [os.path.basename(p) for p in printed] == [f"{f}.png" for f in FIGURES]
  for path in printed:
    with open(path, "rb") as f:
      head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 5000


def test_plot_refuses_a_baseline_run(tmp_path, capsys):
  workdir = str(tmp_path / "w")
  assert (
    run(["train", "--config", TINY, "--workdir", workdir, "--config.method=bp", "--config.num_epochs=1"]) == 0
  )
  capsys.readouterr()
  assert run(["plot", "--workdir", workdir]) != 0
  assert "draws HFF runs" in capsys.readouterr().err


def test_plot_draws_a_streamed_run_and_names_an_out_it_cannot_write(tmp_path, capsys):
  """A run on a TFDS dataset (its test split streamed, not in memory) is drawn like any other."""
  pytest.importorskip("tensorflow_datasets")
  from tfds_fixture import build_variable_size_dataset

  build_variable_size_dataset(str(tmp_path / "tfds"), num_train=64, num_test=24)
  workdir = str(tmp_path / "w")
  _train_one_epoch(
    workdir, "--config.dataset=var_shapes", f"--config.data_dir={tmp_path / 'tfds'}", "--config.image_size=8"
  )
  capsys.readouterr()
  assert run(["plot", "--workdir", workdir]) == 0
  printed = capsys.readouterr().out.split()
  assert [os.path.basename(p) for p in printed] == [f"{f}.png" for f in FIGURES]
  (tmp_path / "a_file").write_text("")
  assert run(["plot", "--workdir", workdir, "--out", str(tmp_path / "a_file")]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith(f"hffjax: error: --out {tmp_path / 'a_file'} cannot be made (") and "\n" not in err, (
    err
  )


def test_plot_names_the_classes_a_subset_run_trained_on(tmp_path, capsys):
  from test_data import write_idx_folder

  (tmp_path / "idx").mkdir()
  write_idx_folder(tmp_path / "idx", n_train=400, n_test=60)
  workdir = str(tmp_path / "w")
  _train_one_epoch(
    workdir,
    "--config.dataset=fashion_mnist",
    f"--config.data_dir={tmp_path / 'idx'}",
    "--config.classes=(5, 7, 9)",
  )
  capsys.readouterr()
  assert run(["plot", "--workdir", workdir]) == 0  # three prototypes, three class names
  assert [os.path.basename(p) for p in capsys.readouterr().out.split()] == [f"{f}.png" for f in FIGURES]
