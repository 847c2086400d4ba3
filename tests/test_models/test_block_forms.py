"""The linear-scaling block and the fused+BN block: their training-time function (one conv + one BN
in every mode, BN training included), exact fusion (float64, random BN statistics) into the very
deploy layout of RepVGG, online fusion with frozen BN, init."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repvgg_mm.benchmark.memory import SavedTensors, persistent_tensors
from repvgg_mm.models import FusedBNBlock, LinearRepVGGBlock, RepVGG, RepVGGBlock
from repvgg_mm.models.blocks import ChannelScale
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.compare import max_relative_error
from tests.helpers import BLOCK_KINDS, TINY_ARCHS, outputs_rel_error

FORMS = {'linear': LinearRepVGGBlock, 'fused_bn': FusedBNBlock}
DOUBLE = torch.float64


@torch.no_grad()
def randomize_scales_(block, generator):
    """Scales away from their init (1), so that a wrong scale cannot hide."""
    for module in block.modules():
        if isinstance(module, ChannelScale):
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator)
                                .to(module.weight))
    return block


def random_block(form, kind, generator, **extra):
    block = FORMS[form](**BLOCK_KINDS[kind], **extra).to(DOUBLE)
    return randomize_scales_(randomize_bn_(block, generator), generator)


def block_input(kind, generator, requires_grad=False):
    x = torch.randn(2, BLOCK_KINDS[kind]['in_channels'], 9, 11, dtype=DOUBLE,
                    generator=generator)
    return x.requires_grad_(requires_grad)


def reference_pre_se(block, x):
    """The block's definition, branch by branch: BN(s3*conv3x3(x) + s1*conv1x1(x) [+ s_id*x])."""
    geometry = dict(stride=block.stride, groups=block.groups)
    if isinstance(block, FusedBNBlock):
        out = F.conv2d(x, block.conv.weight, padding=block.padding, dilation=block.dilation,
                       **geometry)
    else:
        out = (F.conv2d(x, block.conv_3x3.weight, padding=block.padding,
                        dilation=block.dilation, **geometry) * block.scale_3x3.weight[:, None, None]
               + F.conv2d(x, block.conv_1x1.weight, **geometry)
               * block.scale_1x1.weight[:, None, None])
        if block.scale_identity is not None:
            out = out + x * block.scale_identity.weight[:, None, None]
    norm = block.post_norm
    return F.batch_norm(out, norm.running_mean.clone(), norm.running_var.clone(), norm.weight,
                        norm.bias, norm.training, 0.0, norm.eps)


def reference(block, x):
    return block.act(block.se(reference_pre_se(block, x)))


def branch_conv_calls(block):
    calls = []
    for conv in block.branch_convs():
        if isinstance(block, LinearRepVGGBlock):  # one F.conv2d with the summed kernel
            conv.register_forward_hook(lambda *args: calls.append(1))
    return calls


def grads_of(block, x, out):
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    block.zero_grad(set_to_none=True)
    grad_x = x.grad.clone()
    x.grad = None
    return grads, grad_x


@pytest.mark.parametrize('mode', ['bn-train', 'eval'])
@pytest.mark.parametrize('kind', sorted(BLOCK_KINDS))
@pytest.mark.parametrize('form', sorted(FORMS))
def test_training_time_function_and_gradients(form, kind, mode, generator):
    """One conv + one BN equals the branch-by-branch definition, outputs and gradients."""
    block = random_block(form, kind, generator).train(mode == 'bn-train')
    x = block_input(kind, generator, requires_grad=True)
    calls = branch_conv_calls(block)
    out = block(x)
    assert not calls, 'the branches ran one by one'
    got = grads_of(block, x, out)
    expected_out = reference(block, x)
    expected = grads_of(block, x, expected_out)
    assert max_relative_error(expected_out, out) < 1e-12
    assert set(got[0]) == set(expected[0]) and got[0]
    for name, grad in expected[0].items():
        assert torch.isfinite(got[0][name]).all()
        assert max_relative_error(grad, got[0][name]) < 1e-10, name
    assert max_relative_error(expected[1], got[1]) < 1e-10


