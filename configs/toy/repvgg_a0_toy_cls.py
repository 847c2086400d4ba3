# RepVGG-A0 on the toy classification data (tools/dataset_converters/make_toy_classification.py data/toy_cls):
# 5 classes of synthetic 64x64 shapes/stripes, trained at 48x48 in a few minutes on 2 CPU cores.
_base_ = [
    '../_base_/models/repvgg_cls.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/imagenet_120e.py', '../_base_/default_runtime_cls.py'
]

model = dict(backbone=dict(arch='A0'), head=dict(num_classes=5))

data_root = 'data/toy_cls'
train_transforms = [
    dict(type='RandomResizedCrop', size=48, scale=(0.35, 1.0)),
    dict(type='RandomHorizontalFlip'),
]
test_transforms = [
    dict(type='Resize', size=54),
    dict(type='CenterCrop', size=48),
]
train_dataloader = dict(
    batch_size=32, num_workers=1, pin_memory=False,
    dataset=dict(data_root=data_root, transforms=train_transforms))
val_dataloader = dict(
    batch_size=50, num_workers=1, pin_memory=False,
    dataset=dict(data_root=data_root, transforms=test_transforms))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 4
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = dict(T_max=max_epochs, end=max_epochs)
train_cfg = dict(max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(interval=8),
    checkpoint=dict(max_keep_ckpts=1))
randomness = dict(seed=0)
