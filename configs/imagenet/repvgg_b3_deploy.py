# Tests a fused (deploy) RepVGG-B3 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b3.py'

model = dict(backbone=dict(deploy=True))
