"""Switching the arch by --cfg-options refits the neck/head input channels or says what is wrong."""
import pytest
import torch
from mmengine.config import Config

from repvgg_mm.models import arch_channels, build_analysis_model
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.arch_switch import fit_channels, switch_arch
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.errors import UserError

B1G2 = arch_channels('B1g2')[1]  # 128, 256, 512, 2048


def test_a0_pspnet_becomes_a_b1g2_pspnet_that_runs(repo_root):
    cfg = load_config(str(repo_root / 'configs/pspnet_repvgg_a0.py'),
                      {'model.backbone.arch': 'B1g2', 'model.decode_head.channels': 16,
                       'model.auxiliary_head.channels': 8})
    assert cfg.model.decode_head.in_channels == B1G2[3]
    assert cfg.model.auxiliary_head.in_channels == B1G2[2]
    model = build_analysis_model(cfg, seed=0)
    assert model.backbone.arch == 'B1g2' and model.backbone.stage_channels == B1G2
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 32, 32), mode='tensor')
    assert logits.shape == (1, 19, 32 // 8, 32 // 8) and torch.isfinite(logits).all()


def test_a0_retinanet_becomes_a_b1g2_retinanet_that_runs(repo_root):
    cfg = load_config(str(repo_root / 'configs/detection/retinanet_repvgg_a0_fpn_1x_coco.py'),
                      {'model.backbone.arch': 'B1g2'})
    assert cfg.model.neck.in_channels == list(B1G2[1:])  # out_indices (1, 2, 3)
    model = build_analysis_model(cfg, seed=0)
    with torch.no_grad():
        features = model.extract_feat(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == [256] * 5


@pytest.mark.parametrize('config, fields', [
    ('configs/deeplabv3plus_repvgg_b2.py',
     {'decode_head.in_channels': 1280, 'decode_head.c1_in_channels': 48,
      'auxiliary_head.in_channels': 192}),
    ('configs/upernet_repvgg_b2.py',
     {'decode_head.in_channels': [48, 96, 192, 1280], 'auxiliary_head.in_channels': 192}),
    ('configs/toy/faster_rcnn_repvgg_a0_toy.py', None),  # A0 already: nothing changes
])
def test_every_kind_of_channel_field_follows_the_arch(repo_root, config, fields):
    original = load_config(str(repo_root / config))
    cfg = load_config(str(repo_root / config), {'model.backbone.arch': 'A0'})
    if fields is None:
        assert cfg.model == original.model
        return
    for key, value in fields.items():
        head, field = key.split('.')
        assert cfg.model[head][field] == value, key


def test_channels_the_user_gives_for_the_new_arch_are_kept(repo_root):
    cfg = load_config(str(repo_root / 'configs/pspnet_repvgg_a0.py'),
                      {'model.backbone.arch': 'B1g2', 'model.decode_head.in_channels': B1G2[3]})
    assert (cfg.model.decode_head.in_channels, cfg.model.auxiliary_head.in_channels) == (
        B1G2[3], B1G2[2])


def test_channels_that_fit_neither_arch_are_one_line_naming_the_field(repo_root):
    with pytest.raises(UserError) as info:
        load_config(str(repo_root / 'configs/pspnet_repvgg_a0.py'),
                    {'model.backbone.arch': 'B1g2', 'model.decode_head.in_channels': 7})
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith('model.decode_head.in_channels is 7: it fits neither')
    assert 'A0 [48, 96, 192, 1280]' in message and f'set it to {B1G2[3]}' in message


def test_out_indices_and_dict_archs_refit_too(repo_root):
    cfg = load_config(str(repo_root / 'configs/toy/retinanet_repvgg_a0_toy.py'),
                      {'model.backbone.out_indices': (2, 3)})
    assert cfg.model.neck.in_channels == [192, 1280]
    changes = switch_arch(cfg, dict(TINY_ARCH))
    assert changes == ['model.neck.in_channels [192, 1280] -> [64, 256]']
    assert cfg.model.neck.in_channels == [64, 256]


def test_other_backbones_and_unknown_archs_are_left_to_the_build():
    model = Config(dict(model=dict(backbone=dict(type='ResNetV1c', depth=50),
                                   decode_head=dict(in_channels=2048, in_index=3)))).model
    assert fit_channels(model, dict(type='ResNetV1c', depth=101)) == []
    repvgg = Config(dict(model=dict(backbone=dict(type='repvgg_mm.RepVGG', arch='Z9'),
                                    decode_head=dict(in_channels=1280)))).model
    assert fit_channels(repvgg, dict(type='repvgg_mm.RepVGG', arch='A0')) == []
    assert repvgg.decode_head.in_channels == 1280
