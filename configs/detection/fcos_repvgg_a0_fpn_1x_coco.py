# FCOS + RepVGG-A0 + FPN, COCO, 1x schedule (12 epochs), 8 GPUs x 2 images (mmdet's
# fcos_r50-caffe_fpn_gn-head_1x_coco recipe: SGD lr 0.01, constant warm-up at 1/3, bias lr x2 and no
# bias decay, gradient clipping at 35).
#   python tools/train.py configs/detection/fcos_repvgg_a0_fpn_1x_coco.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH_TO_IMAGENET_CHECKPOINT
_base_ = [
    '../_base_/models/fcos_repvgg_fpn.py', '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/det_runtime.py'
]
arch = 'A0'
stage_channels = (48, 96, 192, 1280)  # repvgg_mm.models.arch_channels('A0')[1]
pretrained = 'checkpoints/repvgg_a0_imagenet.pth'
model = dict(
    backbone=dict(
        arch=arch,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=list(stage_channels)))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2))