@pytest.mark.parametrize('kind', sorted(BLOCK_KINDS))
@pytest.mark.parametrize('form', sorted(FORMS))
def test_block_fuses_exactly(form, kind, generator):
    block = random_block(form, kind, generator).eval()
    x = block_input(kind, generator)
    with torch.no_grad():
        expected = reference(block, x)
        assert max_relative_error(expected, block(x)) < 1e-12
        block.switch_to_deploy()
        assert max_relative_error(expected, block(x)) < 1e-12
    assert block.deploy and set(dict(block.named_children())) <= {'branch_fused', 'se', 'act'}


@pytest.mark.parametrize('kind', ['identity', 'grouped', 'se'])
@pytest.mark.parametrize('form', sorted(FORMS))
def test_frozen_bn_runs_the_folded_conv_with_the_same_gradients(form, kind, generator):
    block = random_block(form, kind, generator).train()
    block.post_norm.eval()  # frozen BN: the BN folds into the conv (online fusion)
    off = copy.deepcopy(block)
    off.online_fusion = 'off'
    x = block_input(kind, generator, requires_grad=True)
    seen = []
    block.post_norm.register_forward_hook(lambda *args: seen.append(1))
    out, expected_out = block(x), off(x)
    assert not seen, 'online fusion did not fold the BN'
    got, expected = grads_of(block, x, out), grads_of(off, x, expected_out)
    assert max_relative_error(expected_out, out) < 1e-12
    largest = max(g.abs().max() for g in expected[0].values())
    for name, grad in expected[0].items():
        assert ((got[0][name] - grad).abs().max() / largest).item() < 1e-10, name
    assert max_relative_error(expected[1], got[1]) < 1e-10


def test_other_conv_types_run_branch_by_branch(generator):
    block = random_block('linear', 'grouped', generator).train()
    x = block_input('grouped', generator)
    expected = block(x)
    plain_type = type(block.conv_3x3)
    for conv in (block.conv_3x3, block.conv_1x1):  # e.g. a conv_cfg layer: not nn.Conv2d itself
        conv.__class__ = type('OtherConv', (plain_type, ), {})
    calls = []
    block.conv_3x3.register_forward_hook(lambda *args: calls.append(1))
    assert max_relative_error(expected, block(x)) < 1e-12 and calls == [1]


def test_structure_and_init():
    block = LinearRepVGGBlock(8, 8, groups=2)
    assert {k.split('.')[0] for k in block.state_dict()} == {
        'conv_3x3', 'conv_1x1', 'scale_3x3', 'scale_1x1', 'scale_identity', 'post_norm'}
    assert block.conv_3x3.bias is None and block.conv_1x1.bias is None
    assert block.conv_1x1.padding == (0, 0) and block.conv_3x3.groups == 2
    assert LinearRepVGGBlock(8, 16).scale_identity is None
    assert LinearRepVGGBlock(8, 8, stride=2).scale_identity is None
    with torch.no_grad():
        for scale in (block.scale_3x3, block.scale_1x1, block.scale_identity):
            assert torch.equal(scale.weight, torch.ones(8))
            scale.weight.mul_(3)
    block.init_weights()  # re-initialising resets the scales (and Kaiming-inits the convs)
    assert all(torch.equal(s.weight, torch.ones(8))
               for s in (block.scale_3x3, block.scale_1x1, block.scale_identity))
    fused_bn = FusedBNBlock(8, 8, dilation=2)
    assert set(fused_bn.state_dict()) == {'conv.weight', *(f'post_norm.{k}' for k in (
        'weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'))}
    assert fused_bn.conv.dilation == (2, 2) and fused_bn.conv.padding == (2, 2)
    for cls in FORMS.values():
        with pytest.raises(NotImplementedError, match='weight decay'):
            cls(4, 4).get_custom_L2()


@pytest.mark.parametrize('form', sorted(FORMS))
@pytest.mark.parametrize('arch', ['grouped-se', 'A0'])
def test_fused_backbone_is_a_deploy_repvgg(form, arch, generator):
    arch = TINY_ARCHS.get(arch, arch)
    kwargs = dict(out_indices=(0, 1, 2, 3), strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))
    model = RepVGG(arch, block_type=form, **kwargs).to(DOUBLE)
    randomize_scales_(randomize_bn_(model, generator), generator).eval()
    assert all(isinstance(m, FORMS[form]) for m in model.modules() if isinstance(m, RepVGGBlock))
    fused = fuse_repvgg_blocks(model)
    plain_deploy = RepVGG(arch, deploy=True, **kwargs).to(DOUBLE)
    plain_deploy.load_state_dict(fused.state_dict(), strict=True)  # same keys and shapes
    x = torch.randn(1, 3, 40, 48, dtype=DOUBLE, generator=generator)
    assert outputs_rel_error(model, plain_deploy, x) < 1e-10


