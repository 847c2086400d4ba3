"""The fused models ``tools/deployment/export_onnx.py`` exports: classifier, segmentor, detector
backbone+neck.

Each is built from a config (our ``ImageClassifier``; mmseg's PSPNet and mmdet's RetinaNet / Faster
R-CNN base models shipped in their wheels, with a RepVGG backbone; or any project config) by
:func:`~repvgg_mm.models.build_analysis_model`, optionally loaded strictly from a checkpoint
(training-time or fused keys) through the safe reader, then fused and wrapped in
:class:`ExportAdapter`. SyncBN becomes BN and pretrained links are dropped: nothing downloads.
"""
import copy
import os
from dataclasses import dataclass
from importlib import import_module
from typing import Optional, Sequence, Tuple, Union

from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.checkpoint import find_fused_keys, load_state_dict_strict, read_weights
from repvgg_mm.models import arch_channels, build_analysis_model
from repvgg_mm.models.utils import fuse_repvgg_blocks
from repvgg_mm.utils.compare import check_finite
from repvgg_mm.utils.config import load_config, replace_sync_bn

from .onnx_export import ExportAdapter

ArchSpec = Union[str, dict]
EXPORT_TARGETS = ('classifier', 'segmentor', 'detector')
DEFAULT_SIZES = {'classifier': (224, 224), 'segmentor': (512, 512), 'detector': (320, 320)}
ENTRIES = {'classifier': 'tensor', 'segmentor': 'tensor', 'detector': 'extract_feat'}


@dataclass
class ExportTarget:
    name: str
    model: nn.Module  # fused, eval mode, one tensor in
    input_shape: Tuple[int, int, int]


def classifier_config(arch: ArchSpec = 'A0', num_classes: int = 1000) -> dict:
    """Our ImageClassifier with a RepVGG of ``arch``."""
    return dict(type='ImageClassifier', backbone=dict(type='RepVGG', arch=arch),
                head=dict(type='LinearClsHead', num_classes=num_classes))


