# Tests a fused (deploy) RepVGG-B1g4 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b1g4.py'

model = dict(backbone=dict(deploy=True))
