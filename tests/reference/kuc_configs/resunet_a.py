"""keras-unet-collection's `resunet_a_2d` configurations recorded in tests/reference/unet (tests/test_resunet_a.py).

Together they cover: depths 1 to 4; dilation rates given per level (one
configuration with more levels than the model has, a kuc quirk) and as one
list that kuc spreads over the levels itself; every pool (True, "max", "ave",
False) and unpool (True, "bilinear", "nearest", False) value; batch norm on
and off; every activation (ReLU in the ASPP branches kuc fixes to it);
outputs Softmax, Sigmoid, None, Snake and PReLU. The ASPP widths are small,
and the configurations with per-pixel weights (PReLU) 16x16, to keep the files
small.
"""

CONFIGS = {
    "resunet_a_d3_auto_dilation": ("resunet_a_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 6, 8], dilation_num=[1, 3], n_labels=2, aspp_num_down=6,
        aspp_num_up=4, activation="ELU"), 2),
    "resunet_a_d4_auto_strided_transpose": ("resunet_a_2d", dict(
        input_size=(32, 32, 2), filter_num=[4, 4, 8, 8], dilation_num=[1, 3], n_labels=2, aspp_num_down=6,
        aspp_num_up=4, activation="LeakyReLU", output_activation="Sigmoid", batch_norm=False, pool=False,
        unpool=False), 2),
    "resunet_a_d3_extra_levels_ave_nearest": ("resunet_a_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 6, 8], dilation_num=[[1, 2], [1, 3], [2], [5]], n_labels=3,
        aspp_num_down=4, aspp_num_up=4, activation="GELU", output_activation=None, batch_norm=False, pool="ave",
        unpool="nearest"), 2),
    "resunet_a_d2_prelu_max_bilinear": ("resunet_a_2d", dict(
        input_size=(16, 16, 2), filter_num=[4, 8], dilation_num=[[1], [1, 2]], n_labels=2, aspp_num_down=4,
        aspp_num_up=4, activation="PReLU", output_activation="Snake", pool="max", unpool="bilinear"), 2),
    "resunet_a_d1_snake": ("resunet_a_2d", dict(
        input_size=(16, 16, 2), filter_num=[4], dilation_num=[1, 2], n_labels=2, aspp_num_down=4, aspp_num_up=4,
        activation="Snake", output_activation="PReLU"), 2),
}

TRAIN = {"resunet_a_d4_auto_strided_transpose": {}}
