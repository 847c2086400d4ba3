# Tests a fused (deploy) RepVGG-B0 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b0.py'

model = dict(backbone=dict(deploy=True))
