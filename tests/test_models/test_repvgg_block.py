"""RepVGGBlock: the fused block computes what the branches compute, for every kind of branch."""
import copy

import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from torch import nn

from repvgg_mm.models import RepVGGBlock
from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.utils.compare import max_relative_error


def fused_pair(generator, dtype=torch.float32, **kwargs):
    block = RepVGGBlock(**kwargs).to(dtype)
    randomize_bn_(block, generator)
    block.eval()
    fused = copy.deepcopy(block)
    fused.switch_to_deploy()
    return block, fused


@pytest.mark.parametrize('kwargs, has_identity', [
    (dict(in_channels=8, out_channels=8), True),
    (dict(in_channels=8, out_channels=16), False),
    (dict(in_channels=8, out_channels=8, stride=2), False),
    (dict(in_channels=8, out_channels=8, groups=4), True),
    (dict(in_channels=8, out_channels=8, dilation=2), True),
    (dict(in_channels=8, out_channels=16, groups=2, stride=2, dilation=3), False),
    (dict(in_channels=16, out_channels=16, use_se=True), True),
])
def test_fused_block_matches(generator, kwargs, has_identity):
    block, fused = fused_pair(generator, **kwargs)
    assert (block.branch_identity is not None) == has_identity
    x = torch.randn(2, kwargs['in_channels'], 9, 14, generator=generator)
    with torch.no_grad():
        expected, got = block(x), fused(x)
    assert expected.shape == got.shape
    assert max_relative_error(expected, got) < 1e-5
    conv = fused.branch_fused
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == (
        block.branch_3x3.conv.stride, block.branch_3x3.conv.padding,
        block.branch_3x3.conv.dilation, block.branch_3x3.conv.groups)
    assert not hasattr(fused, 'branch_3x3') and not hasattr(fused, 'branch_1x1')
    assert all(p.requires_grad for p in fused.parameters())


def test_one_by_one_branch_has_no_padding():
    block = RepVGGBlock(4, 4, dilation=2)
    assert block.branch_1x1.conv.padding == (0, 0)
    assert block.branch_1x1.conv.stride == block.branch_3x3.conv.stride


def test_se_global_pooling_on_non_square_input(generator):
    block, fused = fused_pair(generator, in_channels=16, out_channels=16, use_se=True)
    x = torch.randn(1, 16, 7, 19, generator=generator)
    with torch.no_grad():
        assert max_relative_error(block(x), fused(x)) < 1e-5
    assert hasattr(fused, 'se') and not isinstance(fused.se, nn.Identity)


def test_fusing_twice_is_a_no_op(generator):
    _, fused = fused_pair(generator, in_channels=8, out_channels=8)
    weight = fused.branch_fused.weight.clone()
    fused.switch_to_deploy()
    assert torch.equal(weight, fused.branch_fused.weight)


def test_float64(generator):
    block, fused = fused_pair(generator, dtype=torch.float64, in_channels=8, out_channels=8,
                              groups=2)
    assert fused.branch_fused.weight.dtype == torch.float64
    x = torch.randn(1, 8, 6, 5, dtype=torch.float64, generator=generator)
    with torch.no_grad():
        assert max_relative_error(block(x), fused(x)) < 1e-12


def test_sync_bn_fuses(generator):
    block = RepVGGBlock(8, 8, norm_cfg=dict(type='SyncBN'))
    assert isinstance(block.branch_identity, nn.SyncBatchNorm)
    randomize_bn_(block, generator).eval()
    fused = copy.deepcopy(block)
    fused.switch_to_deploy()
    # SyncBN needs a process group to run; its eval-mode twin (_BatchNormXd) gives the reference.
    reference = revert_sync_batchnorm(copy.deepcopy(block)).eval()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in reference.modules())
    x = torch.randn(1, 8, 5, 6, generator=generator)
    with torch.no_grad():
        assert max_relative_error(reference(x), fused(x)) < 1e-5


def test_batchnormxd_fuses(generator):
    block = revert_sync_batchnorm(RepVGGBlock(8, 8, norm_cfg=dict(type='SyncBN')))
    assert type(block.branch_identity).__name__ == '_BatchNormXd'
    randomize_bn_(block, generator).eval()
    fused = copy.deepcopy(block)
    fused.switch_to_deploy()
    x = torch.randn(1, 8, 5, 6, generator=generator)
    with torch.no_grad():
        assert max_relative_error(block(x), fused(x)) < 1e-5


def test_padding_must_align_the_branches():
    with pytest.raises(ValueError, match='padding'):
        RepVGGBlock(8, 8, dilation=2, padding=1)


@pytest.mark.parametrize('norm_cfg, name', [(dict(type='GN', num_groups=2), 'GroupNorm'),
                                            (dict(type='LN'), 'LayerNorm')])
def test_group_and_layer_norm_refuse_to_fuse(norm_cfg, name):
    block = RepVGGBlock(4, 4, norm_cfg=norm_cfg)
    with pytest.raises(TypeError, match=f'cannot fuse {name}'):
        block.switch_to_deploy()
    assert not block.deploy and hasattr(block, 'branch_3x3')


def test_equivalent_kernel_is_differentiable(generator):
    block = RepVGGBlock(4, 4, groups=2)
    randomize_bn_(block, generator)
    kernel, bias = block.get_equivalent_kernel_bias()
    (kernel.square().sum() + bias.sum()).backward()
    for param in (block.branch_3x3.conv.weight, block.branch_1x1.conv.weight,
                  block.branch_3x3.norm.weight, block.branch_identity.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_custom_l2_is_differentiable_and_positive():
    block = RepVGGBlock(4, 4)
    loss = block.get_custom_L2()
    loss.backward()
    assert loss.item() > 0 and block.branch_3x3.conv.weight.grad.abs().sum() > 0


def test_deploy_block_loads_fused_state_dict_strictly(generator):
    block, fused = fused_pair(generator, in_channels=8, out_channels=8, use_se=True)
    direct = RepVGGBlock(8, 8, use_se=True, deploy=True)
    direct.load_state_dict(fused.state_dict(), strict=True)
    x = torch.randn(1, 8, 5, 7, generator=generator)
    with torch.no_grad():
        assert torch.equal(direct.eval()(x), fused(x))
    with pytest.raises(RuntimeError):
        direct.load_state_dict(block.state_dict(), strict=True)


def test_with_cp_gives_same_gradients(generator):
    plain = RepVGGBlock(4, 4)
    cp_block = copy.deepcopy(plain)
    cp_block.with_cp = True
    x = torch.randn(2, 4, 6, 6, generator=generator, requires_grad=True)
    plain(x).sum().backward()
    grad = plain.branch_3x3.conv.weight.grad.clone()
    cp_block(x).sum().backward()
    assert torch.allclose(grad, cp_block.branch_3x3.conv.weight.grad, rtol=1e-5, atol=1e-6)


def test_fused_conv_keeps_the_frozen_state_of_the_branches():
    frozen = RepVGGBlock(8, 8, use_se=True).requires_grad_(False)
    frozen.switch_to_deploy()
    assert not frozen.branch_fused.weight.requires_grad
    assert not frozen.branch_fused.bias.requires_grad
    # only the BNs frozen (norm_cfg requires_grad=False): the convs train, so does the fused conv
    partly = RepVGGBlock(8, 8, norm_cfg=dict(type='BN', requires_grad=False))
    assert not partly.branch_identity.weight.requires_grad
    partly.switch_to_deploy()
    assert partly.branch_fused.weight.requires_grad and partly.branch_fused.bias.requires_grad
