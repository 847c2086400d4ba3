# Tests a fused (deploy) checkpoint of configs/toy/repvgg_a0_toy_cls.py.
_base_ = './repvgg_a0_toy_cls.py'

model = dict(backbone=dict(deploy=True))
