"""keras-unet-collection `r2_unet_2d` configurations for tests/test_r2_unet.py (make_unet_references.py reads them).

Covers: recur_num 0, 1, 2 and 3; stack numbers 1 and 2; depths 2 to 4; batch norm on and off; pool
True/'max'/'ave'/False; unpool True/'bilinear'/'nearest'/False; every activation; outputs Softmax, Sigmoid,
None, PReLU and Snake.
"""

CONFIGS = {
    "r2_unet_d3_defaults": ("r2_unet_2d", dict(input_size=(32, 32, 1), filter_num=[2, 4, 8], n_labels=2), 2),
    "r2_unet_d3_recur1_prelu_strided_transpose": ("r2_unet_2d", dict(
        input_size=(16, 16, 2), filter_num=[2, 4, 4], n_labels=3, stack_num_down=1, stack_num_up=1, recur_num=1,
        activation="PReLU", output_activation="Sigmoid", pool=False, unpool=False), 2),
    "r2_unet_d4_snake_ave_nearest_bn": ("r2_unet_2d", dict(
        input_size=(16, 16, 3), filter_num=[2, 2, 4, 4], n_labels=2, stack_num_down=1, stack_num_up=1, recur_num=1,
        activation="Snake", output_activation=None, batch_norm=True, pool="ave", unpool="nearest"), 2),
    "r2_unet_d2_recur3_gelu_max_bilinear": ("r2_unet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 8], n_labels=2, stack_num_down=1, stack_num_up=2, recur_num=3,
        activation="GELU", output_activation="PReLU", pool="max", unpool="bilinear", name="r2"), 2),
    "r2_unet_d3_recur0_leaky_strided": ("r2_unet_2d", dict(
        input_size=(32, 32, 2), filter_num=[4, 4, 8], n_labels=2, recur_num=0, activation="LeakyReLU",
        output_activation="Snake", pool=False), 1),
    "r2_unet_d2_elu_bn_transpose": ("r2_unet_2d", dict(
        input_size=(32, 32, 1), filter_num=[3, 6], n_labels=2, stack_num_down=1, stack_num_up=1, recur_num=1,
        activation="ELU", output_activation="Softmax", batch_norm=True, unpool=False), 1),
}

TRAIN = {"r2_unet_d3_recur1_prelu_strided_transpose": {}}
