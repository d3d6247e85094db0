"""Swin-UNet, the numerical twin of keras-unet-collection's `swin_unet_2d` (Cao et al. 2021).

`swin_unet_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns a `SwinUNet` module computing what keras-unet-collection
0.1.13's Keras model computes. Its modules are kuc's layers
(`transformer_layers.py`), nested and named as Keras 2 nests and names them
(see the last quirk below), so `jaxcomponents.weights.load_keras(model,
"kuc_model.h5", x, match="name")` maps a kuc weight file.

Architecture (keras-unet-collection's): the input cut into `patch_size[0]`
square patches (`patch_extract`; rows and columns beyond the last whole patch
are dropped), each flattened (row, column, channel) and embedded
(`patch_embedding`: Dense to `filter_num_begin` plus a learned position
embedding). Encoder: a stack of `stack_num_down` Swin transformer blocks, then
per level `patch_merging` (2 x 2 neighbouring tokens concatenated, Dense
without bias to twice the width) and a stack. Decoder level `i`:
`patch_expanding` (Conv 1x1 without bias to twice the width, depth-to-space by
2), concatenation with the skip, Dense without bias (`{name}_concat_linear_proj_{i}`)
and a stack of `stack_num_up` blocks. Head: `patch_expanding` by `patch_size[0]`
to full size, Conv 1x1 (`n_labels`), `output_activation`.

A Swin transformer block is `x + W-MSA(LN(x))`, then `x + MLP(LN(x))`:
LayerNormalization with epsilon 1e-5; multi-head self-attention inside
non-overlapping `window x window` windows, queries scaled by `head_dim**-0.5`,
plus a learned relative position bias (one per head and relative offset,
zeros at initialisation, gathered through the relative position index); every
second block of a stack rolls the token grid by `window // 2` first (and
back after), masking attention between tokens from different regions of the
rolled grid with -100; an MLP of Dense(`num_mlp`) -> GELU (exact, erf) ->
Dense(width). Every dropout and drop-path rate is 0, so training computes as
inference.

keras-unet-collection's quirks, kept:

- `swin_unet_2d` ignores `shift_window` (it always shifts every second block);
  the twin does too and warns when it is not True. `SwinUNet(shift_window=False)`
  is kuc's `swin_unet_2d_base` with window attention only.
- Decoder level `i` reads `num_heads[::-1][i]` and `window_size[::-1][i]`: the
  settings of the level below the one it decodes (with lists longer than
  `depth`, entries from their end).
- The relative position index (int64) and the shifted blocks' attention mask
  (float64) are non-trainable Keras weights, saved in its files and counted
  by `count_params`; here they are parameters named as kuc names them
  (`name0_attn_pos_ind`, `name1_attn_mask`) that receive no gradient. With
  weight decay, exclude them from the optimizer:
  `training.freeze(tx, swin_constant_patterns(params))`.
- Only `patch_size[0]` cuts patches, in both directions; `patch_size[1]` only
  enters kuc's count of patches for the position embedding, which must agree.
  The grid must be square: `width // patch_size[0] == height // patch_size[0]`.
- Layer names: kuc names the blocks' sub-layers `name0_norm1`, `name0_attn_qkv`,
  ..., `name{i}_...` for the i-th block of every stack, while Keras numbers the
  blocks and their attention and MLP layers (`swin_transformer_block_3`,
  `window_attention_3`, `mlp_3`), the merging and expanding layers
  (`patch_merging_1`, `patch_expanding_2`) and the embedding's `dense` and
  `embedding` as a fresh session does; kuc's `name` prefixes only the
  expanding convolutions, the concatenation projections and the head. The
  twin's modules carry these names; the Dense layers inside the attention and
  MLP layers carry Keras 3's spelling of their Keras 2 names
  (`window_attention_3_name1_attn_qkv` for `window_attention_3/name1_attn_qkv`),
  and the norms kuc's (`name1_norm1`), which name pairing tells apart by their
  block where they repeat. A file saved in a Keras session that had built
  other models numbers the layers further (`swin_transformer_block_12` ...)
  and does not pair by name: save it again from a fresh session
  (`tf.keras.backend.clear_session()`, rebuild, `load_weights`, `save_weights`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_bool, check_positive_int, is_int
from jaxcomponents.layers.einsum_dense import EinsumDense
from jaxcomponents.layers.normalization import LayerNormalization
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.transunet import PatchEmbedding
from jaxcomponents.models.unet_blocks import OUTPUT_ACTIVATIONS, ConvOutput, check_activation, conv
from jaxcomponents.models.unet_fields import check_built_for, output_names
from jaxcomponents.tree_paths import path_string

__all__ = ["Mlp", "PatchExpanding", "PatchMerging", "SwinTransformerBlock", "SwinUNet", "WindowAttention",
           "check_config", "check_input_size", "depth_to_space", "extract_patches", "relative_position_index",
           "shifted_window_mask", "swin_constant_patterns", "swin_unet_2d", "window_partition", "window_reverse"]

LAYER_NORM_EPSILON = 1e-5
MASKED = -100.0  # kuc's additive attention mask between tokens of different regions


def keras_name(base: str, number: int) -> str:
  """Keras's automatic layer name: `base`, then `base_1`, `base_2` ..."""
  return base if number == 0 else f"{base}_{number}"


