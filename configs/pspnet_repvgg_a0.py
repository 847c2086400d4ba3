# PSPNet + RepVGG-A0 (output stride 8) on Cityscapes: the recipe of pspnet_repvgg_b2.py with the
# smallest arch.
_base_ = ['./pspnet_repvgg_b2.py']
arch = 'A0'
stage_channels = (48, 96, 192, 1280)  # repvgg_mm.models.arch_channels('A0')[1]
pretrained = 'checkpoints/repvgg_a0_imagenet.pth'
model = dict(
    backbone=dict(
        arch=arch,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=stage_channels[3]),
    auxiliary_head=dict(in_channels=stage_channels[2]))
