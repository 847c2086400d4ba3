"""Class-folder dataset, torchvision transforms and the toy data generator."""
import filecmp
import os

import pytest
import torch
from mmengine.dataset import default_collate

from repvgg_mm.datasets import (
    TOY_CLASSES,
    DatasetNotFoundError,
    ImageFolderDataset,
    build_transforms,
    make_toy_classification,
)


def test_dataset_items(toy_root):
    dataset = ImageFolderDataset(
        data_root=str(toy_root), data_prefix=dict(img_path='train'),
        transforms=[dict(type='RandomResizedCrop', size=24), dict(type='RandomHorizontalFlip')])
    assert len(dataset) == 5 * 4
    assert dataset.metainfo['classes'] == tuple(sorted(TOY_CLASSES))
    labels = [dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))]
    assert labels == sorted(labels) and set(labels) == set(range(5))

    item = dataset[5]
    assert item['inputs'].dtype == torch.uint8 and item['inputs'].shape == (3, 24, 24)
    assert item['data_samples'].gt_label == 1 == dataset.get_cat_ids(5)[0]
    assert item['data_samples'].img_path.endswith('.png')

    batch = default_collate([dataset[i] for i in range(3)])
    assert batch['inputs'].shape == (3, 3, 24, 24) and len(batch['data_samples']) == 3


def test_dataset_with_given_classes(toy_root):
    dataset = ImageFolderDataset(data_root=str(toy_root), data_prefix=dict(img_path='val'),
                                 classes=['stripes', 'circle'])
    assert len(dataset) == 4 and dataset.metainfo['classes'] == ('stripes', 'circle')
    assert dataset[0]['data_samples'].img_path.split(os.sep)[-2] == 'stripes'
    with pytest.raises(DatasetNotFoundError, match="class folder 'hexagon' missing"):
        ImageFolderDataset(data_root=str(toy_root), data_prefix=dict(img_path='val'),
                           classes=['hexagon'])


def test_missing_data_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        ImageFolderDataset(data_root=str(tmp_path / 'imagenet'), data_prefix=dict(img_path='train'))
    message = str(info.value)
    assert '\n' not in message and str(tmp_path / 'imagenet' / 'train') in message
    assert '--cfg-options train_dataloader.dataset.data_root=' in message
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetNotFoundError, match='no class folders'):
        ImageFolderDataset(data_root=str(tmp_path / 'empty'))


def test_transforms_from_config():
    transform = build_transforms([dict(type='Resize', size=8, interpolation='nearest'),
                                  dict(type='AutoAugment', policy='imagenet')])
    assert transform.transforms[0].interpolation.value == 'nearest'
    with pytest.raises(ValueError, match='unknown torchvision transform'):
        build_transforms([dict(type='NoSuchTransform')])
    with pytest.raises(ValueError, match='interpolation'):
        build_transforms([dict(type='Resize', size=8, interpolation='cubicle')])


def test_transforms_must_not_normalise(toy_root):
    dataset = ImageFolderDataset(data_root=str(toy_root), data_prefix=dict(img_path='val'),
                                 transforms=[dict(type='ToTensor')])
    with pytest.raises(TypeError, match='uint8'):
        dataset[0]


def test_toy_generator_is_deterministic(tmp_path):
    first = make_toy_classification(str(tmp_path / 'a'), num_train=2, num_val=1, size=16)
    make_toy_classification(str(tmp_path / 'b'), num_train=2, num_val=1, size=16)
    assert first['created']
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path / 'a')
                   for d, _, fs in os.walk(tmp_path / 'a') for f in fs)
    assert len(files) == 5 * 3 + 1  # images + manifest
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'b', files, shallow=False)
    assert not mismatch and not errors
    # the same settings again: kept; other settings into a used folder: refused
    assert not make_toy_classification(str(tmp_path / 'a'), 2, 1, 16)['created']
    with pytest.raises(FileExistsError):
        make_toy_classification(str(tmp_path / 'a'), 3, 1, 16)
    assert not any(name.startswith('.') for name in os.listdir(tmp_path))  # no temp folders left
