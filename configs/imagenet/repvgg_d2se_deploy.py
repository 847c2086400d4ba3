# Tests a fused (deploy) RepVGG-D2se checkpoint: same model with single-conv blocks.
_base_ = './repvgg_d2se.py'

model = dict(backbone=dict(deploy=True))
