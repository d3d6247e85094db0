"""keras-unet-collection's recorded numbers (tests/reference/unet) and the checks every kuc twin runs on them.

A reference `<name>` is a weight file `<name>.h5` written by Keras 2 and
`<name>.npz` with the input, kuc's outputs in inference mode and the
configuration, and, for the configurations `make_unet_references.py` trains,
one SGD step's targets, loss and outputs after it.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
import optax

from jaxcomponents.training import Model
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "reference", "unet")


@dataclasses.dataclass
class Reference:
  name: str
  x: np.ndarray
  outputs: list[np.ndarray]
  config: dict
  arrays: dict

  @property
  def h5(self) -> str:
    return os.path.join(REFERENCE_DIR, f"{self.name}.h5")


def load(name: str) -> Reference:
  with np.load(os.path.join(REFERENCE_DIR, f"{name}.npz")) as data:
    arrays = {key: data[key] for key in data.files}
  config = json.loads(str(arrays.pop("config")))
  count = sum(key.startswith("y_") and key[2:].isdigit() for key in arrays)
  outputs = [arrays["y"]] if "y" in arrays else [arrays[f"y_{i}"] for i in range(count)]
  return Reference(name, arrays.pop("x"), outputs, config, arrays)


def as_list(y) -> list:
  return list(y) if isinstance(y, (list, tuple)) else [y]


def check_outputs(model, reference: Reference, tol: float = 1e-5):
  """Loads kuc's weights by layer name into `model` and compares every output; returns the variables."""
  variables = load_keras(model, reference.h5, reference.x, match="name")
  actual = as_list(jax.jit(model.apply)(variables, reference.x))
  assert len(actual) == len(reference.outputs), f"{len(actual)} outputs, kuc has {len(reference.outputs)}"
  for got, expected in zip(actual, reference.outputs):
    assert np.std(expected) > 1e-3, "the reference output is nearly constant"
    assert_close(got, expected, tol=tol)
  return variables


def check_parameter_count(variables, reference: Reference) -> None:
  """Every variable counted, batch statistics included, as Keras's `count_params` counts them."""
  count = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(variables))
  assert count == reference.config["params"], f"{count} parameters, kuc has {reference.config['params']}"


def check_train_step(model, variables, reference: Reference, tol: float = 1e-4) -> None:
  """kuc's recorded SGD step (mean squared error, weighted per output): the same loss and outputs after it."""
  train = reference.config["train"]
  n = len(reference.outputs)
  targets = [reference.arrays[f"target_{i}"] for i in range(n)]
  trainer = Model(model, variables)
  loss = ["mean_squared_error"] * n if n > 1 else "mean_squared_error"
  trainer.compile(optimizer=optax.sgd(train["learning_rate"]), loss=loss,
                  loss_weights=train["loss_weights"] if n > 1 else None)
  logs = trainer.train_on_batch(reference.x, targets if n > 1 else targets[0], return_dict=True)
  np.testing.assert_allclose(logs["loss"], reference.arrays["train_loss"], rtol=tol)
  after = as_list(trainer.predict_on_batch(reference.x))
  for i, got in enumerate(after):
    assert_close(got, reference.arrays[f"y_after_{i}"], tol=tol)


def check_reference(model, reference: Reference, tol: float = 1e-5):
  """Everything a reference records: output names, outputs, parameter count and, if recorded, the SGD step."""
  names = getattr(model, "output_names", None)
  if names is not None:
    assert list(names) == reference.config["output_names"]
  variables = check_outputs(model, reference, tol)
  check_parameter_count(variables, reference)
  if "train" in reference.config:
    check_train_step(model, variables, reference)
  return variables


def variants(configs: list[dict]):
  """`seen(key, default)`: the values (as JSON) a keyword argument takes across the references' configurations."""
  return lambda key, default=None: {json.dumps(c["kwargs"].get(key, default)) for c in configs}
