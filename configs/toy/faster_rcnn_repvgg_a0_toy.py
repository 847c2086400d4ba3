# Faster R-CNN + RepVGG-A0 + FPN trained from scratch on the embedded toy dataset
# (python tools/dataset_converters/make_toy_dense.py) in a few minutes on 2 CPU cores, on a 12-epoch "1x" schedule:
#   python tools/train.py configs/toy/faster_rcnn_repvgg_a0_toy.py
# From scratch nothing is frozen and BN statistics are learned (frozen_stages=-1, norm_eval=False).
_base_ = [
    '../_base_/models/faster_rcnn_repvgg_fpn.py', '../_base_/datasets/toy_dense_det.py',
    '../_base_/det_runtime.py'
]
arch = 'A0'
stage_channels = (48, 96, 192, 1280)  # repvgg_mm.models.arch_channels('A0')[1]
max_epochs = 12
model = dict(
    backbone=dict(arch=arch, out_indices=(1, 2, 3), frozen_stages=-1, norm_eval=False),
    # 96x96 images: stages 2-4 (strides 8/16/32), small anchors (16 and 32 px at stride 8)
    neck=dict(in_channels=list(stage_channels[1:]), out_channels=64, num_outs=3),
    rpn_head=dict(
        in_channels=64, feat_channels=64,
        anchor_generator=dict(scales=[2, 4], strides=[8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64, featmap_strides=[8, 16, 32]),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=100), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))
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
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=5)
randomness = dict(seed=0)
