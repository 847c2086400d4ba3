# UPerNet + RepVGG-B2 (output stride 32, all four stages) on ADE20K, 512x512 crops, 160k iterations,
# 4 GPUs x 4 images (mmseg's upernet_r50_4xb4-160k_ade20k-512x512 recipe).
#   python tools/train.py configs/upernet_repvgg_b2.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH_TO_IMAGENET_CHECKPOINT
_base_ = [
    './_base_/models/upernet_repvgg.py', './_base_/datasets/ade20k.py',
    './_base_/seg_runtime.py', './_base_/schedules/schedule_160k.py'
]
arch = 'B2'
stage_channels = (160, 320, 640, 2560)  # repvgg_mm.models.arch_channels('B2')[1]
pretrained = 'checkpoints/repvgg_b2_imagenet.pth'
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=arch,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=list(stage_channels), num_classes=150),
    auxiliary_head=dict(in_channels=stage_channels[2], num_classes=150))
