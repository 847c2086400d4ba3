"""The ImageNet schedule's weight-decay rules, read back from the built optimizer."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from repvgg_mm.registry import MODELS
from repvgg_mm.testing import TINY_ARCH

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'

BASE_WD = 1e-4


def decay_by_name(config):
    cfg = Config.fromfile(CONFIGS / config)
    init_default_scope('repvgg_mm')
    model_cfg = cfg.model
    model_cfg.backbone.arch = TINY_ARCH
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    assert len(group_of) == len(list(model.parameters()))
    return {name: group_of[id(p)]['weight_decay'] for name, p in model.named_parameters()}


def expected_paper_decay(name):
    if name.endswith('.bias') or 'branch_3x3.bn' in name or 'branch_1x1.bn' in name:
        return 0.0
    return BASE_WD  # conv kernels, fc weight and the identity branch's BN weight


def test_paper_weight_decay_rules():
    decay = decay_by_name('imagenet/repvgg_a0.py')
    for name, wd in decay.items():
        assert wd == pytest.approx(expected_paper_decay(name)), name
    assert decay['backbone.stage1.1.branch_identity.weight'] == BASE_WD
    assert decay['backbone.stage1.1.branch_identity.bias'] == 0.0
    assert decay['backbone.stem.branch_3x3.bn.weight'] == 0.0
    assert decay['backbone.stem.branch_1x1.bn.weight'] == 0.0
    assert decay['backbone.stem.branch_3x3.conv.weight'] == BASE_WD
    assert decay['head.fc.weight'] == BASE_WD and decay['head.fc.bias'] == 0.0


def test_custom_l2_config_moves_decay_into_the_loss():
    cfg = Config.fromfile(CONFIGS / 'imagenet/repvgg_a0_custom_l2.py')
    assert cfg.model.custom_l2_decay == BASE_WD
    decay = decay_by_name('imagenet/repvgg_a0_custom_l2.py')
    for name, wd in decay.items():
        in_branch = 'branch_3x3' in name or 'branch_1x1' in name
        assert wd == pytest.approx(0.0 if in_branch else expected_paper_decay(name)), name
    assert decay['backbone.stage1.1.branch_identity.weight'] == BASE_WD