def nested_name(layer: nn.Module, default: str, sublayer: str) -> str:
  """The Keras 2 name `{layer}/{sublayer}` of a layer nested in a custom layer, in Keras 3's spelling
  `{layer}_{sublayer}` (the name weight files give it, e.g. `window_attention_3_name1_attn_qkv`)."""
  return f"{layer.name if isinstance(layer.name, str) else default}_{sublayer}"


def _dense(block: PrecisionFields, units: int, name: str, use_bias: bool = True) -> EinsumDense:
  """Keras's `Dense(units)` over the last axis (Glorot-uniform kernel, zero bias), with `block`'s precision fields."""
  return EinsumDense("...a,ab->...b", (units,), bias_axes="b" if use_bias else None, name=name,
                     **block.precision_options)


def extract_patches(x: jax.Array, size: int) -> jax.Array:
  """kuc's `patch_extract`: `(batch, height, width, channels)` -> `(batch, patches, size * size * channels)`.

  Patches row by row, each flattened (row, column, channel); rows and columns beyond the last whole patch are
  dropped, as `tf.image.extract_patches(padding="VALID")` drops them.

  Example:
    >>> extract_patches(jnp.arange(16.0).reshape(1, 4, 4, 1), 2)[0, 1].tolist()
    [2.0, 3.0, 6.0, 7.0]
  """
  batch, height, width, channels = x.shape
  rows, cols = height // size, width // size
  x = x[:, :rows * size, :cols * size].reshape(batch, rows, size, cols, size, channels)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, rows * cols, size * size * channels)


