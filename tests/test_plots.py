import os

from conftest import ROOT

from hffjax.main import run

TINY = os.path.join(ROOT, "configs", "tiny.py")
FIGURES = ("accuracy", "prototypes", "features_pca", "prediction_rules", "inference_time")


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
