# Mask R-CNN + RepVGG-A0 + FPN, COCO (bbox + segm), 1x schedule (12 epochs), 8 GPUs x 2 images
# (mmdet's mask-rcnn_r50_fpn_1x_coco recipe: SGD lr 0.02).
#   python tools/train.py configs/detection/mask_rcnn_repvgg_a0_fpn_1x_coco.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH_TO_IMAGENET_CHECKPOINT
_base_ = [
    '../_base_/models/mask_rcnn_repvgg_fpn.py', '../_base_/datasets/coco_instance.py',
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
