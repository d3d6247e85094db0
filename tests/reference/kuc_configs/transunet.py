"""keras-unet-collection's `transunet_2d` configurations for `make_unet_references.py` (tests/test_transunet.py).

Covers: depths 2, 3 and 4; one and two transformers; one to three heads; the
encoder's activations ReLU, LeakyReLU, ELU, GELU, PReLU; the MLP's GELU, PReLU,
Snake, Softmax and ELU; outputs Softmax, Sigmoid, None and Snake; pool
True/'ave'/False/'max'; unpool True/'nearest'/False/'bilinear'; batch norm on
and off; stack numbers 1 and 2; a ResNet50 backbone cut at depth 3.
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
