# Tests a fused (deploy) QARepVGG-A0 checkpoint: the same single-conv network as RepVGG-A0's.
_base_ = './qarepvgg_a0.py'

model = dict(backbone=dict(deploy=True))
