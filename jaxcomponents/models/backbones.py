"""The registry of backbones: one `BackboneRecord` per Keras application, gathered from the model files.

Adding a backbone is one file: write its module (a `Backbone` subclass named
as Keras names the application, calling `taps(name, x)` at the layers a user
may tap) and its `RECORDS`, then list that file's `RECORDS` below.
"""

from __future__ import annotations

import re

from jaxcomponents.models import densenet, efficientnet, inception_v3, mobilenet, mobilenet_v2, resnet, vgg
from jaxcomponents.models.common import Backbone, BackboneRecord

RECORDS: dict[str, BackboneRecord] = {
    record.name: record for record in (*vgg.RECORDS, *resnet.RECORDS, *densenet.RECORDS, *efficientnet.RECORDS,
                                       *inception_v3.RECORDS, *mobilenet.RECORDS, *mobilenet_v2.RECORDS)}
NAMES = tuple(RECORDS)


def _key(name: str) -> str:
  return name.replace("_", "").lower()


_BY_KEY = {_key(name): name for name in RECORDS}


def snake_name(name: str) -> str:
  """A backbone's name in lower case, as Keras's weight files and command-line flags spell it.

  Example:
    >>> snake_name("MobileNetV2"), snake_name("ResNet50"), snake_name("EfficientNetB0")
    ('mobilenet_v2', 'resnet50', 'efficientnet_b0')
  """
  return re.sub(r"(?<=[a-z0-9])(?=[VB]\d)", "_", name).lower()


def get(backbone: str | Backbone | type[Backbone]) -> BackboneRecord:
  """The record of a backbone, by Keras's name (any case, underscores ignored), module or class.

  Example:
    >>> get("resnet50").default_size, get("mobilenet_v2").preprocessing
    (224, 'tf')
  """
  if isinstance(backbone, str):
    record = RECORDS.get(_BY_KEY.get(_key(backbone), ""))
  else:
    cls = backbone if isinstance(backbone, type) else type(backbone)
    record = RECORDS.get(cls.__name__)
    if record is not None and record.module is not cls:
      record = None
  if record is None:
    shown = backbone if isinstance(backbone, str) else getattr(backbone, "__name__", type(backbone).__name__)
    raise ValueError(f"backbone={shown!r} is not allowed; expected one of {', '.join(NAMES)}.")
  return record
