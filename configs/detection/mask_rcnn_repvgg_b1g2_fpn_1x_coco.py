# Mask R-CNN + RepVGG-B1g2 + FPN, COCO, 1x schedule: mask_rcnn_repvgg_a0_fpn_1x_coco.py with B1g2.
_base_ = ['./mask_rcnn_repvgg_a0_fpn_1x_coco.py']
arch = 'B1g2'
stage_channels = (128, 256, 512, 2048)  # repvgg_mm.models.arch_channels('B1g2')[1]
pretrained = 'checkpoints/repvgg_b1g2_imagenet.pth'
model = dict(
    backbone=dict(
        arch=arch,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=list(stage_channels)))
