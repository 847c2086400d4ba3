# Tests a fused (deploy) RepVGG-B2g4 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b2g4.py'

model = dict(backbone=dict(deploy=True))
