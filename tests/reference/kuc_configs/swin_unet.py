"""keras-unet-collection's `swin_unet_2d` configurations for `make_unet_references.py` (tests/test_swin_unet.py).

Covers: depths 1, 2 and 3; patch sizes 2, 3 and 4; windows of 1, 2, 4 and 8 tokens, a window as large as its
level's grid, windows shifted or not (kuc shifts whatever `shift_window` says); one to four heads; stacks of 1 to
3 blocks (the third block of a stack of 3 shifted again); `num_heads` and `window_size` longer than `depth` (the
decoder reads them from the end); an input not divisible by the patch size (cropped); outputs Softmax, Sigmoid,
None and PReLU.

`make_unet_references.randomize` has no rule for the position embedding (`embeddings`) and the relative position
bias table (`name{i}_attn_pos`), and must leave the relative position index (`name{i}_attn_pos_ind`, int64) and
the shifted windows' attention mask (`name{i}_attn_mask`) as kuc builds them. These files are therefore generated
through this script, which gives those weights their rules (`RANDOM_RULES`) and otherwise runs
`make_unet_references.main`:

  /tmp/kuc-venv/bin/python tests/reference/kuc_configs/swin_unet.py [NAME ...]
"""

CONFIGS = {
    "swin_unet_d3_p2_softmax": ("swin_unet_2d", dict(
        input_size=(32, 32, 3), filter_num_begin=8, n_labels=2, depth=3, stack_num_down=2, stack_num_up=1,
        patch_size=(2, 2), num_heads=[2, 2, 4], window_size=[4, 2, 2], num_mlp=16), 2),
    "swin_unet_d2_p4_whole_grid_window_sigmoid": ("swin_unet_2d", dict(
        input_size=(32, 32, 1), filter_num_begin=8, n_labels=1, depth=2, stack_num_down=1, stack_num_up=3,
        patch_size=(4, 4), num_heads=[1, 2], window_size=[8, 4], num_mlp=12, output_activation="Sigmoid",
        shift_window=False, name="swin"), 2),
    "swin_unet_d1_p3_linear": ("swin_unet_2d", dict(
        input_size=(24, 24, 2), filter_num_begin=6, n_labels=3, depth=1, stack_num_down=2, stack_num_up=1,
        patch_size=(3, 3), num_heads=[3], window_size=[2], num_mlp=8, output_activation=None), 1),
    "swin_unet_d3_long_lists_crop_prelu": ("swin_unet_2d", dict(
        input_size=(33, 33, 2), filter_num_begin=8, n_labels=2, depth=3, stack_num_down=1, stack_num_up=2,
        patch_size=(2, 2), num_heads=[2, 2, 2, 4], window_size=[4, 2, 1, 2], num_mlp=16,
        output_activation="PReLU"), 1),
}

TRAIN = {"swin_unet_d2_p4_whole_grid_window_sigmoid": {}}

# Weights make_unet_references.randomize has no rule for: short-name suffix -> standard deviation of a normal draw
# (the position embedding, the relative position bias tables), or None: kept as kuc builds them (the relative position
# index, int64, and the shifted windows' attention mask).
RANDOM_RULES = {"embeddings": 0.5, "_attn_pos": 0.5, "_attn_pos_ind": None, "_attn_mask": None}


def with_rules(randomize, rules):
  """`randomize(model, rng)` for the weights no rule names; those it names drawn or kept by their rule."""
  import types

  def rule(weight):
    short = weight.name.split("/")[-1].split(":")[0]
    return next((suffix for suffix in rules if short.endswith(suffix)), "")

  def randomize_all(model, rng):
    randomize(types.SimpleNamespace(weights=[w for w in model.weights if not rule(w)]), rng)
    for w in model.weights:
      if rule(w) and rules[rule(w)] is not None:
        w.assign(rng.normal(0.0, rules[rule(w)], tuple(w.shape)).astype("float32"))

  return randomize_all


def main(names):
  """`make_unet_references.main(names)` with `RANDOM_RULES`."""
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import make_unet_references  # pylint: disable=import-error

  make_unet_references.randomize = with_rules(make_unet_references.randomize, RANDOM_RULES)
  make_unet_references.main(names or list(CONFIGS))


if __name__ == "__main__":
  import sys

  main(sys.argv[1:])
