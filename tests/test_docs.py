"""The docstring examples of the public API run and give what they show; the README's tables match the code."""

import ast
import doctest
import fnmatch
import importlib
import os
import re

import pytest
from conftest import ROOT, config_leaves

import hffjax
from hffjax.config import base_config

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


def _readme_section(title: str) -> list[str]:
  """The table rows (lines starting ``| `…``) of the README section headed ``title``."""
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    text = f.read()
  assert f"\n{title}\n" in text, f"README.md has no section {title!r}"
  section = re.split(r"\n#+ ", text.split(f"\n{title}\n", 1)[1], maxsplit=1)[0]
  return [line for line in section.splitlines() if line.startswith("| `")]


def test_readme_config_reference_lists_every_key_at_its_default():
  """Each row's backticked keys take its backticked defaults in order (one default may serve them all)."""
  documented = {}
  for row in _readme_section("### Config reference"):
    key_cell, default_cell = (cell.strip() for cell in row.split("|")[1:3])
    keys, defaults = re.findall(r"`([^`]+)`", key_cell), re.findall(r"`([^`]+)`", default_cell)
    defaults = defaults * len(keys) if len(defaults) == 1 else defaults
    assert len(keys) == len(defaults), f"README row {keys} has defaults {defaults}"
    for key, default in zip(keys, defaults, strict=True):
      documented[key] = ast.literal_eval(default)
  actual = dict(config_leaves(base_config()))
  assert sorted(set(actual) - set(documented)) == [], "keys of base_config() missing from the README"
  assert sorted(set(documented) - set(actual)) == [], "README keys that base_config() lacks"
  wrong = {
    k: (documented[k], v) for k, v in actual.items() if (documented[k], type(documented[k])) != (v, type(v))
  }
  assert wrong == {}, "README default != base_config() default (README, code)"


def test_readme_configs_table_names_every_shipped_config():
  patterns = [
    p for row in _readme_section("## Configs") for p in re.findall(r"`(configs/[^`]+)`", row.split("|")[1])
  ]
  shipped = sorted(f"configs/{n}" for n in os.listdir(os.path.join(ROOT, "configs")) if n.endswith(".py"))
  shipped.remove("configs/__init__.py")
  assert [f for f in shipped if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
  assert [p for p in patterns if not fnmatch.filter(shipped, p)] == [], (
    "README names configs that do not exist"
  )