def depth_to_space(x: jax.Array, rate: int) -> jax.Array:
  """`tf.nn.depth_to_space` (NHWC): channels `(i, j, c)` become pixel `(h * rate + i, w * rate + j)`'s channel `c`.

  Example:
    >>> depth_to_space(jnp.arange(4.0).reshape(1, 1, 1, 4), 2)[0, :, :, 0].tolist()
    [[0.0, 1.0], [2.0, 3.0]]
  """
  batch, height, width, channels = x.shape
  x = x.reshape(batch, height, width, rate, rate, channels // (rate * rate)).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height * rate, width * rate, channels // (rate * rate))


def window_partition(x, window: int):
  """`(batch, height, width, channels)` -> `(batch * windows, window * window, channels)`, windows row by row.

  Works on NumPy and JAX arrays alike.
  """
  batch, height, width, channels = x.shape
  x = x.reshape(batch, height // window, window, width // window, window, channels).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, window * window, channels)


def window_reverse(windows: jax.Array, window: int, height: int, width: int) -> jax.Array:
  """The inverse of `window_partition`: `(batch * windows, window * window, channels)` -> the token grid."""
  channels = windows.shape[-1]
  x = windows.reshape(-1, height // window, width // window, window, window, channels).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, height, width, channels)


def relative_position_index(window: int) -> np.ndarray:
  """kuc's `relative_position_index`: entry (i, j) numbers token j's offset from token i in a window.

  Example:
    >>> relative_position_index(2).tolist()
    [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
  """
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
  offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)
  return offsets[0] * (2 * window - 1) + offsets[1]


def shifted_window_mask(grid: int, window: int, shift: int) -> np.ndarray:
  """kuc's attention mask of a shifted block: `(windows, tokens, tokens)`, -100 between different regions.

  The grid rolled by `shift` splits into 3 x 3 regions (the last `window` rows and columns, and their last
  `shift`); tokens of different regions that share a window do not attend to each other.

  Example:
    >>> mask = shifted_window_mask(4, 2, 1)
    >>> mask.shape, float(mask[0].max()), mask[-1].tolist()[0]
    ((4, 4, 4), 0.0, [0.0, -100.0, -100.0, -100.0])
  """
  regions = np.zeros((1, grid, grid, 1))
  bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
  for number, (rows, cols) in enumerate(itertools.product(bounds, bounds)):
    regions[:, rows, cols] = number
  windows = window_partition(regions, window)[..., 0]
  return np.where(windows[:, None, :] != windows[:, :, None], MASKED, 0.0)


class WindowAttention(PrecisionFields):
  """kuc's `WindowAttention`: multi-head self-attention within each window plus a relative position bias.

  One Dense computes queries, keys and values (`{name}_{prefix}_attn_qkv`), split
  `(3, heads, head_dim)`; queries are scaled by `qk_scale` (None or 0:
  `head_dim**-0.5`); the bias table `{prefix}_attn_pos` ((2 window - 1)^2 x
  heads, zeros at init) is gathered by `{prefix}_attn_pos_ind` (kuc's index,
  a parameter without gradient) and added to the scores, then `mask`; softmax;
  the heads' outputs concatenated through `{name}_{prefix}_attn_proj` (`name`: the
  module's, default `window_attention`).

  Call arguments:
    x: `(batch * windows, window * window, dim)`.
    mask: None or `(windows, window * window, window * window)`, added to the scores of every image.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = WindowAttention(dim=4, window_size=2, num_heads=2, prefix="name0")
    >>> variables = jax.eval_shape(layer.init, jax.random.key(0), jnp.ones((3, 4, 4)))
    >>> variables["params"]["name0_attn_pos"].shape, variables["params"]["name0_attn_pos_ind"].shape
    ((9, 2), (4, 4))
  """

  dim: int
  window_size: int
  num_heads: int
  qkv_bias: bool = True
  qk_scale: float | None = None
  prefix: str = "swin_atten"

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    windows, tokens, channels = x.shape
    window, heads, p = self.window_size, self.num_heads, self.prefix
    head_dim = channels // heads
    table = self.param(f"{p}_attn_pos", nn.initializers.zeros, ((2 * window - 1) ** 2, heads), self.param_dtype)
    index = self.param(f"{p}_attn_pos_ind", nn.initializers.constant(relative_position_index(window)), (tokens, tokens),
                       jnp.float32)  # float32 whatever `param_dtype`: exact for every index
    qkv = _dense(self, 3 * self.dim, nested_name(self, "window_attention", f"{p}_attn_qkv"), self.qkv_bias)(x)
    qkv = qkv.reshape(windows, tokens, 3, heads, head_dim)
    query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    query = query * (self.qk_scale or head_dim ** -0.5)
    scores = jnp.einsum("bqhd,bkhd->bhqk", query, key, precision=self.precision)
    bias = table[jax.lax.stop_gradient(index).astype(jnp.int32)].transpose(2, 0, 1)
    scores = scores + bias.astype(scores.dtype)
    if mask is not None:
      scores = scores.reshape(-1, mask.shape[0], heads, tokens, tokens) + mask[None, :, None].astype(scores.dtype)
      scores = scores.reshape(windows, heads, tokens, tokens)
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, value, precision=self.precision).reshape(windows, tokens, channels)
    return _dense(self, self.dim, nested_name(self, "window_attention", f"{p}_attn_proj"))(out)


class Mlp(PrecisionFields):
  """kuc's `Mlp`: Dense(`filter_num[0]`) -> GELU (exact) -> Dense(`filter_num[1]`); layers `{name}_{prefix}_mlp_0`
  and `_1` (`name`: the module's, default `mlp`)."""

  filter_num: Sequence[int]
  prefix: str = "mlp"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = _dense(self, self.filter_num[0], nested_name(self, "mlp", f"{self.prefix}_mlp_0"))(x)
    return _dense(self, self.filter_num[1], nested_name(self, "mlp", f"{self.prefix}_mlp_1"))(
        jax.nn.gelu(x, approximate=False))


class SwinTransformerBlock(PrecisionFields):
  """kuc's `SwinTransformerBlock`: `x + W-MSA(LN(x))`, then `x + MLP(LN(x))`, on a `num_patch` token grid.

  With `shift_size > 0` the grid is rolled by `-shift_size` before the
  window attention and back after, with kuc's mask (`{prefix}_attn_mask`, a
  parameter without gradient). Layers: `{prefix}_norm1`, the attention
  `window_attention_{number}`, `{prefix}_norm2`, `mlp_{number}`, where
  `number` is Keras's numbering of the block in its session.

  kuc shrinks a window larger than the grid to the grid, but its attention
  keeps the bias of the larger window and fails; such blocks are refused here.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> block = SwinTransformerBlock(dim=4, num_patch=(4, 4), num_heads=2, window_size=2, shift_size=1, num_mlp=8,
    ...                              prefix="name1", number=1)
    >>> params = jax.eval_shape(block.init, jax.random.key(0), jnp.ones((1, 16, 4)))["params"]
    >>> sorted(params)
    ['mlp_1', 'name1_attn_mask', 'name1_norm1', 'name1_norm2', 'window_attention_1']
  """

  dim: int
  num_patch: Sequence[int]
  num_heads: int
  window_size: int = 7
  shift_size: int = 0
  num_mlp: int = 1024
  qkv_bias: bool = True
  qk_scale: float | None = None
  prefix: str = "swin_block"
  number: int = 0

  def _check(self, x: jax.Array) -> None:
    height, width = self.num_patch
    window, shift = self.window_size, self.shift_size
    if x.ndim != 3 or x.shape[1] != height * width or x.shape[2] != self.dim:
      raise ValueError(f"x has shape {x.shape}; the block takes (batch, {height * width}, {self.dim}) tokens of its "
                       f"num_patch={tuple(self.num_patch)} grid.")
    if not 0 <= shift < window:
      raise ValueError(f"shift_size={shift} is not allowed; expected 0 <= shift_size < window_size={window}.")
    if window > min(height, width) or height % window or width % window:
      raise ValueError(f"window_size={window} is not allowed on a {height} x {width} token grid; expected a "
                       "divisor of both sides (keras-unet-collection fails with a larger window).")
    if self.dim % self.num_heads:
      raise ValueError(f"num_heads={self.num_heads} is not allowed for {self.dim} channels; expected a divisor.")

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    self._check(x)
    (height, width), window, shift, p = self.num_patch, self.window_size, self.shift_size, self.prefix
    batch, length, channels = x.shape
    tokens = LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"{p}_norm1", **self.dtype_options)(x)
    tokens = tokens.reshape(batch, height, width, channels)
    mask = None
    if shift:
      tokens = jnp.roll(tokens, (-shift, -shift), axis=(1, 2))
      mask = shifted_window_mask(height, window, shift)
      mask = self.param(f"{p}_attn_mask", nn.initializers.constant(mask), mask.shape, self.param_dtype)
      mask = jax.lax.stop_gradient(mask)
    attention = WindowAttention(self.dim, window, self.num_heads, self.qkv_bias, self.qk_scale, p,
                                name=keras_name("window_attention", self.number), **self.precision_options)
    tokens = window_reverse(attention(window_partition(tokens, window), mask), window, height, width)
    if shift:
      tokens = jnp.roll(tokens, (shift, shift), axis=(1, 2))
    x = x + tokens.reshape(batch, length, channels)
    tokens = LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"{p}_norm2", **self.dtype_options)(x)
    return x + Mlp((self.num_mlp, self.dim), p, name=keras_name("mlp", self.number), **self.precision_options)(tokens)


