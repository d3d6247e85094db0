"""A feature whose optional dependency is missing says which extra installs it."""

import sys

import pytest

from jaxcomponents import extras
from jaxcomponents.data import load_digits, tfds_dataset
from jaxcomponents.training import TensorBoard


@pytest.mark.parametrize("module, call, extra", [
    ("tensorflow_datasets", lambda tmp: tfds_dataset("mnist", "train", batch_size=8), "data"),
    ("sklearn", lambda tmp: load_digits(), "data"),
    ("tensorboardX", lambda tmp: TensorBoard(tmp), "tensorboard"),
])
def test_a_missing_extra_is_named(module, call, extra, monkeypatch, tmp_path):
  for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] + [module]:
    monkeypatch.setitem(sys.modules, name, None)  # importing it (or any part of it) now raises ModuleNotFoundError
  with pytest.raises(ModuleNotFoundError, match=rf'needs {module}: pip install "jaxcomponents\[{extra}\]"'):
    call(tmp_path)


def test_an_error_inside_an_installed_extra_is_not_hidden(monkeypatch, tmp_path):
  """Only the extra itself missing becomes the install hint; its own broken imports surface as they are."""
  (tmp_path / "broken_extra.py").write_text("import module_that_does_not_exist\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(ModuleNotFoundError, match="module_that_does_not_exist") as caught:
    extras.require("broken_extra", "data", "a test")
  assert "pip install" not in str(caught.value)
