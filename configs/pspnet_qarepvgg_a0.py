# PSPNet + QARepVGG-A0 (output stride 8) on Cityscapes: pspnet_repvgg_a0.py with the
# quantization-friendly block, initialised from a QARepVGG-A0 ImageNet checkpoint.
_base_ = ['./pspnet_repvgg_a0.py']
pretrained = 'checkpoints/qarepvgg_a0_imagenet.pth'
model = dict(
    backbone=dict(
        block_type='qarepvgg',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
