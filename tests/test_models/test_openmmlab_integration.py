"""The backbone builds through mmseg's and mmdet's registries from plain configs."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from repvgg_mm.models import RepVGG
from repvgg_mm.testing import TINY_ARCH
from tests.helpers import classifier_state, pspnet_cfg, randomize_

BACKBONE = dict(type='repvgg_mm.RepVGG', arch='A0', out_indices=(0, 1, 2, 3))


def test_backbone_in_mmseg_encoder_decoder():
    cfg = Config(dict(
        custom_imports=dict(imports=['repvgg_mm.models'], allow_failed_imports=False),
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True, size=(64, 64)),
            backbone=dict(BACKBONE, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4)),
            decode_head=dict(type='PSPHead', in_channels=1280, in_index=3, channels=32,
                             pool_scales=(1, 2, 3, 6), num_classes=5, norm_cfg=dict(type='BN'),
                             align_corners=False),
            auxiliary_head=dict(type='FCNHead', in_channels=192, in_index=2, channels=16,
                                num_convs=1, num_classes=5, norm_cfg=dict(type='BN'),
                                align_corners=False, loss_decode=dict(
                                    type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
            train_cfg=dict(), test_cfg=dict(mode='whole'))))
    from mmengine.utils import import_modules_from_strings
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    assert isinstance(model.backbone, RepVGG)
    logits = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 5, 8, 8)


def test_backbone_in_mmdet_retinanet():
    cfg = Config(dict(
        custom_imports=dict(imports=['repvgg_mm.models'], allow_failed_imports=False),
        model=dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                                   pad_size_divisor=32),
            backbone=dict(BACKBONE, out_indices=(1, 2, 3), frozen_stages=0, norm_eval=True),
            neck=dict(type='FPN', in_channels=[96, 192, 1280], out_channels=32, start_level=0,
                      add_extra_convs='on_input', num_outs=5),
            bbox_head=dict(
                type='RetinaHead', num_classes=3, in_channels=32, stacked_convs=1, feat_channels=32,
                anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                      scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                      strides=[8, 16, 32, 64, 128]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                                target_stds=[1.0, 1.0, 1.0, 1.0]),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                              loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            train_cfg=None, test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                                          nms=dict(type='nms', iou_threshold=0.5),
                                          max_per_img=10))))
    from mmengine.utils import import_modules_from_strings
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    assert isinstance(model.backbone, RepVGG)
    assert list(model.neck.in_channels) == list(model.backbone.out_channels)
    cls_scores, _ = model(torch.randn(1, 3, 64, 96), mode='tensor')
    assert len(cls_scores) == 5 and cls_scores[0].shape[-2:] == (8, 12)


@pytest.mark.parametrize('layout', ['classifier', 'backbone'])
def test_mmseg_segmentor_level_pretrained(tmp_path, generator, layout):
    """``EncoderDecoder(pretrained=PATH)`` (every mmseg config) reaches our backbone's init_cfg."""
    import mmseg.utils
    from mmseg.registry import MODELS
    mmseg.utils.register_all_modules(init_default_scope=False)
    source = randomize_(RepVGG(TINY_ARCH), generator)
    head = randomize_(torch.nn.Linear(source.stage_channels[-1], 3), generator)
    state = classifier_state(source, head) if layout == 'classifier' else source.state_dict()
    path = str(tmp_path / 'pretrained.pth')
    torch.save(state, path)

    cfg = Config(copy.deepcopy(pspnet_cfg(norm='BN'))).model  # mmseg sets cfg.backbone.pretrained
    cfg.pretrained = path
    with DefaultScope.overwrite_default_scope('mmseg'):
        with pytest.warns(DeprecationWarning, match='pretrained'):
            segmentor = MODELS.build(cfg)
        assert type(segmentor).__name__ == 'EncoderDecoder'
        assert type(segmentor.decode_head).__name__ == 'PSPHead'
        assert segmentor.backbone.init_cfg == dict(type='Pretrained', checkpoint=path)
        segmentor.init_weights()
    loaded = segmentor.backbone.state_dict()
    assert set(loaded) == set(source.state_dict())
    for key, value in source.state_dict().items():
        assert not value.is_floating_point() or torch.isfinite(value).all(), key
        assert torch.equal(loaded[key], value), key
