# pspnet_repvgg_a0_toy.py in the insert-BN form (block_type='fused_bn': a 3x3 conv + BN per block,
# the plain network trained directly); it fuses into the same deploy model:
#   python tools/train.py configs/toy/pspnet_repvgg_a0_fused_bn_toy.py
_base_ = ['./pspnet_repvgg_a0_toy.py']
model = dict(backbone=dict(block_type='fused_bn'))
