"""Short real runs of the toy configs: train a few iterations with our train entry point, then test
the checkpoints with mmseg's and mmdet's own tools/test.py (subprocesses, run side by side)."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from repvgg_mm.datasets.toy_dense import make_toy_dense

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIG = osp.join(ROOT, 'configs', 'toy', 'pspnet_repvgg_a0_toy.py')
DET_CONFIG = osp.join(ROOT, 'configs', 'toy', 'retinanet_repvgg_a0_toy.py')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_dense') / 'data'
    make_toy_dense(root, num_train=8, num_val=4, size=64, progress=False)
    return str(root)


def _data_options(root, evaluator_ann_file=False):
    options = {f'{p}_dataloader.dataset.data_root': root for p in ('train', 'val', 'test')}
    if evaluator_ann_file:
        ann_file = osp.join(root, 'annotations', 'instances_val.json')
        options.update({'val_evaluator.ann_file': ann_file, 'test_evaluator.ann_file': ann_file})
    return options


def _train(config, work_dir, options):
    from repvgg_mm.engine import train
    train(config, work_dir=work_dir, cfg_options=dict(options, **{
        'train_dataloader.batch_size': 2, 'default_hooks.logger.interval': 1}))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    assert osp.isfile(checkpoint)
    return checkpoint


def _stock_test(codebase, config, checkpoint, work_dir, options, extra=()):
    import importlib
    script = osp.join(osp.dirname(importlib.import_module(codebase).__file__), '.mim', 'tools',
                      'test.py')
    cmd = [sys.executable, script, config, checkpoint, '--work-dir', work_dir, '--cfg-options']
    cmd += [f'{k}={v}' for k, v in options.items() if k.startswith('test_')] + list(extra)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)


def _metrics(work_dir):
    files = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def test_toy_configs_train_then_pass_stock_test_scripts(toy_root, tmp_path):
    seg_options = _data_options(toy_root)
    det_options = _data_options(toy_root, evaluator_ann_file=True)
    seg_ckpt = _train(SEG_CONFIG, str(tmp_path / 'seg'), dict(seg_options, **{
        'train_cfg.max_iters': 3}))
    det_ckpt = _train(DET_CONFIG, str(tmp_path / 'det'), dict(det_options, **{
        'train_cfg.max_epochs': 1}))
    assert osp.basename(seg_ckpt) == 'iter_3.pth' and osp.basename(det_ckpt) == 'epoch_1.pth'

    runs = {'seg': _stock_test('mmseg', SEG_CONFIG, seg_ckpt, str(tmp_path / 'seg_test'),
                               seg_options),
            # score_thr=0: a detector trained for a few iterations still reports boxes to score
            'det': _stock_test('mmdet', DET_CONFIG, det_ckpt, str(tmp_path / 'det_test'),
                               det_options, ['model.test_cfg.score_thr=0.0'])}
    logs = {name: run.communicate(timeout=600)[0] for name, run in runs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, logs[name][-3000:]
    seg = _metrics(str(tmp_path / 'seg_test'))
    det = _metrics(str(tmp_path / 'det_test'))
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(seg) and 0 <= seg['mIoU'] <= 100
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'} <= set(det)
    assert -1 <= det['coco/bbox_mAP'] <= 1
    # the stock scripts loaded our weights without complaint
    for name in logs:
        assert 'missing keys' not in logs[name] and 'unexpected key' not in logs[name]


def test_train_tool_missing_cityscapes_is_one_line(tmp_path):
    """The user's command in a folder without data/cityscapes: one error line, nothing written."""
    done = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'),
                           osp.join(ROOT, 'configs', 'pspnet_repvgg_b2.py')],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode != 0
    assert 'Traceback' not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, done.stderr
    assert 'data/cityscapes/' in errors[0] and '--cfg-options' in errors[0]
    assert not os.listdir(tmp_path)  # nothing was built or written
