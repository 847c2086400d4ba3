# PSPNet + RepVGG-B2 (output stride 8) on Cityscapes, 512x1024 crops, 80k iterations, 4 GPUs x 2
# images (mmseg's pspnet_r50-d8_4xb2-80k_cityscapes-512x1024 recipe). The paper reports 80.57 mIoU.
#   python tools/train.py configs/pspnet_repvgg_b2.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH_TO_IMAGENET_CHECKPOINT
_base_ = [
    './_base_/models/pspnet_repvgg.py', './_base_/datasets/cityscapes.py',
    './_base_/seg_runtime.py', './_base_/schedules/schedule_80k.py'
]
arch = 'B2'
stage_channels = (160, 320, 640, 2560)  # repvgg_mm.models.arch_channels('B2')[1]
# ImageNet-pretrained classifier checkpoint (keys backbone.*, e.g. from configs/imagenet/).
pretrained = 'checkpoints/repvgg_b2_imagenet.pth'
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=arch,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=stage_channels[3]),
    auxiliary_head=dict(in_channels=stage_channels[2]))
