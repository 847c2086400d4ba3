# Tests a fused (deploy) RepVGG-A0 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_a0.py'

model = dict(backbone=dict(deploy=True))