@pytest.mark.parametrize('form', sorted(FORMS))
def test_backbone_with_norm_eval_trains_folded(form, generator):
    model = RepVGG(TINY_ARCHS['grouped-se'], block_type=form, norm_eval=True, frozen_stages=1)
    model = randomize_scales_(randomize_bn_(model.to(DOUBLE), generator), generator).train()
    off = copy.deepcopy(model)
    for module in off.modules():
        if isinstance(module, RepVGGBlock):
            module.online_fusion = 'off'
    x = torch.randn(2, 3, 32, 32, dtype=DOUBLE, generator=generator)
    outputs = [m(x)[-1] for m in (off, model)]
    assert max_relative_error(*outputs) < 1e-10
    for out in outputs:
        out.square().sum().backward()
    grads = [{n: p.grad for n, p in m.named_parameters() if p.grad is not None}
             for m in (off, model)]
    assert set(grads[0]) == set(grads[1]) and grads[0]
    assert not any('stem' in n or 'stage1.' in n for n in grads[0])  # frozen stages stay frozen
    largest = max(g.abs().max() for g in grads[0].values())
    for name, grad in grads[0].items():
        assert ((grads[1][name] - grad).abs().max() / largest).item() < 1e-10, name


def test_unknown_block_type_names_the_choices():
    with pytest.raises(ValueError, match="'fused_bn', 'linear', 'qarepvgg', 'repvgg'"):
        RepVGG('A0', block_type='orepa')


def test_a_repvgg_backbone_converts_nothing():
    assert not RepVGG(TINY_ARCHS['plain']).converts_repvgg_weights
    assert not RepVGG(TINY_ARCHS['plain'], block_type='linear', deploy=True
                      ).converts_repvgg_weights
    with pytest.raises(TypeError, match='as they are'):
        RepVGG(TINY_ARCHS['plain'], block_type='qarepvgg').state_dict_from_repvgg({})
    assert isinstance(FusedBNBlock(4, 4).conv, nn.Conv2d)


def saved_bytes(block, x):
    with SavedTensors(persistent_tensors(block, x)) as saved:
        out = block(x)
    out.sum().backward()
    return saved.nbytes


def test_linear_block_keeps_no_kernel_for_backward(generator):
    """One conv + one BN keeps what the plain conv + BN keeps: the summed kernel is recomputed
    in backward, not stored."""
    x = torch.randn(2, 16, 12, 12, generator=generator)
    linear = LinearRepVGGBlock(16, 16, groups=2).train()
    plain = FusedBNBlock(16, 16, groups=2).train()
    assert saved_bytes(linear, x) == saved_bytes(plain, x) > 0


def test_recomputed_kernel_gradients_partly_frozen_and_checked(generator):
    block = random_block('linear', 'identity', generator).train()
    block.scale_1x1.requires_grad_(False)
    block.conv_3x3.requires_grad_(False)
    x = block_input('identity', generator)  # no input gradient wanted
    trainable = (block.conv_1x1.weight, block.scale_3x3.weight, block.scale_identity.weight)
    got = torch.autograd.grad(block(x).square().sum(), trainable)
    expected = torch.autograd.grad(reference(block, x).square().sum(), trainable)
    for a, b in zip(expected, got):
        assert torch.isfinite(b).all() and max_relative_error(a, b) < 1e-10
    block(x).sum().backward()
    assert block.scale_1x1.weight.grad is None and block.conv_3x3.weight.grad is None
    out = block(x)
    with torch.no_grad():
        block.conv_1x1.weight.add_(1.0)  # an in-place change between forward and backward
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        out.sum().backward()


def test_recomputed_kernel_under_autocast(generator):
    block = LinearRepVGGBlock(8, 8).train()
    x = torch.randn(2, 8, 10, 10, generator=generator, requires_grad=True)
    block(x).square().sum().backward()
    expected = block.conv_3x3.weight.grad.clone()
    block.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = block(x.detach().requires_grad_(True))
    out.float().square().sum().backward()
    grad = block.conv_3x3.weight.grad
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
    assert max_relative_error(expected, grad) < 0.1  # bfloat16 precision
