# RetinaNet + RepVGG-A0 + FPN trained from scratch on the embedded toy dataset
# (python tools/dataset_converters/make_toy_dense.py) in a few minutes on 2 CPU cores, on a 12-epoch "1x" schedule:
#   python tools/train.py configs/toy/retinanet_repvgg_a0_toy.py
# From scratch nothing is frozen and BN statistics are learned (frozen_stages=-1, norm_eval=False);
# with a pretrained backbone use the COCO configs' frozen_stages=1, norm_eval=True. From scratch,
# a GroupNorm head and AdamW learn this task quickly; with plain SGD RetinaNet stays near mAP 0 in
# 12 epochs here.
_base_ = [
    '../_base_/models/retinanet_repvgg_fpn.py', '../_base_/datasets/toy_dense_det.py',
    '../_base_/det_runtime.py'
]
arch = 'A0'
stage_channels = (48, 96, 192, 1280)  # repvgg_mm.models.arch_channels('A0')[1]
max_epochs = 12
model = dict(
    backbone=dict(arch=arch, out_indices=(1, 2, 3), frozen_stages=-1, norm_eval=False),
    # 96x96 images: P3-P5 (strides 8/16/32) are enough, no extra levels.
    neck=dict(in_channels=list(stage_channels[1:]), out_channels=64, add_extra_convs=False,
              num_outs=3),
    bbox_head=dict(
        num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # objects are 12-42 px: anchors of 16-25 px at stride 8 up to 64-101 px at stride 32
        anchor_generator=dict(octave_base_scale=2, strides=[8, 16, 32])),
    test_cfg=dict(max_per_img=20))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=5)
randomness = dict(seed=0)
