import os

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = os.path.join(ROOT, "colab", "hff_quickstart.ipynb")


def test_committed_notebook_has_no_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("data", ["in_memory", "streamed"])
def test_notebook_runs_headless_in_the_tiny_setting(tmp_path, monkeypatch, data):
  """In memory (IDX files, or synthetic without them) and streamed (Fashion-MNIST prepared by TFDS,
  as on Colab)."""
  monkeypatch.setenv("HFFJAX_NOTEBOOK_TINY", "1")
  if data == "streamed":
    tfds = pytest.importorskip("tensorflow_datasets")
    from tfds_fixture import build_variable_size_dataset

    tfds_dir = tmp_path / "tensorflow_datasets"
    build_variable_size_dataset(  # under the name and version that TFDS's own fashion_mnist reads
      str(tfds_dir),
      name="fashion_mnist",
      version=str(tfds.builder_cls("fashion_mnist").VERSION),
      num_train=256,
      num_test=96,
      image_shape=(28, 28, 1),
      num_classes=10,
      png=True,
    )
    monkeypatch.setenv("HFFJAX_DATA_DIR", str(tfds_dir))
  else:
    monkeypatch.delenv("HFFJAX_DATA_DIR", raising=False)
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(
    nb, timeout=170, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  ).execute()
  images = [
    o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
  ]
  assert len(images) == 5  # accuracy, prototypes, PCA, prediction rules, inference time
  if data == "streamed":
    printed = "".join(o.get("text", "") for o in nb.cells[4].outputs)
    assert "fashion_mnist: 256 training and 96 test images of (28, 28, 1)" in printed, printed
