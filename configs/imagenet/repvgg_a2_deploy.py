# Tests a fused (deploy) RepVGG-A2 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_a2.py'

model = dict(backbone=dict(deploy=True))
