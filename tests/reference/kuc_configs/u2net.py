"""keras-unet-collection's `u2net_2d` configurations recorded by `make_unet_references.py` (tests/test_u2net.py).

Together they cover: depths 1, 2 and 3 (`len(filter_num_down)`) with no RSU-4F level, one and two; every filter
list 'auto' and explicit, intermediate lists longer than their output lists (kuc reads them from the start going
down and from the end going up), a decoder shorter than the encoder (an output below full resolution); pool
True/'max'/'ave'/False; unpool True/'bilinear'/'nearest'/False (the side outputs' transposed convolutions of
stride 2**i); batch norm on and off; hidden activations ReLU/PReLU/Snake/GELU/LeakyReLU; outputs
Sigmoid/Softmax/None/ELU/PReLU; deep supervision on and off, and one training step with it. U^2-Net has many
layers and Keras's weight files pay for each, so the filters and inputs are tiny.
"""

CONFIGS = {
    "u2net_d2_auto_defaults": ("u2net_2d", dict(input_size=(16, 16, 3), n_labels=2, filter_num_down=[4, 8]), 2),
    "u2net_d1_explicit_ave_nearest_prelu_softmax_ds": ("u2net_2d", dict(
        input_size=(8, 8, 2), n_labels=3, filter_num_down=[4], filter_num_up=[3], filter_mid_num_down=[2, 3],
        filter_mid_num_up=[1, 2], filter_4f_num=[4, 3], filter_4f_mid_num=[2, 1, 3], activation="PReLU",
        output_activation="Softmax", pool="ave", unpool="nearest", deep_supervision=True), 2),
    "u2net_d1_strided_transpose_gelu_linear_ds": ("u2net_2d", dict(
        input_size=(8, 8, 1), n_labels=2, filter_num_down=[4], activation="GELU", output_activation=None,
        pool=False, unpool=False, deep_supervision=True), 2),
    "u2net_d1_one4f_max_bilinear_bn_snake_elu_ds": ("u2net_2d", dict(
        input_size=(8, 8, 1), n_labels=2, filter_num_down=[4], filter_mid_num_down=[2], filter_4f_num=[4],
        activation="Snake", output_activation="ELU", batch_norm=True, pool="max", unpool="bilinear",
        deep_supervision=True), 2),
    "u2net_d3_no4f_short_decoder_leaky_prelu_ds": ("u2net_2d", dict(
        input_size=(16, 16, 1), n_labels=2, filter_num_down=[4, 8, 8], filter_num_up=[8], filter_4f_num=[],
        activation="LeakyReLU", output_activation="PReLU", unpool=False, deep_supervision=True), 2),
}

TRAIN = {"u2net_d1_one4f_max_bilinear_bn_snake_elu_ds": {}}