def _base_model_config(package: str, relative_path: str) -> dict:
    module = import_module(package)
    path = os.path.join(os.path.dirname(module.__file__), '.mim', 'configs', relative_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{package} does not ship {relative_path} (looked at {path})')
    return Config.fromfile(path).model.to_dict()


def _drop_pretrained(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg.pop('pretrained', None)
    cfg['backbone'].pop('init_cfg', None)
    return cfg


def pspnet_config(backbone: str = 'repvgg', arch: ArchSpec = 'A0', num_classes: int = 19,
                  channels: Optional[int] = None, aux_channels: Optional[int] = None,
                  pool_scales: Sequence[int] = (1, 2, 3, 6)) -> dict:
    """mmseg's PSPNet (output stride 8) with a RepVGG (``backbone='repvgg'``) or its ResNet-50-d8.

    RepVGG runs at output stride 8 with ``strides=(2, 2, 1, 1)`` and ``dilations=(1, 1, 2, 4)``;
    the PSP head reads stage 4 and the auxiliary FCN head stage 3, as with the ResNet.
    """
    cfg = _drop_pretrained(replace_sync_bn(_base_model_config('mmseg',
                                                              '_base_/models/pspnet_r50-d8.py'))[0])
    if backbone == 'repvgg':
        _, stage_channels = arch_channels(arch)
        cfg['backbone'] = dict(type='repvgg_mm.RepVGG', arch=arch, out_indices=(2, 3),
                               strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4),
                               norm_cfg=dict(type='BN', requires_grad=True))
        cfg['decode_head'].update(in_channels=stage_channels[3], in_index=1)
        cfg['auxiliary_head'].update(in_channels=stage_channels[2], in_index=0)
    elif backbone != 'r50':
        raise KeyError(f'backbone must be "repvgg" or "r50", got {backbone!r}')
    cfg['decode_head'].update(num_classes=num_classes, pool_scales=tuple(pool_scales))
    cfg['auxiliary_head'].update(num_classes=num_classes)
    if channels is not None:
        cfg['decode_head']['channels'] = channels
    if aux_channels is not None:
        cfg['auxiliary_head']['channels'] = aux_channels
    return cfg


_DETECTOR_BASES = {'retinanet': '_base_/models/retinanet_r50_fpn.py',
                   'faster_rcnn': '_base_/models/faster-rcnn_r50_fpn.py'}


def detector_config(detector: str = 'retinanet', arch: ArchSpec = 'A0', num_classes: int = 80,
                    neck_channels: Optional[int] = None) -> dict:
    """mmdet's RetinaNet or Faster R-CNN (FPN) with a RepVGG backbone feeding all four stages."""
    if detector not in _DETECTOR_BASES:
        raise KeyError(f'detector must be one of {sorted(_DETECTOR_BASES)}, got {detector!r}')
    cfg = _drop_pretrained(_base_model_config('mmdet', _DETECTOR_BASES[detector]))
    _, stage_channels = arch_channels(arch)
    cfg['backbone'] = dict(type='repvgg_mm.RepVGG', arch=arch, out_indices=(0, 1, 2, 3),
                           frozen_stages=0, norm_eval=True)
    cfg['neck']['in_channels'] = list(stage_channels)
    if neck_channels is not None:
        cfg['neck']['out_channels'] = neck_channels
        for head in ('bbox_head', 'rpn_head'):
            if head in cfg:
                cfg[head].update(in_channels=neck_channels, feat_channels=neck_channels)
        if 'roi_head' in cfg:
            cfg['roi_head']['bbox_roi_extractor']['out_channels'] = neck_channels
            cfg['roi_head']['bbox_head']['in_channels'] = neck_channels
    if 'bbox_head' in cfg:
        cfg['bbox_head']['num_classes'] = num_classes
    if 'roi_head' in cfg:
        cfg['roi_head']['bbox_head']['num_classes'] = num_classes
    return cfg


def model_config(model: dict, scope: str) -> Config:
    """A Config of ``model`` (a model config dict) building in ``scope`` (repvgg_mm, mmseg or
    mmdet)."""
    return Config(dict(model=copy.deepcopy(model), default_scope=scope))


def unfused_config(what: str, arch: ArchSpec = 'A0', config: Optional[str] = None,
                   detector: str = 'retinanet') -> Tuple[Config, str]:
    """The config of the model to export and its name."""
    if what not in EXPORT_TARGETS:
        raise KeyError(f'what must be one of {EXPORT_TARGETS}, got {what!r}')
    if config:
        cfg = load_config(config)
        return (model_config(cfg.model.to_dict(), cfg.get('default_scope') or 'repvgg_mm'),
                os.path.splitext(os.path.basename(config))[0])
    arch_name = arch if isinstance(arch, str) else 'custom'
    if what == 'classifier':
        return (model_config(classifier_config(arch), 'repvgg_mm'),
                f'repvgg_{arch_name.lower()}_classifier')
    if what == 'segmentor':
        return (model_config(pspnet_config('repvgg', arch), 'mmseg'),
                f'pspnet_repvgg_{arch_name.lower()}')
    return (model_config(detector_config(detector, arch), 'mmdet'),
            f'{detector}_repvgg_{arch_name.lower()}_backbone_neck')


def load_weights(model: nn.Module, checkpoint: str, logger: MMLogger) -> nn.Module:
    """Load ``checkpoint`` strictly; a file with fused keys first turns the model into its fused
    structure so its keys line up."""
    state = read_weights(checkpoint).state
    if find_fused_keys(state):
        logger.info(f'{checkpoint} holds fused RepVGG weights; fusing the model structure first')
        model = fuse_repvgg_blocks(model, do_copy=False)
    load_state_dict_strict(model, state, checkpoint)
    return model


def build_export_target(what: str, arch='A0', config: Optional[str] = None,
                        checkpoint: Optional[str] = None, detector: str = 'retinanet',
                        input_size: Optional[Sequence[int]] = None, seed: int = 0,
                        logger: Optional[MMLogger] = None) -> ExportTarget:
    """Build, load (or randomise BN statistics), fuse and wrap one export target."""
    logger = logger or MMLogger.get_current_instance()
    cfg, name = unfused_config(what, arch, config, detector)
    if checkpoint:
        model = load_weights(build_analysis_model(cfg), checkpoint, logger)
    else:
        model = build_analysis_model(cfg, seed=seed)
    fused = fuse_repvgg_blocks(model.eval()).eval()
    check_finite(fused.state_dict(), 'the fused model')
    size = tuple(input_size) if input_size else DEFAULT_SIZES[what]
    height, width = (size[0], size[0]) if len(size) == 1 else size
    return ExportTarget(name, ExportAdapter(fused, ENTRIES[what]), (3, height, width))
