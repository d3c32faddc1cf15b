import os

import nbformat
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = os.path.join(ROOT, "colab", "hff_quickstart.ipynb")


def test_committed_notebook_has_no_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_notebook_runs_headless_in_the_tiny_setting(tmp_path, monkeypatch):
  monkeypatch.setenv("HFFJAX_NOTEBOOK_TINY", "1")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(
    nb, timeout=170, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  ).execute()
  images = [
    o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
  ]
  assert len(images) == 5  # accuracy, prototypes, PCA, prediction rules, inference time
