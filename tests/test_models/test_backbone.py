import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.conversion import check_equivalence
from repvgg_mm.models import ARCH_NAMES, RepVGG, RepVGGBlock, arch_channels
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import outputs_rel_error


@pytest.mark.parametrize('arch', ARCH_NAMES)
def test_every_arch_fuses_exactly(arch, generator):
    model = RepVGG(arch, out_indices=(0, 1, 2, 3)).eval()
    randomize_bn_(model, generator)
    fused = fuse_repvgg_blocks(model)
    x = torch.randn(1, 3, 32, 48, generator=generator)
    # Whole-model outputs and every fused block on the very input its training-time twin saw.
    report = check_equivalence(model, fused, x, tolerance=1e-5)
    assert report.ok, report.failure()
    assert len(report.blocks) == sum(model.arch_setting['num_blocks']) + 1
    assert report.worst_block().diff.max_rel < 1e-5
    assert all(b.deploy for b in fused.modules() if isinstance(b, RepVGGBlock))
    assert not any(isinstance(m, _BatchNorm) for m in fused.modules())
    # A model built with deploy=True takes the fused weights strictly and computes the same.
    direct = RepVGG(arch, out_indices=(0, 1, 2, 3), deploy=True)
    direct.load_state_dict(fused.state_dict(), strict=True)
    assert outputs_rel_error(fused, direct, x) == 0


def test_arch_channels_and_out_channels():
    assert arch_channels('A0') == (48, (48, 96, 192, 1280))
    assert arch_channels('b2') == (64, (160, 320, 640, 2560))
    model = RepVGG('A0', out_indices=(1, 3))
    assert model.out_channels == (96, 1280)
    outs = model(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == [96, 1280]
    assert [tuple(o.shape[2:]) for o in outs] == [(8, 12), (2, 3)]


def test_grouped_layers_follow_the_paper():
    model = RepVGG('B1g4')
    blocks = [model.stem] + [b for n in model.stage_names for b in getattr(model, n)]
    groups = [b.groups for b in blocks]
    assert groups[0] == 1 and groups[1] == 1 and groups[2] == 4 and groups[3] == 1
    assert [i for i, g in enumerate(groups) if g == 4] == list(range(2, 27, 2))


def test_custom_arch_dict():
    arch = dict(num_blocks=(1, 1), width_factor=(0.5, 0.5))
    model = RepVGG(arch, out_indices=(0, 1), strides=(2, 2), dilations=(1, 1))
    assert model.stage_channels == (32, 64)
    assert len(model(torch.randn(1, 3, 32, 32))) == 2
    with pytest.raises(KeyError):
        RepVGG(dict(num_blocks=(1, )))
    with pytest.raises(KeyError, match='unknown RepVGG arch'):
        RepVGG('Z9')


def test_output_stride_8_with_dilation(generator):
    model = RepVGG('A0', out_indices=(0, 1, 2, 3), strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4)).eval()
    outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 24), (8, 12), (8, 12), (8, 12)]
    first = model.stage3[0]
    assert first.branch_3x3.conv.dilation == (2, 2) and first.branch_3x3.conv.stride == (1, 1)
    assert model.stage3[1].branch_identity is not None
    randomize_bn_(model, generator)
    fused = fuse_repvgg_blocks(model)
    assert fused.stage4[0].branch_fused.dilation == (4, 4)
    assert outputs_rel_error(model, fused, torch.randn(1, 3, 40, 56, generator=generator)) < 1e-5


@pytest.mark.parametrize('kwargs', [dict(strides=(2, 2)), dict(out_indices=(4, )),
                                    dict(out_indices=()), dict(frozen_stages=5)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RepVGG('A0', **kwargs)


def test_frozen_stages():
    model = RepVGG('A0', frozen_stages=1)
    model.train()
    for module in (model.stem, model.stage1):
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert model.stage2.training and all(p.requires_grad for p in model.stage2.parameters())
    assert all(p.requires_grad for p in RepVGG('A0', frozen_stages=-1).parameters())
    stem_only = RepVGG('A0', frozen_stages=0)
    assert not any(p.requires_grad for p in stem_only.stem.parameters())
    assert all(p.requires_grad for p in stem_only.stage1.parameters())


def test_norm_eval_keeps_statistics():
    model = RepVGG('A0', norm_eval=True, out_indices=(0, ))
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    before = model.stem.branch_3x3.norm.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(before, model.stem.branch_3x3.norm.running_mean)
    assert model.stage1.training


def test_with_cp_matches_plain_gradients():
    plain = RepVGG('A0', out_indices=(1, ))
    checkpointed = RepVGG('A0', out_indices=(1, ), with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    assert all(b.with_cp for b in checkpointed.modules() if isinstance(b, RepVGGBlock))
    x = torch.randn(2, 3, 32, 32)
    plain(x)[0].sum().backward()
    checkpointed(x)[0].sum().backward()
    assert torch.allclose(plain.stem.branch_3x3.conv.weight.grad,
                          checkpointed.stem.branch_3x3.conv.weight.grad, rtol=1e-4, atol=1e-6)


def test_float64_backbone(generator):
    model = RepVGG('A0', out_indices=(2, )).double().eval()
    randomize_bn_(model, generator)
    fused = fuse_repvgg_blocks(model)
    x = torch.randn(1, 3, 32, 40, dtype=torch.float64, generator=generator)
    assert outputs_rel_error(model, fused, x) < 1e-12


def test_backbone_switch_to_deploy_in_place_and_twice(generator):
    model = RepVGG('A0').eval()
    randomize_bn_(model, generator)
    reference = fuse_repvgg_blocks(model)
    model.switch_to_deploy()
    model.switch_to_deploy()
    assert model.deploy
    assert outputs_rel_error(reference, model, torch.randn(1, 3, 32, 32, generator=generator)) == 0
