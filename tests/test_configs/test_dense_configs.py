"""Every shipped segmentation/detection config builds in mmseg's/mmdet's registries and runs."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from repvgg_mm.models import RepVGG, arch_channels

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'pspnet_*.py'))
                     + glob.glob(osp.join(ROOT, 'configs', 'toy', 'pspnet_*.py')))
DET_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'detection', '*.py'))
                     + glob.glob(osp.join(ROOT, 'configs', 'toy', 'retinanet_*.py'))
                     + glob.glob(osp.join(ROOT, 'configs', 'toy', 'faster_rcnn_*.py')))


def _rel(path):
    return osp.relpath(path, ROOT)


def build_from_config(path):
    """The config's model, built in its codebase's scope without pretrained weights, BN not Sync."""
    cfg = Config.fromfile(path)
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)  # no ImageNet checkpoint here
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return cfg, revert_sync_batchnorm(MODELS.build(model_cfg)).eval()


def test_shipped_configs_are_found():
    names = {_rel(p) for p in SEG_CONFIGS + DET_CONFIGS}
    assert {'configs/pspnet_repvgg_b2.py', 'configs/pspnet_repvgg_a0.py',
            'configs/pspnet_repvgg_b2_ade20k.py', 'configs/toy/pspnet_repvgg_a0_toy.py',
            'configs/detection/retinanet_repvgg_a0_fpn_1x_coco.py',
            'configs/detection/retinanet_repvgg_b1g2_fpn_1x_coco.py',
            'configs/detection/faster_rcnn_repvgg_a0_fpn_1x_coco.py',
            'configs/detection/faster_rcnn_repvgg_b1g2_fpn_1x_coco.py',
            'configs/toy/retinanet_repvgg_a0_toy.py'} <= names


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=_rel)
def test_segmentation_config_builds_and_runs(path):
    cfg, model = build_from_config(path)
    backbone = model.backbone
    assert isinstance(backbone, RepVGG)
    assert backbone.stage_channels == arch_channels(backbone.arch)[1]
    # Output stride 8 through strides/dilations, as in mmseg's -d8 models.
    assert backbone.strides == (2, 2, 1, 1) and backbone.dilations == (1, 1, 2, 4)
    for head in (model.decode_head, model.auxiliary_head):
        assert head.in_channels == backbone.out_channels[head.in_index]
    if 'toy' not in path:
        assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
        assert cfg.model.decode_head.in_index == 3 and cfg.model.auxiliary_head.in_index == 2
        assert cfg.train_cfg.max_iters == 80000 and cfg.optim_wrapper.optimizer.lr == 0.01
        assert cfg.model.backbone.init_cfg == dict(
            type='Pretrained', checkpoint=cfg.pretrained, prefix='backbone.')
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, model.decode_head.num_classes, 8, 8)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize('path', DET_CONFIGS, ids=_rel)
def test_detection_config_builds_and_runs(path):
    cfg, model = build_from_config(path)
    backbone = model.backbone
    assert isinstance(backbone, RepVGG)
    assert backbone.stage_channels == arch_channels(backbone.arch)[1]
    assert list(model.neck.in_channels) == list(backbone.out_channels)
    if 'toy' not in path:
        # as for mmdet's ResNet backbones: stem + stage 1 frozen, BN statistics frozen
        assert backbone.frozen_stages == 1 and backbone.norm_eval
        model.train()
        assert not any(p.requires_grad for p in backbone.stage1.parameters())
        assert not any(m.training for m in backbone.modules()
                       if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
        assert all(p.requires_grad for p in backbone.stage2.parameters())
        model.eval()
        assert cfg.train_cfg.max_epochs == 12
        assert [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0].milestones == [8, 11]
    from mmdet.structures import DetDataSample
    shape = (64, 96)
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         batch_input_shape=shape, scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        results = model(torch.randn(1, 3, *shape), [sample], mode='predict')
    boxes = results[0].pred_instances.bboxes
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and torch.isfinite(boxes).all()
