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
from repvgg_mm.models.utils import detection_samples

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
    toys = {osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs', 'toy', '*.py'))}
    assert {'deeplabv3plus_repvgg_a0_toy.py', 'upernet_repvgg_a0_toy.py',
            'mask_rcnn_repvgg_a0_toy.py'} <= toys


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
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        results = model(images, detection_samples(images), mode='predict')
    boxes = results[0].pred_instances.bboxes
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and torch.isfinite(boxes).all()


@pytest.mark.parametrize('name, head, output_stride, iters', [
    ('deeplabv3plus_repvgg_b2.py', 'DepthwiseSeparableASPPHead', 8, 80000),
    ('upernet_repvgg_b2.py', 'UPerHead', 32, 160000),
])
def test_deeplabv3plus_and_upernet_configs(name, head, output_stride, iters):
    cfg, model = build_from_config(osp.join(ROOT, 'configs', name))
    backbone = model.backbone
    assert type(model.decode_head).__name__ == head and backbone.arch == 'B2'
    assert backbone.stage_channels == arch_channels('B2')[1]
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.train_cfg.max_iters == iters and cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=cfg.pretrained,
                                               prefix='backbone.')
    in_index = model.decode_head.in_index
    if head == 'UPerHead':  # every stage, at /4, /8, /16, /32
        assert list(in_index) == [0, 1, 2, 3]
        assert list(model.decode_head.in_channels) == list(backbone.out_channels)
        assert backbone.strides == (2, 2, 2, 2) and backbone.dilations == (1, 1, 1, 1)
    else:  # ASPP on the dilated stage 4, low-level features from stage 1
        assert model.decode_head.in_channels == backbone.out_channels[in_index]
        assert model.decode_head.c1_bottleneck.conv.in_channels == backbone.out_channels[0]
        assert backbone.strides == (2, 2, 1, 1) and backbone.dilations == (1, 1, 2, 4)
    aux = model.auxiliary_head
    assert aux.in_channels == backbone.out_channels[aux.in_index]
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
        logits = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert feats[-1].shape[-1] == 64 // output_stride
    assert logits.shape == (1, model.decode_head.num_classes, 16, 16) and torch.isfinite(
        logits).all()


@pytest.mark.parametrize('arch', ['a0', 'b1g2'])
def test_mask_rcnn_and_fcos_configs(arch):
    images = torch.randn(1, 3, 64, 96)
    cfg, mask_rcnn = build_from_config(
        osp.join(ROOT, 'configs', 'detection', f'mask_rcnn_repvgg_{arch}_fpn_1x_coco.py'))
    assert cfg.test_evaluator.metric == ['bbox', 'segm']
    assert any(t.type == 'LoadAnnotations' and t.with_mask for t in cfg.train_pipeline)
    with torch.no_grad():
        result = mask_rcnn(images, detection_samples(images), mode='predict')[0]
    assert result.pred_instances.masks.shape[-2:] == (64, 96)
    cfg, fcos = build_from_config(
        osp.join(ROOT, 'configs', 'detection', f'fcos_repvgg_{arch}_fpn_1x_coco.py'))
    assert fcos.neck.start_level == 1 and cfg.optim_wrapper.clip_grad.max_norm == 35
    assert type(fcos.bbox_head).__name__ == 'FCOSHead'


@pytest.mark.parametrize('name, head, strides', [
    ('deeplabv3plus', 'DepthwiseSeparableASPPHead', (2, 2, 1, 1)),
    ('upernet', 'UPerHead', (2, 2, 2, 2)),
])
def test_toy_deeplabv3plus_and_upernet(name, head, strides):
    cfg, model = build_from_config(osp.join(ROOT, 'configs', 'toy', f'{name}_repvgg_a0_toy.py'))
    backbone, decode = model.backbone, model.decode_head
    assert type(decode).__name__ == head and backbone.arch == 'A0' and backbone.strides == strides
    assert cfg.train_cfg.max_iters == 500 and decode.num_classes == 4
    assert cfg.model.backbone.norm_cfg.type == 'BN' and 'init_cfg' not in cfg.model.backbone
    channels = arch_channels('A0')[1]
    if head == 'UPerHead':
        assert list(decode.in_channels) == list(channels)
    else:
        assert decode.in_channels == channels[3]
        assert decode.c1_bottleneck.conv.in_channels == channels[0]
    assert model.auxiliary_head.in_channels == channels[2]
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 96, 96), mode='tensor')
    assert logits.shape == (1, 4, 24, 24) and torch.isfinite(logits).all()


def test_toy_mask_rcnn():
    cfg, model = build_from_config(osp.join(ROOT, 'configs', 'toy', 'mask_rcnn_repvgg_a0_toy.py'))
    assert type(model).__name__ == 'MaskRCNN' and cfg.test_evaluator.metric == ['bbox', 'segm']
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        assert any(t.type == 'LoadAnnotations' and t.with_mask for t in loader.dataset.pipeline)
    roi = model.roi_head
    assert roi.mask_head.num_classes == roi.bbox_head.num_classes == 3
    assert roi.mask_roi_extractor.out_channels == model.neck.out_channels == 64
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        result = model(images, detection_samples(images), mode='predict')[0]
    masks = result.pred_instances.masks
    assert masks.shape[-2:] == (96, 96) and masks.shape[0] == len(result.pred_instances.scores)


NEW_CONFIGS = ['deeplabv3plus_repvgg_b2.py', 'upernet_repvgg_b2.py',
               *(f'detection/{d}_repvgg_{a}_fpn_1x_coco.py'
                 for d in ('mask_rcnn', 'fcos') for a in ('a0', 'b1g2')),
               *(f'toy/{n}_repvgg_a0_toy.py' for n in ('deeplabv3plus', 'upernet', 'mask_rcnn'))]


@pytest.mark.parametrize('name', NEW_CONFIGS)
def test_missing_data_and_pretrained_checkpoint_are_one_line(name, tmp_path, monkeypatch):
    from repvgg_mm.checkpoint import check_checkpoints
    from repvgg_mm.datasets.checks import check_config_inputs
    from repvgg_mm.utils.errors import MissingInputError
    monkeypatch.chdir(tmp_path)  # no data/ and no checkpoints/ here
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    with pytest.raises(MissingInputError) as info:
        check_config_inputs(cfg)
    message = str(info.value)
    assert '\n' not in message and message.startswith('dataset ')
    assert '--cfg-options train_dataloader.dataset.data_root=DIR' in message
    if 'toy' in name:  # trained from scratch
        check_checkpoints(cfg)
        return
    with pytest.raises(MissingInputError) as info:
        check_checkpoints(cfg)
    message = str(info.value)
    assert '\n' not in message and cfg.pretrained in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in message
