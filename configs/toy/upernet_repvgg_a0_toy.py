# UPerNet + RepVGG-A0 (all four stages, output stride 32) trained from scratch on the embedded toy
# dataset (python tools/dataset_converters/make_toy_dense.py) in a few minutes on 2 CPU cores:
#   python tools/train.py configs/toy/upernet_repvgg_a0_toy.py
_base_ = [
    '../_base_/models/upernet_repvgg.py', '../_base_/datasets/toy_dense_seg.py',
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
        in_channels=list(stage_channels), channels=64, num_classes=num_classes,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=stage_channels[2], channels=32, num_classes=num_classes, norm_cfg=norm_cfg))
env_cfg = dict(cudnn_benchmark=False)
visualizer = dict(alpha=0.5)  # --show-dir drawings: masks at half opacity over the small images
