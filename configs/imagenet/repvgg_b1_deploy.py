# Tests a fused (deploy) RepVGG-B1 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b1.py'

model = dict(backbone=dict(deploy=True))
