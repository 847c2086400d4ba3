"""init_weights: one documented default for every conv and BN; a user's init_cfg applied last."""
import math

import pytest
import torch
from mmengine.model import Sequential
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.models import RepVGG, RepVGGBlock
from repvgg_mm.models.utils import randomize_bn_
from tests.helpers import TINY_ARCHS

ZERO_CONVS = dict(type='Constant', val=0., layer='Conv2d')


def convs(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def scramble_(model, generator):
    """Weights unlike any init (as after training): init_weights must set every one again."""
    randomize_bn_(model, generator)
    for _, conv in convs(model):
        conv.weight.copy_(torch.rand(conv.weight.shape, generator=generator) * 2 - 1)
        if conv.bias is not None:
            conv.bias.fill_(1.)
    return model


def assert_kaiming_normal(model, tolerance=0.15):
    """Every conv: std within ``tolerance`` of sqrt(2 / fan_out), mean near 0, bias 0; and the
    check can tell: PyTorch's default (std 1 / sqrt(3 fan_in)) is outside the tolerance for nearly
    every conv (not where fan_out happens to be about 6 fan_in, e.g. 192 -> 1280 channels)."""
    checked = convs(model)
    assert checked
    distinguishable = 0
    for name, conv in checked:
        weight = conv.weight.detach()
        assert torch.isfinite(weight).all(), name
        fan_in = weight[0].numel()
        fan_out = weight.shape[0] * weight[0, 0].numel()
        expected = math.sqrt(2 / fan_out)
        distinguishable += abs(math.sqrt(1 / (3 * fan_in)) / expected - 1) > tolerance
        assert abs(weight.std().item() / expected - 1) < tolerance, name
        assert abs(weight.mean().item()) < 5 * expected / math.sqrt(weight.numel()), name
        if conv.bias is not None:
            assert torch.equal(conv.bias, torch.zeros_like(conv.bias)), name
    assert distinguishable >= 0.9 * len(checked)


def assert_unit_norms(model):
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


@pytest.mark.parametrize('build', [
    lambda: RepVGG('A0', init_cfg=ZERO_CONVS),
    lambda: RepVGG(TINY_ARCHS['grouped-se'], add_ppf=True, init_cfg=ZERO_CONVS),
    lambda: RepVGG(TINY_ARCHS['se'], deploy=True, init_cfg=ZERO_CONVS),
])
def test_constant_init_cfg_reaches_every_conv(build):
    model = build()
    model.init_weights()
    names = [name for name, _ in convs(model)]
    # the stem (its ConvModules used to re-init themselves after the cfg), the blocks, SE, MTSPPF
    assert any(n.startswith('stem.') for n in names) and any(n.startswith('stage4.') for n in names)
    if model.arch_setting['use_se']:
        assert any('.se.' in n for n in names)
    for name, conv in convs(model):
        assert torch.equal(conv.weight, torch.zeros_like(conv.weight)), name
        if conv.bias is not None:
            assert torch.equal(conv.bias, torch.zeros_like(conv.bias)), name


@pytest.mark.parametrize('kwargs', [dict(), dict(add_ppf=True)])
def test_default_init_is_kaiming_normal_in_every_block(generator, kwargs):
    model = scramble_(RepVGG('A0', **kwargs), generator)
    model.init_weights()
    assert_kaiming_normal(model)
    assert_unit_norms(model)  # reset from the random values, stage blocks included
    # the stages are mmengine Sequentials (what lets init_weights reach them); keys unchanged
    assert all(isinstance(getattr(model, name), Sequential) for name in model.stage_names)
    assert 'stage1.0.branch_3x3.conv.weight' in model.state_dict()
    assert 'stage3.13.branch_identity.running_var' in model.state_dict()


def test_default_init_of_fused_convs_and_se(generator):
    model = RepVGG('A0', deploy=True)
    model.init_weights()
    assert all(b.deploy for b in model.modules() if isinstance(b, RepVGGBlock))
    assert_kaiming_normal(model)  # branch_fused: Kaiming weight, zero bias
    block = scramble_(RepVGGBlock(64, 64, use_se=True, se_ratio=4), generator)
    block.init_weights()
    assert {n for n, _ in convs(block)} >= {'se.down.conv', 'se.up.conv'}
    assert_kaiming_normal(block)
    assert_unit_norms(block)


def test_standalone_block_applies_its_init_cfg_last():
    block = RepVGGBlock(16, 16, use_se=True, init_cfg=[
        ZERO_CONVS, dict(type='Constant', val=2., bias=0.5, layer='_BatchNorm')])
    block.init_weights()
    assert len(convs(block)) == 4  # 3x3, 1x1, SE down and up
    for name, conv in convs(block):
        assert not conv.weight.any(), name
    norms = [m for m in block.modules() if isinstance(m, _BatchNorm)]
    assert len(norms) == 3
    for norm in norms:  # ConvModule's own BN init (weight 1) came first
        assert torch.equal(norm.weight, torch.full_like(norm.weight, 2.))
        assert torch.equal(norm.bias, torch.full_like(norm.bias, 0.5))


def test_backbone_init_cfg_with_override_and_kaiming():
    model = RepVGG(TINY_ARCHS['plain'], init_cfg=dict(
        type='Kaiming', layer='Conv2d', override=dict(type='Constant', val=0., name='stem')))
    model.init_weights()
    assert not any(p.any() for p in model.stem.parameters() if p.dim() > 1)
    assert model.stage1[0].branch_3x3.conv.weight.abs().sum() > 0
