"""keras-unet-collection `vnet_2d` configurations for tests/test_vnet.py (make_unet_references.py reads them).

Covers: levels with 0, 1, 2 and 3 residual convolutions (res_num_ini 0 to 2, res_num_max 1 to 3); depths 1 to 4;
batch norm on and off; pool True/'max'/'ave'/False; unpool True/'bilinear'/'nearest'/False; size-1 channels that
Keras's `add` broadcasts; every activation; outputs Softmax, Sigmoid, None, PReLU and Snake. With upsampling
(`unpool` not False) kuc's V-Net needs equal filter numbers (or 1). Snake stays in a shallow network: its
activations grow level by level, and deeper Snake networks lose float32 digits beyond the tests' 1e-5.
"""

CONFIGS = {
    "vnet_d3_defaults": ("vnet_2d", dict(input_size=(32, 32, 1), filter_num=[4, 4, 4], n_labels=2), 2),
    "vnet_d3_prelu_strided_transpose": ("vnet_2d", dict(
        input_size=(16, 16, 2), filter_num=[2, 4, 8], n_labels=3, res_num_ini=1, res_num_max=2,
        activation="PReLU", output_activation="Sigmoid", pool=False, unpool=False), 2),
    "vnet_d4_gelu_ave_nearest_bn": ("vnet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 4, 4, 4], n_labels=2, res_num_ini=2, res_num_max=3,
        activation="GELU", output_activation=None, batch_norm=True, pool="ave", unpool="nearest"), 2),
    "vnet_d3_broadcast_leaky_max_bilinear_bn": ("vnet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 1, 1], n_labels=2, res_num_ini=2, res_num_max=2,
        activation="LeakyReLU", output_activation="Softmax", batch_norm=True, pool="max", unpool="bilinear",
        name="v2"), 2),
    "vnet_d3_res0_elu_strided_transpose": ("vnet_2d", dict(
        input_size=(32, 32, 2), filter_num=[1, 4, 8], n_labels=2, res_num_ini=0, res_num_max=3, activation="ELU",
        output_activation="PReLU", pool=False, unpool=False), 1),
    "vnet_d2_snake_max_transpose": ("vnet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 6], n_labels=2, res_num_ini=1, res_num_max=1, activation="Snake",
        output_activation="Snake", pool=True, unpool=False), 1),
    "vnet_d1_softmax_act": ("vnet_2d", dict(
        input_size=(32, 32, 1), filter_num=[3], n_labels=2, res_num_ini=0, activation="Softmax",
        output_activation="Sigmoid"), 1),
}

TRAIN = {"vnet_d3_prelu_strided_transpose": {}}
