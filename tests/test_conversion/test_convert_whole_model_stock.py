"""The converted checkpoint + deploy config score exactly like the training checkpoint + training
config in mmseg's and mmdet's own test scripts (site-packages/*/.mim/tools/test.py), load strictly
there, and the fuse hook lets a stock test run evaluate the training checkpoint in fused form."""
import json
import os
import sys

import mmdet
import mmengine
import mmseg
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from torch import nn

from tests.helpers import (
    convert_and_check,
    pspnet_cfg,
    retinanet_cfg,
    run_concurrently,
    runner_checkpoint,
)
from tests.helpers.stock import LOAD_WARNINGS, STOCK_DRIVER, read_log, read_metrics, stock_runs

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

CLASSES = ('background', 'circle', 'square', 'triangle')


def write_images(folder, count=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            os.path.join(folder, f'{i}.png'))


def seg_dataset(root, count=4, size=64):
    """mmseg img_dir/ann_dir layout: noise images, masks of four class blocks."""
    write_images(os.path.join(root, 'img_dir'), count, size)
    os.makedirs(os.path.join(root, 'ann_dir'))
    for i in range(count):
        mask = np.zeros((size, size), np.uint8)
        mask[:, size // 2:] = 1 + i % 3
        mask[size // 2:, :size // 4] = (2 + i) % 4
        Image.fromarray(mask).save(os.path.join(root, 'ann_dir', f'{i}.png'))


def coco_dataset(root, count=4, size=64):
    """A COCO json with a few boxes per image."""
    write_images(os.path.join(root, 'images'), count, size, seed=1)
    images = [dict(id=i, file_name=f'{i}.png', width=size, height=size) for i in range(count)]
    boxes = [(4, 6, 30, 24), (34, 30, 24, 28), (10, 36, 20, 20)]
    annotations = [dict(id=10 * i + j, image_id=i, category_id=j + 1, bbox=list(box),
                        area=box[2] * box[3], iscrowd=0)
                   for i in range(count) for j, box in enumerate(boxes)]
    categories = [dict(id=j + 1, name=name) for j, name in enumerate('abc')]
    with open(os.path.join(root, 'ann.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def runtime_cfg(dataset: dict, evaluator: dict, hooks=()) -> dict:
    return dict(
        test_dataloader=dict(batch_size=2, num_workers=0, persistent_workers=False,
                             sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset),
        test_evaluator=evaluator, test_cfg=dict(type='TestLoop'),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks), log_level='INFO')


def prepare_segmentor(tmp_path):
    """Training config (SyncBN, dilated RepVGG) + DDP Runner checkpoint, converted; stock runs."""
    root = tmp_path / 'seg'
    seg_dataset(str(root))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')]
    dataset = dict(type='BaseSegDataset', data_root=str(root), metainfo=dict(classes=CLASSES),
                   data_prefix=dict(img_path='img_dir', seg_map_path='ann_dir'),
                   img_suffix='.png', seg_map_suffix='.png', pipeline=pipeline)
    cfg = dict(pspnet_cfg(norm='SyncBN'),
               **runtime_cfg(dataset, dict(type='IoUMetric', iou_metrics=['mIoU'])))
    train, deploy, result, deploy_cfg = convert_and_check(
        tmp_path, 'psp', cfg, checkpoint=lambda s: runner_checkpoint(s, ddp=True))
    written = Config.fromfile(deploy_cfg)
    assert (written.model.backbone.deploy is True
            and written.model.backbone.dilations == (1, 1, 2, 4))
    assert written.model.decode_head.norm_cfg.type == 'SyncBN'  # the deploy config keeps SyncBN
    assert isinstance(deploy.decode_head.bottleneck.bn, nn.SyncBatchNorm)
    assert result.meta['epoch'] == 3 and not any(k.startswith('module.') for k in result.state_dict)
    cfg_path, ckpt_path = str(tmp_path / 'psp.py'), str(tmp_path / 'psp.pth')
    deploy_ckpt = str(tmp_path / 'psp_out' / 'psp_deploy.pth')
    hook_cfg = str(tmp_path / 'psp_hook.py')
    with open(hook_cfg, 'w') as f:  # the training config plus the fuse hook
        f.write(f"_base_ = ['{cfg_path}']\ncustom_imports = dict(imports=['repvgg_mm.models', "
                "'repvgg_mm.engine'], allow_failed_imports=False)\n"
                "custom_hooks = [dict(type='repvgg_mm.RepVGGFuseHook')]\n")
    return stock_runs(mmseg, tmp_path, {
        'deploy': (deploy_cfg, deploy_ckpt, ['--out', str(tmp_path / 'pred_deploy')]),
        'train': (cfg_path, ckpt_path, ['--out', str(tmp_path / 'pred_train')]),
        'hook': (hook_cfg, ckpt_path, [])})


def prepare_detector(tmp_path):
    """RetinaNet trained with mmengine's EMAHook, its EMA weights converted; stock runs."""
    root = tmp_path / 'coco'
    coco_dataset(str(root))
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(64, 64), keep_ratio=True),
                dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    dataset = dict(type='CocoDataset', data_root=str(root), ann_file='ann.json',
                   data_prefix=dict(img='images/'), metainfo=dict(classes=tuple('abc')),
                   test_mode=True, pipeline=pipeline)
    evaluator = dict(type='CocoMetric', ann_file=str(root / 'ann.json'), metric='bbox')
    cfg = dict(retinanet_cfg(), **runtime_cfg(dataset, evaluator))

    def ema_file(state):  # EMAHook swaps the average into 'state_dict', raw weights beside it
        raw = {'module.' + k: v * 0.9 if v.is_floating_point() else v for k, v in state.items()}
        return runner_checkpoint(state, ema_state_dict=dict(steps=torch.tensor(7), **raw))
    _, _, result, deploy_cfg = convert_and_check(tmp_path, 'retina', cfg, checkpoint=ema_file,
                                                 weights='ema', module_prefix=True)
    assert 'EMA average' in result.record['source_weights']
    assert all(k.startswith('module.') for k in result.state_dict)  # mmengine strips it on load
    cfg_path, ckpt_path = str(tmp_path / 'retina.py'), str(tmp_path / 'retina.pth')
    deploy_ckpt = str(tmp_path / 'retina_out' / 'retina_deploy.pth')
    return stock_runs(mmdet, tmp_path, {
        'deploy': (deploy_cfg, deploy_ckpt, ['--out', str(tmp_path / 'deploy.pkl')]),
        'train': (cfg_path, ckpt_path, ['--out', str(tmp_path / 'train.pkl')])})


@pytest.fixture(scope='module')
def stock(tmp_path_factory):
    """Convert a segmentor and a detector, then run the stock test scripts on both."""
    seg, det = tmp_path_factory.mktemp('seg'), tmp_path_factory.mktemp('det')
    seg_runs, det_runs = prepare_segmentor(seg), prepare_detector(det)
    # The deploy runs come first: they start from a fresh interpreter, so the deploy configs'
    # custom_imports are what makes our modules available.
    argvs = [seg_runs[0], det_runs[0], *seg_runs[1:], *det_runs[1:]]
    [(code, _, err)] = run_concurrently([[sys.executable, '-c', STOCK_DRIVER, json.dumps(argvs)]],
                                        cwd=seg)
    assert code == 0, f'a stock test.py failed: {err[-3000:]}'
    return dict(seg=seg, det=det)


def test_pspnet_syncbn_scores_the_same_in_mmseg_test_script(stock):
    tmp = stock['seg']
    train, deploy, hook = (read_metrics(tmp / f'wd_{n}') for n in ('train', 'deploy', 'hook'))
    assert set(train) >= {'mIoU', 'aAcc', 'mAcc'} and 0 < train['aAcc'] < 100
    assert deploy == train and hook == train
    assert 'fused 8 RepVGG blocks' in read_log(tmp / 'wd_hook')
    for name in ('train', 'deploy'):  # strict: every key matched
        assert not any(w in read_log(tmp / f'wd_{name}') for w in LOAD_WARNINGS), name
    preds = sorted(os.listdir(tmp / 'pred_train'))
    assert len(preds) == 4 and preds == sorted(os.listdir(tmp / 'pred_deploy'))
    for name in preds:  # identical label maps, pixel for pixel
        a = np.asarray(Image.open(tmp / 'pred_train' / name))
        assert np.array_equal(a, np.asarray(Image.open(tmp / 'pred_deploy' / name)))


def test_retinanet_scores_the_same_in_mmdet_test_script(stock):
    tmp = stock['det']
    train, deploy = read_metrics(tmp / 'wd_train'), read_metrics(tmp / 'wd_deploy')
    assert 'coco/bbox_mAP' in train and deploy == train
    for name in ('train', 'deploy'):
        assert not any(w in read_log(tmp / f'wd_{name}') for w in LOAD_WARNINGS), name
    train_preds, deploy_preds = (mmengine.load(str(tmp / f'{n}.pkl')) for n in ('train', 'deploy'))
    assert len(train_preds) == len(deploy_preds) == 4
    for a, b in zip(train_preds, deploy_preds):  # the same detections, to float32 precision
        a, b = a['pred_instances'], b['pred_instances']
        assert len(a['scores']) > 0 and torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['bboxes'], b['bboxes'], atol=1e-3)
        assert torch.allclose(a['scores'], b['scores'], atol=1e-5)
