# Tests a fused (deploy) RepVGG-A1 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_a1.py'

model = dict(backbone=dict(deploy=True))
