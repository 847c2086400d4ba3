# PSPNet + RepVGG-A0 (output stride 8) trained from scratch on the embedded toy dataset
# (python tools/dataset_converters/make_toy_dense.py) in a few minutes on 2 CPU cores:
#   python tools/train.py configs/toy/pspnet_repvgg_a0_toy.py
_base_ = [
    '../_base_/models/pspnet_repvgg.py', '../_base_/datasets/toy_dense_seg.py',
    '../_base_/seg_runtime.py'
]
arch = 'A0'
stage_channels = (48, 96, 192, 1280)  # repvgg_mm.models.arch_channels('A0')[1]
num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)  # one process on CPU: plain BN
max_iters = 500
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(arch=arch, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=stage_channels[3], channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=stage_channels[2], channels=32, num_classes=num_classes, norm_cfg=norm_cfg))
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=20, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # with --show-dir, draw every test image (ground truth | prediction)
    visualization=dict(type='SegVisualizationHook', interval=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
visualizer = dict(alpha=0.5)  # --show-dir drawings: masks at half opacity over the small images
