"""tools/test.py end to end on the checkpoint of a tiny training run (subprocesses): both forms
score the same, a fused checkpoint fits the deploy config, a misfit checkpoint is a clear error."""
import json
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from repvgg_mm.checkpoint import read_weights
from repvgg_mm.engine import RepVGGRunner
from repvgg_mm.models.utils import fuse_repvgg_blocks
from repvgg_mm.registry import MODELS
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.errors import CheckpointError
from tests.helpers.tools import A0, A0_DEPLOY, run_tool_process


@pytest.mark.slow
def test_trained_and_fused_models_score_the_same(trained, tmp_path):
    work_dir, options = trained
    scores = {}
    for name, extra in (('train', []), ('fuse', ['--fuse'])):
        out = tmp_path / f'{name}.json'
        result = run_tool_process('test.py', A0, work_dir / 'epoch_1.pth', '--work-dir', tmp_path,
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
