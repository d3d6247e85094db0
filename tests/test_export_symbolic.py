"""Every backbone and the U-Nets export with `jax.export` and a symbolic batch dimension.

The exported computation is serialised, read back and called at two other
batch sizes; it computes what the module computes. Symbolic shapes take the
portable formulations (no calls into jaxcomponents' native library), so the
serialised module runs wherever JAX does.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents.models import VGG16, InceptionV3, MobileNetV2, ResNet50, UNet

MODELS = {
    "vgg16": (lambda: VGG16(classes=7), 32),
    "resnet50": (lambda: ResNet50(classes=7), 32),
    "mobilenet_v2": (lambda: MobileNetV2(alpha=0.35, classes=7), 32),
    "inception_v3": (lambda: InceptionV3(include_top=False, pooling="avg"), 75),
    "unet": (lambda: UNet(filter_num=(4, 8, 16), n_labels=3, batch_norm=True, pool="max", unpool=False), 32),
    "attention_unet": (lambda: UNet(filter_num=(4, 8, 16), n_labels=2, attention=True, pool=False), 32),
    "unet_resnet50": (lambda: UNet(filter_num=(8, 16, 32, 64), n_labels=2, backbone="ResNet50", weights=None), 32),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_with_a_symbolic_batch_runs_at_other_batch_sizes(name):
  make, size = MODELS[name]
  model = make()
  variables = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, size, size, 3)))
  forward = jax.jit(lambda variables, x: model.apply(variables, x))
  batch = jax.export.symbolic_shape(f"b, {size}, {size}, 3")
  exported = jax.export.export(forward)(variables, jax.ShapeDtypeStruct(batch, jnp.float32))
  assert "jc_" not in exported.mlir_module(), "a serialised model must not call the native library"
  restored = jax.export.deserialize(exported.serialize())
  for n in (3, 1):
    x = jax.random.normal(jax.random.key(n), (n, size, size, 3))
    expected = forward(variables, x)
    got = restored.call(variables, x)
    assert got.shape == expected.shape and got.shape[0] == n
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * float(jnp.abs(expected).max()))
