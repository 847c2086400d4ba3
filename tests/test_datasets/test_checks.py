"""Up-front input checks: a missing dataset or checkpoint is one clear line before anything runs."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from repvgg_mm.datasets.checks import (
    check_config_inputs,
    check_data_root,
    dataset_input_paths,
)
from repvgg_mm.utils.errors import CheckpointError, MissingInputError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _config(name, **options):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    cfg.merge_from_dict(options)
    return cfg


def _roots(cfg, root):
    return {f'{p}_dataloader.dataset.data_root': str(root) for p in ('train', 'val', 'test')}


def test_missing_cityscapes_is_one_line_naming_path_and_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/cityscapes here
    cfg = _config('pspnet_repvgg_b2.py')
    with pytest.raises(MissingInputError) as info:
        check_config_inputs(cfg)
    message = str(info.value)
    assert '\n' not in message
    assert 'data/cityscapes/' in message
    assert '--cfg-options train_dataloader.dataset.data_root=DIR' in message
    assert 'val_dataloader.dataset.data_root=DIR' in message


def test_missing_subfolder_is_named(tmp_path):
    (tmp_path / 'leftImg8bit' / 'train').mkdir(parents=True)
    cfg = _config('pspnet_repvgg_b2.py', **_roots(None, tmp_path))
    with pytest.raises(MissingInputError, match=r'gtFine/train \(from train_dataloader\.dataset'
                                                r'\.data_prefix\.seg_map_path\)'):
        check_data_root(cfg)


def test_present_data_then_missing_pretrained_checkpoint(tmp_path):
    for split in ('train', 'val'):
        (tmp_path / 'leftImg8bit' / split).mkdir(parents=True)
        (tmp_path / 'gtFine' / split).mkdir(parents=True)
    cfg = _config('pspnet_repvgg_b2.py', **_roots(None, tmp_path))
    check_data_root(cfg, ('train', 'val', 'test'))
    with pytest.raises(MissingInputError) as info:
        check_config_inputs(cfg)
    message = str(info.value)
    assert '\n' not in message and 'checkpoints/repvgg_b2_imagenet.pth' in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in message
    assert 'model.backbone.init_cfg=None' in message

    (tmp_path / 'b2.pth').write_bytes(b'')
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'b2.pth')
    with pytest.raises(CheckpointError, match=r'b2.pth is empty \(from model.backbone.init_cfg'):
        check_config_inputs(cfg)  # the reader's own check, before anything is built
    torch.save({'w': torch.zeros(1)}, tmp_path / 'b2.pth')
    check_config_inputs(cfg)  # everything in place now


def test_coco_annotation_file_and_evaluator(tmp_path):
    for folder in ('train2017', 'val2017', 'annotations'):
        (tmp_path / folder).mkdir()
    cfg = _config('detection/retinanet_repvgg_a0_fpn_1x_coco.py', **_roots(None, tmp_path))
    cfg.model.backbone.init_cfg = None
    with pytest.raises(MissingInputError, match='instances_train2017.json'):
        check_config_inputs(cfg)
    paths = {k: p for p, k in dataset_input_paths(cfg.val_dataloader.dataset)}
    assert paths['dataset.ann_file'] == osp.join(str(tmp_path),
                                                 'annotations/instances_val2017.json')


def test_wrapped_datasets_and_disabled_phases(tmp_path):
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
            type='ConcatDataset', datasets=[
                dict(data_root=str(tmp_path), data_prefix=dict(img_path='a')),
                dict(data_root=str(tmp_path), data_prefix=dict(img_path='b'))]))),
        val_dataloader=dict(dataset=dict(data_root=str(tmp_path / 'missing_val'))),
        val_cfg=None))
    (tmp_path / 'a').mkdir()
    with pytest.raises(MissingInputError, match=r'/b \(from train_dataloader\.dataset\.dataset'
                                                r'\.datasets\.1\.data_prefix\.img_path\)'):
        check_data_root(cfg)
    (tmp_path / 'b').mkdir()
    check_data_root(cfg)  # val_cfg=None: validation is off, its folder is not needed
    with pytest.raises(ValueError, match='unknown phases'):
        check_data_root(cfg, ('training', ))


def test_coco_evaluator_annotation_file_is_checked_and_named(tmp_path):
    for folder in ('train2017', 'val2017', 'annotations'):
        (tmp_path / folder).mkdir()
    for split in ('train', 'val'):
        (tmp_path / 'annotations' / f'instances_{split}2017.json').write_text('{}')
    cfg = _config('detection/faster_rcnn_repvgg_a0_fpn_1x_coco.py', **_roots(None, tmp_path))
    with pytest.raises(MissingInputError) as info:
        check_data_root(cfg)  # the evaluator still reads data/coco/annotations/...
    message = str(info.value)
    assert 'data/coco/annotations/instances_val2017.json (from val_evaluator.ann_file)' in message
    assert 'val_evaluator.ann_file=FILE' in message
    cfg.val_evaluator.ann_file = str(tmp_path / 'annotations' / 'instances_val2017.json')
    check_data_root(cfg)
