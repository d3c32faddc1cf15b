"""The docstring examples of the public API run and give what they show."""

import doctest
import importlib

import pytest

import hffjax

MODULES = (
  "hffjax.losses",
  "hffjax.models.registry",
  "hffjax.train.predict",
  "hffjax.train.step",
  "hffjax.train.loop",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
  monkeypatch.setenv("TMPDIR", str(tmp_path))  # the training examples' workdirs
  result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
  assert result.attempted >= 1 and result.failed == 0


def test_every_public_function_has_an_example():
  """Each function ``help(hffjax)`` lists shows an example (run above), or points to one."""
  for name in hffjax.__all__:
    if name == "HFFError":
      continue
    doc = getattr(hffjax, name).__doc__ or ""
    assert ">>>" in doc or "Example: see" in doc, f"hffjax.{name} has no example"
    assert getattr(hffjax, name).__module__ in MODULES, f"hffjax.{name}'s examples are not run"
