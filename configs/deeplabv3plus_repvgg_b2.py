# DeepLabV3+ + RepVGG-B2 (output stride 8) on Cityscapes, 512x1024 crops, 80k iterations, 4 GPUs x 2
# images (mmseg's deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024 recipe); the decoder's
# low-level features come from stage 1.
#   python tools/train.py configs/deeplabv3plus_repvgg_b2.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH_TO_IMAGENET_CHECKPOINT
_base_ = [
    './_base_/models/deeplabv3plus_repvgg.py', './_base_/datasets/cityscapes.py',
    './_base_/seg_runtime.py', './_base_/schedules/schedule_80k.py'
]
arch = 'B2'
stage_channels = (160, 320, 640, 2560)  # repvgg_mm.models.arch_channels('B2')[1]
pretrained = 'checkpoints/repvgg_b2_imagenet.pth'
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=arch,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=stage_channels[3], c1_in_channels=stage_channels[0]),
    auxiliary_head=dict(in_channels=stage_channels[2]))
