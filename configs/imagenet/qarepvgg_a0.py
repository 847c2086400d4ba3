# QARepVGG-A0 on ImageNet-1k: the recipe of repvgg_a0.py with the quantization-friendly block
# (repvgg_mm.models.QARepVGGBlock: no BN on the 1x1 and identity branches, one BN after the sum).
# It fuses into the same deploy network as RepVGG-A0; the post-sum BN keeps its weight decay.
_base_ = './repvgg_a0.py'

model = dict(backbone=dict(block_type='qarepvgg'))