class PatchMerging(PrecisionFields):
  """kuc's `patch_merging`: each 2 x 2 group of tokens concatenated (top-left, bottom-left, top-right,
  bottom-right), then Dense without bias to `2 * embed_dim` (`{prefix}_linear_trans`): half the grid, twice the
  width."""

  num_patch: Sequence[int]
  embed_dim: int
  prefix: str = ""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    height, width = self.num_patch
    batch, length, channels = x.shape
    if length != height * width or height % 2 or width % 2:
      raise ValueError(f"x has shape {x.shape}; patch merging takes the tokens of an even {height} x {width} grid.")
    x = x.reshape(batch, height, width, channels)
    x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
    x = x.reshape(batch, (height // 2) * (width // 2), 4 * channels)
    return _dense(self, 2 * self.embed_dim, f"{self.prefix}_linear_trans", use_bias=False)(x)


class PatchExpanding(PrecisionFields):
  """kuc's `patch_expanding`: Conv 1x1 without bias to `upsample_rate * embed_dim` (`{prefix}_linear_trans1`),
  then depth-to-space by `upsample_rate`; tokens again with `return_vector`, else the `(batch, height, width,
  channels)` map."""

  num_patch: Sequence[int]
  embed_dim: int
  upsample_rate: int
  return_vector: bool = True
  prefix: str = "patch_expand"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    height, width = self.num_patch
    batch, length, channels = x.shape
    if length != height * width:
      raise ValueError(f"x has shape {x.shape}; patch expanding takes the tokens of a {height} x {width} grid.")
    x = conv(self, self.upsample_rate * self.embed_dim, 1, f"{self.prefix}_linear_trans1", use_bias=False)(
        x.reshape(batch, height, width, channels))
    x = depth_to_space(x, self.upsample_rate)
    return x.reshape(batch, -1, x.shape[-1]) if self.return_vector else x


def _check_levels(param: str, values, depth: int) -> tuple[int, ...]:
  ok = not isinstance(values, (str, bytes)) and isinstance(values, Sequence) and len(values) >= depth
  if not ok or any(not is_int(v) or v < 1 for v in values):
    shown = list(values) if isinstance(values, (list, tuple)) else values
    raise ValueError(f"{param}={shown!r} is not allowed; expected a list of positive integers, one per level "
                     f"(at least depth={depth}).")
  return tuple(int(v) for v in values)


def check_config(model: "SwinUNet") -> None:
  """Checks every argument that does not depend on the input; raises `ValueError` naming the first bad one."""
  for param in ("filter_num_begin", "n_labels", "depth", "num_mlp"):
    check_positive_int(param, getattr(model, param))
  check_positive_int("stack_num_down", model.stack_num_down, allow_zero=True)
  check_positive_int("stack_num_up", model.stack_num_up, allow_zero=True)
  patch = model.patch_size
  if (isinstance(patch, (str, bytes)) or not isinstance(patch, Sequence) or len(patch) != 2
      or any(not is_int(p) or p < 1 for p in patch)):
    raise ValueError(f"patch_size={patch!r} is not allowed; expected (size, size), two positive integers.")
  _check_levels("num_heads", model.num_heads, model.depth)
  _check_levels("window_size", model.window_size, model.depth)
  check_activation("output_activation", model.output_activation, OUTPUT_ACTIVATIONS)
  check_bool("shift_window", model.shift_window)
  if not isinstance(model.prefix, str) or not model.prefix:
    raise ValueError(f"name={model.prefix!r} is not allowed; expected a non-empty string (the layer-name prefix).")
  if model.filter_num_begin % patch[0]:
    raise ValueError(f"filter_num_begin={model.filter_num_begin} is not allowed with patch_size={tuple(patch)}: the "
                     f"last patch expanding gives filter_num_begin / patch_size[0] channels, so it must be a "
                     f"multiple of {patch[0]}.")


def _stacks(model: "SwinUNet", grid: int) -> list[tuple[int, int, int, int, int]]:
  """(grid, width, heads, window, blocks) of every stack of Swin blocks: the encoder's levels, then the decoder's."""
  depth, width = model.depth, model.filter_num_begin
  heads, windows = tuple(model.num_heads), tuple(model.window_size)
  down = [(grid // 2 ** i, width * 2 ** i, heads[i], windows[i], model.stack_num_down) for i in range(depth)]
  up = [(grid // 2 ** level, width * 2 ** level, heads[::-1][i], windows[::-1][i], model.stack_num_up)
        for i, level in enumerate(range(depth - 2, -1, -1))]
  return down + up


def check_input_size(model: "SwinUNet", input_size: Sequence[int]) -> int:
  """Checks `(height, width, channels)` against the model; returns the token grid's side.

  Raises:
    ValueError: naming the size and the rule it breaks.
  """
  input_size = tuple(input_size)
  if len(input_size) != 3 or any(not is_int(n) or n < 1
                                 for n in input_size):
    raise ValueError(f"input_size={input_size} is not allowed; expected (height, width, channels), positive "
                     "integers (the number of patches is read from them).")
  height, width = input_size[:2]
  size, size_y = model.patch_size
  grid = height // size
  if grid < 1 or width // size != grid or width // size_y != grid:
    raise ValueError(f"input_size={input_size} is not allowed with patch_size={tuple(model.patch_size)}: "
                     f"keras-unet-collection cuts {size} x {size} patches into a square grid and counts "
                     f"(height // {size}) * (width // {size_y}) patches, so height // {size}, width // {size} and "
                     f"width // {size_y} must be equal (and at least 1).")
  factor = 2 ** (model.depth - 1)
  if grid % factor:
    raise ValueError(f"input_size={input_size} is not allowed: its {grid} x {grid} patches are not divisible by "
                     f"2**(depth - 1) = {factor} (each level halves them).")
  for level_grid, level_width, heads, window, blocks in _stacks(model, grid):
    if not blocks:
      continue
    if window > level_grid or level_grid % window:
      raise ValueError(f"window_size={list(model.window_size)} is not allowed with input_size={input_size}: a "
                       f"window of {window} on a level of {level_grid} x {level_grid} patches; expected a divisor "
                       "(decoder level i uses window_size[::-1][i]).")
    if level_width % heads:
      raise ValueError(f"num_heads={list(model.num_heads)} is not allowed: {heads} heads for {level_width} "
                       "channels; expected a divisor (decoder level i uses num_heads[::-1][i]).")
  return grid


class SwinUNet(PrecisionFields):
  """Swin-UNet computing what keras-unet-collection's `swin_unet_2d` (and its `swin_unet_2d_base`) computes.

  See the module doc for the architecture and kuc's quirks; `swin_unet_2d`
  builds it from keras-unet-collection's arguments.

  Attributes:
    filter_num_begin: the token width of the first level (doubled at every level); a multiple of `patch_size[0]`.
    n_labels: output channels (classes).
    depth: levels, the first included.
    stack_num_down: Swin blocks per encoder level.
    stack_num_up: Swin blocks per decoder level.
    patch_size: (size, size) of the patches.
    num_heads: attention heads per level (decoder level i: `num_heads[::-1][i]`).
    window_size: attention window per level (decoder level i: `window_size[::-1][i]`).
    num_mlp: the width of the blocks' hidden MLP layer.
    output_activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake", "Softmax", "Sigmoid" or None.
    shift_window: every second block of a stack shifts its windows (kuc's `swin_unet_2d` always does).
    input_size: optional (height, width, channels); checked when called.
    prefix: the layer-name prefix (keras-unet-collection's `name`).
    dtype, param_dtype, precision: keyword-only, passed to every layer; see `jaxcomponents.layers.precision`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = SwinUNet(filter_num_begin=4, n_labels=2, depth=2, stack_num_down=2, stack_num_up=1,
    ...                  patch_size=(2, 2), num_heads=(2, 2), window_size=(2, 2), num_mlp=8)
    >>> x = jnp.zeros((1, 8, 8, 1))
    >>> jax.eval_shape(model.apply, jax.eval_shape(model.init, jax.random.key(0), x), x).shape
    (1, 8, 8, 2)
  """

  filter_num_begin: int
  n_labels: int
  depth: int
  stack_num_down: int
  stack_num_up: int
  patch_size: Sequence[int]
  num_heads: Sequence[int]
  window_size: Sequence[int]
  num_mlp: int
  output_activation: str | None = "Softmax"
  shift_window: bool = True
  input_size: Sequence[int] | None = None
  prefix: str = "swin_unet"

  @property
  def output_names(self) -> list[str]:
    """The output layer's name, as keras-unet-collection's Keras `model.output_names`."""
    return output_names(self.prefix, self.output_activation)

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_config(self)
    if x.ndim != 4:
      raise ValueError(f"x has shape {x.shape}; SwinUNet takes images (batch, height, width, channels).")
    check_built_for(self.input_size, x)
    grid = check_input_size(self, x.shape[1:])
    p, size, stacks = self.prefix, self.patch_size[0], iter(_stacks(self, grid))
    numbers = itertools.count()  # Keras's session numbering of the blocks
    width = self.filter_num_begin
    x = PatchEmbedding(grid * grid, width, name="patch_embedding", **self.precision_options)(extract_patches(x, size))
    skips = [self._stack(x, next(stacks), numbers)]
    for i in range(self.depth - 1):
      x = PatchMerging((grid, grid), width, f"down{i}", name=keras_name("patch_merging", i),
                       **self.precision_options)(skips[-1])
      grid, width = grid // 2, width * 2
      skips.append(self._stack(x, next(stacks), numbers))
    x = skips.pop()
    for i, skip in enumerate(skips[::-1]):
      x = PatchExpanding((grid, grid), width, 2, prefix=f"{p}_swin_up{i}", name=keras_name("patch_expanding", i),
                         **self.precision_options)(x)
      grid, width = grid * 2, width // 2
      x = _dense(self, width, f"{p}_concat_linear_proj_{i}", use_bias=False)(jnp.concatenate([x, skip], axis=-1))
      x = self._stack(x, next(stacks), numbers)
    x = PatchExpanding((grid, grid), width, size, return_vector=False,
                       name=keras_name("patch_expanding", self.depth - 1), **self.precision_options)(x)
    return ConvOutput(self.n_labels, activation=self.output_activation, name=f"{p}_output",
                      **self.precision_options)(x)

  def _stack(self, x: jax.Array, stack: tuple[int, int, int, int, int], numbers) -> jax.Array:
    """kuc's `swin_transformer_stack`: blocks `name0`, `name1`, ...; the odd ones shifted by `window // 2`."""
    grid, width, heads, window, blocks = stack
    shift = window // 2 if self.shift_window else 0
    for i in range(blocks):
      number = next(numbers)
      x = SwinTransformerBlock(width, (grid, grid), heads, window, shift if i % 2 else 0, self.num_mlp,
                               prefix=f"name{i}", number=number, name=keras_name("swin_transformer_block", number),
                               **self.precision_options)(x)
    return x


def swin_constant_patterns(params) -> list[str]:
  """Patterns for `jaxcomponents.training.freeze(tx, ...)`: kuc's constants (relative position indices, attention
  masks), which receive no gradient but would decay under weight decay.

  Example:
    >>> swin_constant_patterns({"block": {"name0_attn_pos_ind": 0, "name0_attn_pos": 0}})
    ['.*_attn_pos_ind']
  """
  paths = [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  patterns = [".*_attn_pos_ind", ".*_attn_mask"]
  return [pattern for pattern in patterns if any(path.endswith(pattern[2:]) for path in paths)]


def swin_unet_2d(input_size, filter_num_begin, n_labels, depth, stack_num_down, stack_num_up, patch_size, num_heads,
                 window_size, num_mlp, output_activation="Softmax", shift_window=True, name="swin_unet", *,
                 dtype=None, param_dtype=jnp.float32, precision=None) -> SwinUNet:
  """keras-unet-collection's `swin_unet_2d`: the same arguments and defaults; returns a `SwinUNet` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), every size
  given. As in keras-unet-collection, `shift_window` is ignored (the model
  always shifts every second block; a warning says so when it is not True).
  `name` prefixes the layer names. The keyword-only `dtype`, `param_dtype` and
  `precision` are `SwinUNet`'s.

  Example:
    >>> model = swin_unet_2d((32, 32, 3), 8, 2, depth=3, stack_num_down=2, stack_num_up=2, patch_size=(2, 2),
    ...                      num_heads=[2, 2, 4], window_size=[4, 2, 2], num_mlp=16)
    >>> model.prefix, model.shift_window
    ('swin_unet', True)
  """
  if shift_window is not True:
    warnings.warn(f"shift_window={shift_window!r}: keras-unet-collection's swin_unet_2d ignores it and shifts every "
                  "second window, so the twin does too; SwinUNet(shift_window=False) has no shifted windows.",
                  stacklevel=2)
  if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence):
    raise ValueError(f"input_size={input_size!r} is not allowed; expected (height, width, channels).")
  model = SwinUNet(filter_num_begin=filter_num_begin, n_labels=n_labels, depth=depth, stack_num_down=stack_num_down,
                   stack_num_up=stack_num_up, patch_size=_as_tuple(patch_size), num_heads=_as_tuple(num_heads),
                   window_size=_as_tuple(window_size), num_mlp=num_mlp, output_activation=output_activation,
                   shift_window=True, input_size=tuple(input_size), prefix=name, dtype=dtype, param_dtype=param_dtype,
                   precision=precision)
  check_config(model)
  check_input_size(model, model.input_size)
  return model


def _as_tuple(values):
  """Lists as tuples (module fields must be hashable); anything else as given, for the checks to name."""
  return tuple(values) if isinstance(values, list) else values
