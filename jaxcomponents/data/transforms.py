"""Jitted augmentation of device batches (host-side image operations are in `jaxcomponents.data.image`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@functools.partial(jax.jit, static_argnames=("crop_size", "flip", "max_brightness"))
def augment(rng: jax.Array, images: jax.Array, crop_size: tuple[int, int] | None = None, flip: bool = True,
            max_brightness: float = 0.0) -> jax.Array:
  """Random horizontal flip, random crop and random brightness, per image, on a batch (B, H, W, C).

  Example:
    >>> x = jnp.zeros((2, 8, 8, 3))
    >>> augment(jax.random.key(0), x, crop_size=(6, 6)).shape
    (2, 6, 6, 3)
  """
  batch, height, width, _ = images.shape
  flip_key, crop_key, bright_key = jax.random.split(rng, 3)
  if flip:
    flips = jax.random.bernoulli(flip_key, 0.5, (batch,))
    images = jnp.where(flips[:, None, None, None], images[:, :, ::-1, :], images)
  if crop_size is not None:
    ch, cw = crop_size
    tops = jax.random.randint(crop_key, (batch,), 0, height - ch + 1)
    lefts = jax.random.randint(jax.random.fold_in(crop_key, 1), (batch,), 0, width - cw + 1)
    crop = lambda img, t, l: jax.lax.dynamic_slice(img, (t, l, 0), (ch, cw, img.shape[-1]))
    images = jax.vmap(crop)(images, tops, lefts)
  if max_brightness:
    delta = jax.random.uniform(bright_key, (batch, 1, 1, 1), minval=-max_brightness, maxval=max_brightness)
    images = images + delta.astype(images.dtype)
  return images
