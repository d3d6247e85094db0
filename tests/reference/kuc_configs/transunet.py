"""keras-unet-collection's `transunet_2d` configurations for `make_unet_references.py` (tests/test_transunet.py).

Covers: depths 2, 3 and 4; one and two transformers; one to three heads; the
encoder's activations ReLU, LeakyReLU, ELU, GELU, PReLU; the MLP's GELU, PReLU,
Snake, Softmax and ELU; outputs Softmax, Sigmoid, None and Snake; pool
True/'ave'/False/'max'; unpool True/'nearest'/False/'bilinear'; batch norm on
and off; stack numbers 1 and 2; a ResNet50 backbone cut at depth 3.

`make_unet_references.randomize` has no rule for `Embedding`'s `embeddings`
(the position embedding), so these files are generated through this script,
which gives them one (normal, standard deviation 0.5) and otherwise runs
`make_unet_references.main`:

  /tmp/kuc-venv/bin/python tests/reference/kuc_configs/transunet.py [NAME ...]
"""

CONFIGS = {
    "transunet_d3_defaults": ("transunet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, embed_dim=8, num_mlp=12, num_heads=2,
        num_transformer=2), 2),
    "transunet_d4_ave_nearest_bn_prelu": ("transunet_2d", dict(
        input_size=(32, 32, 2), filter_num=[4, 8, 16, 32], n_labels=3, stack_num_down=1, embed_dim=12, num_mlp=6,
        num_heads=3, num_transformer=1, activation="LeakyReLU", mlp_activation="PReLU", output_activation="Sigmoid",
        batch_norm=True, pool="ave", unpool="nearest"), 2),
    "transunet_d3_strided_transpose_snake": ("transunet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 8, 16], n_labels=2, stack_num_up=1, embed_dim=6, num_mlp=10,
        num_heads=1, num_transformer=2, activation="ELU", mlp_activation="Snake", output_activation=None,
        batch_norm=True, pool=False, unpool=False), 2),
    "transunet_d2_prelu_softmax_mlp": ("transunet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 8], n_labels=2, stack_num_down=1, stack_num_up=1, embed_dim=4,
        num_mlp=4, num_heads=2, num_transformer=1, activation="PReLU", mlp_activation="Softmax",
        output_activation="Snake", pool="max", unpool="bilinear"), 1),
    "transunet_resnet50_d3": ("transunet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, embed_dim=8, num_mlp=8, num_heads=2,
        num_transformer=1, activation="GELU", mlp_activation="ELU", batch_norm=True, backbone="ResNet50",
        weights=None), 1),
}

TRAIN = {"transunet_d3_strided_transpose_snake": {}}


def _randomize_with_embeddings(refs):
  """`refs.randomize`, plus a rule for `embeddings`: normal, standard deviation 0.5."""
  import types

  original = refs.randomize

  def randomize(model, rng):
    embeddings = [w for w in model.weights if w.name.split("/")[-1].split(":")[0] == "embeddings"]
    original(types.SimpleNamespace(weights=[w for w in model.weights if all(w is not e for e in embeddings)]), rng)
    for w in embeddings:
      w.assign(rng.normal(0.0, 0.5, tuple(w.shape)).astype("float32"))

  return randomize


if __name__ == "__main__":
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import make_unet_references  # pylint: disable=import-error

  make_unet_references.randomize = _randomize_with_embeddings(make_unet_references)
  make_unet_references.main(sys.argv[1:] or list(CONFIGS))
