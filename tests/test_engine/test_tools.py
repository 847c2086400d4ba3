"""tools/train.py and tools/test.py end to end on a tiny ImageNet-layout folder (subprocesses)."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.registry import init_default_scope

from repvgg_mm.checkpoint import read_weights, safe_load
from repvgg_mm.engine import RepVGGRunner
from repvgg_mm.models.utils import fuse_repvgg_blocks
from repvgg_mm.registry import MODELS
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / 'configs'

A0 = str(CONFIGS / 'imagenet' / 'repvgg_a0.py')
A0_DEPLOY = str(CONFIGS / 'imagenet' / 'repvgg_a0_deploy.py')


def run_tool(tool, *args):
    # one thread: tiny runs gain nothing from more, and a shared CPU stalls oversubscribed OpenMP
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / tool), *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)


def small_data_options(root):
    """--cfg-options that point the A0 ImageNet config at ``root`` with small, fast inputs."""
    options = [f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader',
                                                                   'val_dataloader',
                                                                   'test_dataloader')]
    options += ['train_dataloader.dataset.transforms.0.size=32',
                'val_dataloader.dataset.transforms.0.size=36',
                'val_dataloader.dataset.transforms.1.size=32',
                'test_dataloader.dataset.transforms.0.size=36',
                'test_dataloader.dataset.transforms.1.size=32',
                'train_dataloader.batch_size=8', 'val_dataloader.batch_size=10',
                'test_dataloader.batch_size=10', 'train_dataloader.num_workers=0',
                'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
                'optim_wrapper.optimizer.lr=0.01',  # batch 8: keep the short runs stable
                'randomness.seed=0', 'default_hooks.logger.interval=1']
    return options


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope='module')
def trained(toy_root, tmp_path_factory):
    """One epoch (3 iterations) of configs/imagenet/repvgg_a0.py on the tiny folder."""
    work_dir = tmp_path_factory.mktemp('train_a0')
    options = small_data_options(toy_root) + ['train_cfg.max_epochs=1']
    result = run_tool('train.py', A0, '--work-dir', work_dir, '--cfg-options', *options)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir, options


@pytest.mark.slow
def test_missing_imagenet_is_a_one_line_error(tmp_path):
    missing = tmp_path / 'no_imagenet'
    result = run_tool('train.py', A0, '--work-dir', tmp_path,
                      '--cfg-options', f'train_dataloader.dataset.data_root={missing}',
                      f'val_dataloader.dataset.data_root={missing}')
    assert_one_line_error(result, str(missing), '--cfg-options',
                          'train_dataloader.dataset.data_root=')


@pytest.mark.parametrize('tool, args, message', [
    ('train.py', ['missing.py'], 'config file not found: missing.py'),
    ('test.py', [A0, 'missing.pth'], 'checkpoint not found: missing.pth'),
    ('train.py', [A0, '--cfg-options', 'train_dataloader.dataset.transforms.9.size=1'],
     'cannot apply --cfg-options'),
])
def test_user_errors_are_one_line(tool, args, message, monkeypatch, capsys):
    """The CLI entry points, run in this process (no interpreter start-up)."""
    monkeypatch.setattr(sys, 'argv', [tool, *args])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO_ROOT / 'tools' / tool), run_name='__main__')
    assert info.value.code == 2
    stderr = capsys.readouterr().err.strip()
    assert len(stderr.splitlines()) == 1 and stderr.startswith('error: ') and message in stderr


@pytest.mark.slow
def test_train_writes_safe_loadable_checkpoints(trained):
    work_dir, _ = trained
    checkpoint = safe_load(work_dir / 'epoch_1.pth')  # weights_only loading, no extra globals
    assert checkpoint['meta']['epoch'] == 1 and checkpoint['meta']['iter'] == 3
    log_scalars = checkpoint['message_hub']['log_scalars']
    assert isinstance(log_scalars['train/loss'], HistoryBuffer)
    assert {'backbone.stem.branch_3x3.conv.weight', 'head.fc.weight'} <= set(
        checkpoint['state_dict'])
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')


@pytest.mark.slow
def test_resume_continues_training(trained):
    work_dir, options = trained
    result = run_tool('train.py', A0, '--work-dir', work_dir, '--resume', '--cfg-options',
                      *options[:-1], 'train_cfg.max_epochs=2')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 3' in result.stdout + result.stderr
    assert safe_load(work_dir / 'epoch_2.pth')['meta']['iter'] == 6


@pytest.mark.slow
def test_trained_and_fused_models_score_the_same(trained, tmp_path):
    work_dir, options = trained
    scores = {}
    for name, extra in (('train', []), ('fuse', ['--fuse'])):
        out = tmp_path / f'{name}.json'
        result = run_tool('test.py', A0, work_dir / 'epoch_1.pth', '--work-dir', tmp_path,
                          '--out', out, '--out-item', 'metrics', *extra, '--cfg-options', *options)
        assert result.returncode == 0, result.stderr[-3000:]
        scores[name] = json.loads(out.read_text())
    assert set(scores['train']) == {'accuracy/top1', 'accuracy/top5'}
    assert scores['fuse'] == scores['train']
    assert 'fused 22 RepVGG blocks' in result.stdout + result.stderr


@pytest.mark.slow
def test_fused_checkpoint_fits_the_deploy_config(trained, generator):
    work_dir, _ = trained
    init_default_scope('repvgg_mm')
    model = MODELS.build(Config.fromfile(A0).model).eval()
    model.load_state_dict(read_weights(work_dir / 'epoch_1.pth').state)
    deploy = MODELS.build(Config.fromfile(A0_DEPLOY).model).eval()
    deploy.load_state_dict(fuse_repvgg_blocks(model).state_dict())  # strict
    inputs = torch.randn(2, 3, 32, 32, generator=generator)
    with torch.no_grad():
        assert max_relative_error(model(inputs), deploy(inputs)) < 1e-5


@pytest.mark.slow
def test_checkpoint_must_fit_the_model(trained):
    """tools/test.py loads through RepVGGRunner: a mismatch is a clear error."""
    work_dir, _ = trained
    init_default_scope('repvgg_mm')
    deploy = MODELS.build(Config.fromfile(A0_DEPLOY).model)
    runner = SimpleNamespace(model=deploy, _resume=False, call_hook=lambda *args, **kwargs: None)
    with pytest.raises(CheckpointError, match='missing.*branch_fused.*unexpected'):
        RepVGGRunner.load_checkpoint(runner, str(work_dir / 'epoch_1.pth'))
