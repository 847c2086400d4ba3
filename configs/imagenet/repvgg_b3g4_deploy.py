# Tests a fused (deploy) RepVGG-B3g4 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b3g4.py'

model = dict(backbone=dict(deploy=True))
