# Tests a fused (deploy) RepVGG-B3g2 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b3g2.py'

model = dict(backbone=dict(deploy=True))
