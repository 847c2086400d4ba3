# Tests a fused (deploy) RepVGG-B2 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b2.py'

model = dict(backbone=dict(deploy=True))
