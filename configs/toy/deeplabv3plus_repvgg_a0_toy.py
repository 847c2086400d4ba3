# DeepLabV3+ + RepVGG-A0 (output stride 8, low-level features from stage 1) trained from scratch on
# the embedded toy dataset (python tools/dataset_converters/make_toy_dense.py) in a few minutes on
# 2 CPU cores:
#   python tools/train.py configs/toy/deeplabv3plus_repvgg_a0_toy.py
_base_ = [
    '../_base_/models/deeplabv3plus_repvgg.py', '../_base_/datasets/toy_dense_seg.py',
    '../_base_/seg_runtime.py', '../_base_/schedules/schedule_toy_seg.py'
]
arch = 'A0'
stage_channels = (48, 96, 192, 1280)  # repvgg_mm.models.arch_channels('A0')[1]
num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)  # one process on CPU: plain BN
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(arch=arch, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=stage_channels[3],
        channels=64,
        # ASPP rates scaled to the 8x8 (train) / 12x12 (test) stride-8 maps of 64-96 px images;
        # mmseg's (1, 12, 24, 36) are for 512-1024 px crops.
        dilations=(1, 2, 3, 4),
        c1_in_channels=stage_channels[0],
        c1_channels=16,
        num_classes=num_classes,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=stage_channels[2], channels=32, num_classes=num_classes, norm_cfg=norm_cfg))
env_cfg = dict(cudnn_benchmark=False)
visualizer = dict(alpha=0.5)  # --show-dir drawings: masks at half opacity over the small images
