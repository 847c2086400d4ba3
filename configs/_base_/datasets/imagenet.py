# ImageNet in the class-folder layout: data/imagenet/{train,val}/<wnid>/*.JPEG
# The paper's simple augmentation with torchvision; normalisation is in the data preprocessor.
dataset_type = 'ImageFolderDataset'
data_root = 'data/imagenet'

train_transforms = [
    dict(type='RandomResizedCrop', size=224),
    dict(type='RandomHorizontalFlip'),
]
test_transforms = [
    dict(type='Resize', size=256),
    dict(type='CenterCrop', size=224),
]

train_dataloader = dict(
    batch_size=32,  # per GPU; 8 GPUs x 32 = 256
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train'),
        transforms=train_transforms))
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val'),
        transforms=test_transforms,
        test_mode=True))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
