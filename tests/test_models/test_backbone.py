"""The RepVGG backbone: every arch fuses exactly; channels, strides, frozen stages and norm_eval."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.conversion import check_equivalence
from repvgg_mm.models import (
    ARCH_NAMES,
    ARCH_SETTINGS,
    RepVGG,
    RepVGGBlock,
    SqueezeExcitation,
    arch_channels,
    resolve_arch,
)
from repvgg_mm.models.backbones import MTSPPF
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.compare import max_relative_error
from tests.helpers import outputs_rel_error


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
    model = RepVGG('A0', out_indices=(0, 1, 2, 3), strides=(2, 2, 1, 1),
                   dilations=(1, 1, 2, 4)).eval()
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


def test_frozen_stages_stay_frozen_after_fusing():
    model = RepVGG('A0', frozen_stages=1)
    model.train()
    copied = fuse_repvgg_blocks(model)
    model.switch_to_deploy()  # in place, no train() call afterwards
    for fused in (model, copied):
        frozen = [fused.stem, fused.stage1]
        trainable = [fused.stage2, fused.stage3, fused.stage4]
        assert all(b.deploy for m in frozen + trainable for b in m.modules()
                   if isinstance(b, RepVGGBlock))
        assert not fused.stem.branch_fused.weight.requires_grad
        assert not any(p.requires_grad for m in frozen for p in m.parameters())
        assert all(p.requires_grad for m in trainable for p in m.parameters())
    unfrozen = fuse_repvgg_blocks(RepVGG('A0').train())
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_segmentor_style_pretrained_argument(tmp_path):
    path = str(tmp_path / 'x.pth')
    with pytest.warns(DeprecationWarning, match='pretrained'):
        model = RepVGG(TINY_ARCH, pretrained=path)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    assert RepVGG(TINY_ARCH, pretrained=None).init_cfg is None
    with pytest.raises(ValueError, match='not both'):
        RepVGG(TINY_ARCH, pretrained=path, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(TypeError, match='pretrained'):
        RepVGG(TINY_ARCH, pretrained=dict(checkpoint=path))


# stem / stage channels of the paper's archs (the original repvgg.py), for every existing name
PAPER_CHANNELS = {
    'A0': (48, (48, 96, 192, 1280)), 'A1': (64, (64, 128, 256, 1280)),
    'A2': (64, (96, 192, 384, 1408)), 'B0': (64, (64, 128, 256, 1280)),
    **dict.fromkeys(['B1', 'B1g2', 'B1g4'], (64, (128, 256, 512, 2048))),
    **dict.fromkeys(['B2', 'B2g2', 'B2g4'], (64, (160, 320, 640, 2560))),
    **dict.fromkeys(['B3', 'B3g2', 'B3g4'], (64, (192, 384, 768, 2560))),
    'D2se': (64, (160, 320, 640, 2560)),
}


def test_paper_arch_channels_unchanged_with_sequence_or_int_base():
    assert ARCH_NAMES == tuple(PAPER_CHANNELS)  # yolox-pai-small is named, not a paper arch
    assert set(ARCH_SETTINGS) == set(ARCH_NAMES) | {'yolox-pai-small'}
    for name, channels in PAPER_CHANNELS.items():
        assert arch_channels(name) == channels
        assert arch_channels(name, 64) == channels
        assert arch_channels(name.lower(), (64, 128, 256, 512)) == channels
        assert resolve_arch(resolve_arch(name)) == resolve_arch(name)  # idempotent


def test_integer_base_channels_as_mmpretrain():
    model = RepVGG('A0', base_channels=32, out_indices=(0, 1, 2, 3)).eval()
    assert model.stage_channels == (24, 48, 96, 640)  # int(32 * 2**i * w_i)
    assert model.stem_channels == 24  # min(64, int(32 * 0.75))
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [24, 48, 96, 640]
    assert RepVGG('A0', base_channels=64).stage_channels == PAPER_CHANNELS['A0'][1]
    with pytest.raises(ValueError, match='base_channels'):
        RepVGG('A0', base_channels=(64, 128))


def test_mmpretrain_arch_dict_keys():
    arch = dict(num_blocks=[1, 1, 1, 1], width_factor=[0.25, 0.25, 0.25, 0.25],
                group_layer_map=None, se_cfg=dict(ratio=4, divisor=1), stem_channels=8)
    model = RepVGG(arch)
    assert model.stem_channels == 8 and model.stage_channels == (16, 32, 64, 128)
    blocks = [model.stem] + [b for n in model.stage_names for b in getattr(model, n)]
    assert all(isinstance(b.se, SqueezeExcitation) and b.se_ratio == 4 for b in blocks)
    assert model.stage4[0].se.down.conv.out_channels == 128 // 4
    assert not RepVGG(dict(arch, se_cfg=None)).arch_setting['use_se']
    assert resolve_arch(dict(arch, se_cfg=None, stem_channels=64))['stem_channels'] == 64
    assert RepVGG(dict(arch, se_cfg=None, stem_channels=64)).stem_channels == 16  # capped
    with pytest.raises(ValueError, match='divisor'):
        resolve_arch(dict(arch, se_cfg=dict(ratio=16, divisor=8)))
    with pytest.raises(ValueError, match='not both'):
        resolve_arch(dict(arch, use_se=True))
    with pytest.raises(KeyError):
        resolve_arch(dict(arch, se_cfg=dict(ratio=4, act_cfg=None)))


def test_group_layer_map_beyond_the_blocks_is_an_error():
    arch = dict(num_blocks=[2, 4, 14, 1], width_factor=[0.75, 0.75, 0.75, 2.5])
    assert RepVGG(dict(arch, group_layer_map={21: 2}), out_indices=(3, )).stage4[0].groups == 2
    for bad in ({22: 2}, {0: 2}):
        with pytest.raises(ValueError, match='group_layer_map'):
            RepVGG(dict(arch, group_layer_map=bad))


def test_yolox_pai_small_with_mtsppf(generator):
    model = RepVGG('yolox-pai-small', add_ppf=True, out_indices=(0, 1, 2, 3))
    setting = model.arch_setting
    assert tuple(setting['num_blocks']) == (3, 5, 7, 3) and not setting['use_se']
    assert setting['group_layer_map'] is None
    assert (model.stem_channels, model.stage_channels) == (32, (64, 128, 256, 512))
    assert isinstance(model.ppf, MTSPPF)
    assert (model.ppf.conv1.conv.in_channels, model.ppf.conv1.conv.out_channels) == (512, 256)
    assert (model.ppf.conv2.conv.in_channels, model.ppf.conv2.conv.out_channels) == (1024, 512)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 16, 16), (128, 8, 8), (256, 4, 4),
                                                  (512, 2, 2)]
    model.eval()
    randomize_bn_(model, generator)
    fused = fuse_repvgg_blocks(model)
    assert isinstance(fused.ppf, MTSPPF)  # not a RepVGG block: kept as is
    x = torch.randn(1, 3, 48, 64, generator=generator)
    assert outputs_rel_error(model, fused, x) < 1e-5
    direct = RepVGG('yolox-pai-small', add_ppf=True, out_indices=(0, 1, 2, 3), deploy=True)
    direct.load_state_dict(fused.state_dict(), strict=True)
    assert outputs_rel_error(fused, direct, x) == 0


def test_add_ppf_changes_only_the_last_stage_output(generator):
    with_ppf = RepVGG(TINY_ARCH, out_indices=(2, 3), add_ppf=True).eval()
    plain = RepVGG(TINY_ARCH, out_indices=(2, 3)).eval()
    assert not any(k.startswith('ppf.') for k in plain.state_dict())  # keys unchanged by default
    randomize_bn_(with_ppf, generator)
    plain.load_state_dict({k: v for k, v in with_ppf.state_dict().items()
                           if not k.startswith('ppf.')}, strict=True)
    x = torch.randn(1, 3, 64, 64, generator=generator)
    with torch.no_grad():
        (stage3, stage4), (stage3_ppf, stage4_ppf) = plain(x), with_ppf(x)
        assert max_relative_error(stage3, stage3_ppf) == 0
        assert max_relative_error(with_ppf.ppf(stage4), stage4_ppf) == 0
        assert max_relative_error(stage4, stage4_ppf) > 1e-2


def test_mtsppf_is_three_chained_max_pools(generator):
    block = randomize_bn_(MTSPPF(8, 6), generator).eval()
    assert block.conv1.conv.out_channels == 4 and block.conv2.conv.in_channels == 16
    x = torch.randn(2, 8, 7, 9, generator=generator)
    with torch.no_grad():
        pyramid = [block.conv1(x)]
        for _ in range(3):
            pyramid.append(F.max_pool2d(pyramid[-1], 5, stride=1, padding=2))
        expected = block.conv2(torch.cat(pyramid, 1))
        got = block(x)
    assert got.shape == (2, 6, 7, 9)
    assert max_relative_error(expected, got) == 0
    with pytest.raises(ValueError, match='odd'):
        MTSPPF(8, 8, kernel_size=4)
