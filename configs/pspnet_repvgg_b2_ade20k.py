# PSPNet + RepVGG-B2 (output stride 8) on ADE20K, 512x512 crops, 80k iterations, 4 GPUs x 4 images
# (mmseg's pspnet_r50-d8_4xb4-80k_ade20k-512x512 recipe).
_base_ = [
    './_base_/models/pspnet_repvgg.py', './_base_/datasets/ade20k.py',
    './_base_/seg_runtime.py', './_base_/schedules/schedule_80k.py'
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
    decode_head=dict(in_channels=stage_channels[3], num_classes=150),
    auxiliary_head=dict(in_channels=stage_channels[2], num_classes=150))
