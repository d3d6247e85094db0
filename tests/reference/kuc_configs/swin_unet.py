"""keras-unet-collection's `swin_unet_2d` configurations for `make_unet_references.py` (tests/test_swin_unet.py).

Covers: depths 1, 2 and 3; patch sizes 2, 3 and 4; windows of 1, 2, 4 and 8 tokens, a window as large as its
level's grid, windows shifted or not (kuc shifts whatever `shift_window` says); one to four heads; stacks of 1 to
3 blocks (the third block of a stack of 3 shifted again); `num_heads` and `window_size` longer than `depth` (the
decoder reads them from the end); an input not divisible by the patch size (cropped); outputs Softmax, Sigmoid,
None and PReLU.
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
