"""The object-storage (gs://) write paths, exercised on a local folder.

Object storage cannot append or rename; hffjax's writers replace whole objects
there. Pretending every path is an object store runs exactly those branches.
"""

import json

import pytest

from hffjax import train
from hffjax.io import storage, writers


@pytest.fixture
def object_store(monkeypatch):
  monkeypatch.setattr(storage, "is_object_store", lambda path: True)


def test_training_resume_and_metrics_repair_through_whole_object_writes(
  tiny_config, tmp_path, object_store, capsys
):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  assert "TensorBoard files are written to filesystems only" in capsys.readouterr().err
  assert not (tmp_path / "run" / writers.TENSORBOARD_DIR).exists()
  assert [r["step"] for r in writers.read(f"{workdir}/metrics.jsonl")] == [8, 16]

  # A record past the last checkpoint and a partial line, as a killed run leaves them.
  path = tmp_path / "run" / "metrics.jsonl"
  path.write_text(path.read_text() + json.dumps({"step": 20}) + "\n" + '{"step": 2')
  tiny_config.num_epochs = 3
  result = train.train_and_evaluate(tiny_config, workdir, progress=False)
  assert result["step"] == 24
  assert [r["step"] for r in writers.read(f"{workdir}/metrics.jsonl")] == [8, 16, 24]
  assert path.read_text().endswith("}\n")
  exp, state, step = train.restore_experiment(workdir)
  assert step == 24 and exp.pixel_stats == tuple(
    tuple(v)
    for v in (
      json.loads((tmp_path / "run" / "data.json").read_text())[k] for k in ("pixel_mean", "pixel_std")
    )
  )


def test_object_store_paths_join_without_a_local_prefix():
  assert storage.join("gs://bucket/runs/a/", "checkpoints") == "gs://bucket/runs/a/checkpoints"
  assert storage.is_object_store("gs://bucket/x") and not storage.is_object_store("/mnt/nfs/x")
