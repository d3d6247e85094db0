"""Records of Keras's noise and activity-regularization layers: see `jaxcomponents.keras.record`.

`GaussianNoise`, `GaussianDropout`, `AlphaDropout` (the identity at inference,
Keras's formulas on draws from the "dropout" rng in training) and
`ActivityRegularization` (sows Keras's loss, which the train step adds).
"""

from __future__ import annotations

from jaxcomponents.errors import is_int, is_real
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.activity import ActivityRegularization
from jaxcomponents.layers.noise import AlphaDropout, GaussianDropout, GaussianNoise


def _fraction(key: str):
  def check(config) -> list[str]:
    value = config.get(key)
    if not is_real(value) or not 0 <= value <= 1:
      return [f"{key}={value!r} (only a float between 0 and 1)"]
    return []
  return check


def _seed(config) -> list[str]:
  seed = config.get("seed")
  return [] if seed is None or is_int(seed) else [f"seed={seed!r} (an int)"]


def _checks(*checks):
  return lambda config: [p for check in checks for p in check(config)]


def _gaussian_noise(config, name, options):
  layer = GaussianNoise(config["stddev"], config.get("seed"), name=name)
  return lambda x, train: layer(x, train=train)


def _gaussian_dropout(config, name, options):
  layer = GaussianDropout(config["rate"], config.get("seed"), name=name)
  return lambda x, train: layer(x, train=train)


def _alpha_dropout(config, name, options):
  shape = config.get("noise_shape")
  layer = AlphaDropout(config["rate"], None if shape is None else tuple(shape), config.get("seed"), name=name)
  return lambda x, train: layer(x, train=train)


def _factors(config) -> list[str]:
  return [f"{k}={config.get(k)!r} (only a float >= 0)" for k in ("l1", "l2")
          if isinstance(config.get(k, 0.0), bool) or not isinstance(config.get(k, 0.0), (int, float))
          or not 0 <= config.get(k, 0.0) < float("inf")]


def _activity_regularization(config, name, options):
  layer = ActivityRegularization(float(config.get("l1", 0.0)), float(config.get("l2", 0.0)), name=name)
  return lambda x, train: layer(x)


RECORDS: dict[str, KerasClass] = {
    "GaussianNoise": KerasClass(_gaussian_noise, check=_checks(_fraction("stddev"), _seed), creates_module=True),
    "GaussianDropout": KerasClass(_gaussian_dropout, check=_checks(_fraction("rate"), _seed), creates_module=True),
    "AlphaDropout": KerasClass(_alpha_dropout, check=_checks(_fraction("rate"), _seed), creates_module=True),
    "ActivityRegularization": KerasClass(_activity_regularization, check=_factors, creates_module=True),
}
