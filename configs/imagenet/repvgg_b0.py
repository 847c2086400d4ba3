# RepVGG-B0 on ImageNet-1k with the paper's recipe (120 epochs, 8 GPUs x 32).
_base_ = [
    '../_base_/models/repvgg_cls.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/imagenet_120e.py', '../_base_/default_runtime_cls.py'
]

model = dict(backbone=dict(arch='B0'))
