# Tests a fused (deploy) RepVGG-B1g2 checkpoint: same model with single-conv blocks.
_base_ = './repvgg_b1g2.py'

model = dict(backbone=dict(deploy=True))
