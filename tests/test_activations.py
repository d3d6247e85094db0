"""Every activation in the table computes what Keras's activation of that name computes."""

import keras
import numpy as np
import pytest

from jaxcomponents import activations
from tests.helpers import assert_close


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_matches_keras(name):
  x = np.linspace(-6.0, 6.0, 49, dtype=np.float32).reshape(7, 7)
  expected = np.asarray(keras.activations.get(name)(x))
  assert_close(activations.get(name)(x), expected, tol=1e-6)


def test_none_is_linear_and_callables_pass_through():
  x = np.arange(3.0)
  np.testing.assert_array_equal(activations.get(None)(x), x)
  assert activations.get(np.tanh) is np.tanh


def test_unknown_name_lists_allowed_values():
  with pytest.raises(ValueError, match=r"activation='ReLu' is not allowed; expected one of .*'relu'"):
    activations.get("ReLu")
