"""The embedded default dataset: real handwritten digits available offline right after install.

scikit-learn ships the UCI "optical recognition of handwritten digits" test
set (1,797 real 8x8 scans, 16 grey levels) inside its wheel; jaxcomponents
uses it wherever no network and no downloaded dataset may be assumed.
"""

from __future__ import annotations

import numpy as np

from jaxcomponents import extras


def load_digits(test_fraction: float = 0.2, seed: int = 0):
  """Returns `((x_train, y_train), (x_test, y_test))`: uint8 images (N, 8, 8) scaled to 0-255, labels 0-9.

  The split is random but fixed by `seed`, so runs are comparable.

  Example:
    >>> (x, y), (xt, yt) = load_digits()
    >>> x.shape[1:], x.dtype, len(x) + len(xt)
    ((8, 8), dtype('uint8'), 1797)
  """
  datasets = extras.require("sklearn.datasets", "data", "load_digits (scikit-learn's bundled digits)")
  digits = datasets.load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
  order = np.random.default_rng(seed).permutation(len(images))
  cut = int(round(len(images) * (1.0 - test_fraction)))
  train, test = order[:cut], order[cut:]
  return (images[train], digits.target[train]), (images[test], digits.target[test])
