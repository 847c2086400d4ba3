"""The shipped toy DeepLabV3+, UPerNet, PSPNet (linear-scaling and fused+BN blocks) and Mask R-CNN
configs convert into deploy files that mmseg's and mmdet's own tools/test.py load strictly and score
exactly like the training-time files.

Random "trained" weights (random BN statistics) on a four-image copy of the embedded toy dataset:
the predictions are not good, but every one of them must come out the same fused.
"""
import json
import os
import sys

import mmdet
import mmengine
import mmseg
import numpy as np
import pytest
import torch
from PIL import Image

from repvgg_mm.conversion.whole_model import convert_whole_model, write_conversion
from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.utils.config import load_config, replace_sync_bn
from tests.helpers import run_concurrently, runner_checkpoint, trained_model
from tests.helpers.stock import LOAD_WARNINGS, STOCK_DRIVER, read_log, read_metrics, stock_runs

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

SEG = ('deeplabv3plus', 'upernet', 'pspnet_linear', 'pspnet_fused_bn')
CONFIGS = {name: f'configs/toy/{name}_repvgg_a0_toy.py'
           for name in ('deeplabv3plus', 'upernet', 'mask_rcnn')}
CONFIGS.update({f'pspnet_{form}': f'configs/toy/pspnet_repvgg_a0_{form}_toy.py'
                for form in ('linear', 'fused_bn')})


def data_options(name: str, data_root: str) -> dict:
    """--cfg-options that point a toy config's test split at ``data_root``."""
    options = {'test_dataloader.dataset.data_root': data_root}
    if name not in SEG:
        options['test_evaluator.ann_file'] = os.path.join(
            data_root, 'annotations', 'instances_val.json')
    return options


def prepare(repo_root, tmp_path, name, data_root):
    """Write the config + a Runner checkpoint of random weights, convert them; the stock runs."""
    cfg = load_config(str(repo_root / CONFIGS[name]), data_options(name, data_root))
    cfg.model, _ = replace_sync_bn(cfg.model)
    cfg_path, ckpt_path = str(tmp_path / f'{name}.py'), str(tmp_path / f'{name}.pth')
    cfg.dump(cfg_path)
    torch.save(runner_checkpoint(trained_model(cfg.to_dict()).state_dict()), ckpt_path)
    result = convert_whole_model(cfg_path, ckpt_path)
    assert result.record['blocks_fused'] == 22 and result.record['max_rel_diff'] < 1e-4  # A0
    deploy_cfg, deploy_ckpt = write_conversion(result, cfg_path, ckpt_path,
                                               str(tmp_path / f'{name}_out'))
    package = mmdet if name == 'mask_rcnn' else mmseg
    out = 'out.pkl' if name == 'mask_rcnn' else 'png'
    return stock_runs(package, tmp_path, {
        f'{name}_{kind}': (c, k, ['--out', str(tmp_path / f'{name}_{kind}_{out}')])
        for kind, c, k in (('deploy', deploy_cfg, deploy_ckpt), ('train', cfg_path, ckpt_path))})


@pytest.fixture(scope='module')
def stock(repo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('toy_stock')
    data_root = str(tmp / 'toy_dense')
    make_toy_dense(data_root, num_train=1, num_val=4, size=64, progress=False)
    argvs = [argv for name in CONFIGS for argv in prepare(repo_root, tmp, name, data_root)]
    [(code, _, err)] = run_concurrently([[sys.executable, '-c', STOCK_DRIVER, json.dumps(argvs)]],
                                        cwd=tmp)
    assert code == 0, f'a stock test.py failed: {err[-3000:]}'
    for name in CONFIGS:  # strict loads: every key matched
        for kind in ('train', 'deploy'):
            assert not any(w in read_log(tmp / f'wd_{name}_{kind}') for w in LOAD_WARNINGS)
    return tmp


@pytest.mark.parametrize('name', SEG)
def test_segmentor_scores_the_same_in_mmseg_test_script(stock, name):
    train, deploy = (read_metrics(stock / f'wd_{name}_{k}') for k in ('train', 'deploy'))
    assert {'mIoU', 'aAcc'} <= set(train) and deploy == train
    folders = [stock / f'{name}_{k}_png' for k in ('train', 'deploy')]
    preds = sorted(os.listdir(folders[0]))
    assert len(preds) == 4 and preds == sorted(os.listdir(folders[1]))
    for file in preds:  # identical label maps, pixel for pixel
        a, b = (np.asarray(Image.open(folder / file)) for folder in folders)
        assert a.shape == (64, 64) and np.array_equal(a, b)


def test_mask_rcnn_scores_the_same_in_mmdet_test_script(stock):
    train, deploy = (read_metrics(stock / f'wd_mask_rcnn_{k}') for k in ('train', 'deploy'))
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(train) and deploy == train
    train_preds, deploy_preds = (mmengine.load(str(stock / f'mask_rcnn_{k}_out.pkl'))
                                 for k in ('train', 'deploy'))
    assert len(train_preds) == len(deploy_preds) == 4
    for a, b in zip(train_preds, deploy_preds):
        a, b = a['pred_instances'], b['pred_instances']
        assert len(a['scores']) > 0 and torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['bboxes'], b['bboxes'], atol=1e-3)
        assert torch.allclose(a['scores'], b['scores'], atol=1e-5)
        assert a['masks'] == b['masks']  # COCO RLEs of the binary masks
