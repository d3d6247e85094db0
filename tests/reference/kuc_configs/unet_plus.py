"""keras-unet-collection's `unet_plus_2d` (U-Net++) configurations for tests/test_unet_plus.py.

name -> (keras_unet_collection.models function, keyword arguments, batch size). Covers depths 3 and 4; pool
True/'max'/'ave'/False; unpool True/'bilinear'/'nearest'/False; batch norm on and off; stack numbers 1 and 2; the
activations ReLU, LeakyReLU, PReLU, ELU, GELU and Snake; outputs Softmax/Sigmoid/None/PReLU/Snake; deep supervision
on and off, without a backbone, with VGG16 (full-resolution first tap) and with ResNet50 (whose deep-supervision
branches decode through the extra `{name}_sup{i}_up` layers).
"""

CONFIGS = {
    "xnet_d3_defaults": ("unet_plus_2d", dict(input_size=(32, 32, 1), filter_num=[4, 8, 16], n_labels=2), 2),
    "xnet_d4_ave_nearest_bn_prelu_sup": ("unet_plus_2d", dict(
        input_size=(8, 8, 2), filter_num=[4, 4, 8, 8], n_labels=3, stack_num_down=1, activation="PReLU",
        output_activation="Sigmoid", batch_norm=True, pool="ave", unpool="nearest", deep_supervision=True), 2),
    "xnet_d3_strided_transpose_bn_snake_sup": ("unet_plus_2d", dict(
        input_size=(16, 16, 1), filter_num=[4, 8, 16], n_labels=2, stack_num_up=1, activation="Snake",
        output_activation="Sigmoid", batch_norm=True, pool=False, unpool=False, deep_supervision=True), 2),
    "xnet_d4_max_bilinear_gelu_linear": ("unet_plus_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 8, 16], n_labels=2, stack_num_up=1, activation="GELU",
        output_activation=None, pool="max", unpool="bilinear"), 2),
    "xnet_d3_leaky_strided_nearest_snake_out_sup": ("unet_plus_2d", dict(
        input_size=(16, 16, 2), filter_num=[4, 8, 16], n_labels=2, activation="LeakyReLU",
        output_activation="Snake", pool=False, unpool="nearest", deep_supervision=True), 2),
    "xnet_d3_elu_ave_transpose_prelu_out": ("unet_plus_2d", dict(
        input_size=(16, 16, 2), filter_num=[4, 8, 16], n_labels=2, stack_num_down=1, activation="ELU",
        output_activation="PReLU", pool="ave", unpool=False), 2),
    "xnet_vgg16_d2_sup": ("unet_plus_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8], n_labels=2, backbone="VGG16", weights=None,
        deep_supervision=True), 1),
    "xnet_resnet50_d3_sup_transpose_bn": ("unet_plus_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, backbone="ResNet50", weights=None,
        batch_norm=True, unpool=False, deep_supervision=True, freeze_backbone=False), 1),
}

TRAIN = {"xnet_d3_leaky_strided_nearest_snake_out_sup": {}}  # one SGD step on three weighted outputs
