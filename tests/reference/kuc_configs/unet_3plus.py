"""keras-unet-collection's `unet_3plus_2d` configurations for tests/test_unet_3plus.py.

Covers: depths 2 to 5 (full-scale skips pooled and upsampled by 2, 4, 8 and 16); filter_num_skip and
filter_num_aggregate 'auto' and explicit (filter_num_skip longer than needed, and as short as a backbone allows);
pool True/'max'/'ave'/False; unpool True/'bilinear'/'nearest'/False (the side outputs' transposed convolutions
too); batch norm on and off; stack numbers 1 and 2; activations ReLU, LeakyReLU, GELU, Snake, PReLU, ELU; outputs
Sigmoid, Softmax, None, PReLU, Snake; deep supervision on and off; backbones VGG16 (first tap at full resolution)
and ResNet50 (one plain upsampling level). Inputs are 16x16 where the depth allows, to keep the files small.
"""

CONFIGS = {
    "unet3plus_d4_defaults": ("unet_3plus_2d", dict(input_size=(16, 16, 1), n_labels=2,
                                                    filter_num_down=[4, 8, 8, 16]), 2),
    "unet3plus_d4_ave_nearest_bn_ds": ("unet_3plus_2d", dict(
        input_size=(16, 16, 3), n_labels=2, filter_num_down=[4, 8, 8, 16], filter_num_skip=[3, 4, 5],
        filter_num_aggregate=6, stack_num_down=1, stack_num_up=2, activation="LeakyReLU",
        output_activation="Softmax", batch_norm=True, pool="ave", unpool="nearest", deep_supervision=True), 2),
    "unet3plus_d5_strided_transpose_ds": ("unet_3plus_2d", dict(
        input_size=(16, 16, 2), n_labels=1, filter_num_down=[4, 4, 8, 8, 8], filter_num_aggregate=10,
        activation="GELU", output_activation=None, pool=False, unpool=False, deep_supervision=True), 2),
    "unet3plus_d3_max_bilinear_snake_bn": ("unet_3plus_2d", dict(
        input_size=(16, 16, 3), n_labels=2, filter_num_down=[4, 8, 8], filter_num_skip=[3, 5, 7],
        filter_num_aggregate=5, stack_num_down=1, stack_num_up=2, activation="Snake", output_activation="PReLU",
        batch_norm=True, pool="max", unpool="bilinear"), 2),
    "unet3plus_vgg16_d2": ("unet_3plus_2d", dict(
        input_size=(32, 32, 3), n_labels=2, filter_num_down=[4, 8], backbone="VGG16", weights=None,
        activation="PReLU", output_activation="Snake", deep_supervision=True), 1),
    "unet3plus_resnet50_d3": ("unet_3plus_2d", dict(
        input_size=(32, 32, 3), n_labels=2, filter_num_down=[4, 8, 16], filter_num_skip=[5], backbone="ResNet50",
        weights=None, activation="ELU", batch_norm=True, unpool=False, deep_supervision=True,
        freeze_backbone=False), 1),
}

TRAIN = {"unet3plus_d4_ave_nearest_bn_ds": {}}
