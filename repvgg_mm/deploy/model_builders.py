"""Models the deployment tools measure and export, built with the libraries' own registries.

Dense models start from mmseg's / mmdet's shipped base model configs (``_base_/models/...`` inside
their wheels) with the backbone swapped for ``repvgg_mm.RepVGG``, so they are the architectures
users train with ``tools/train.py`` (SyncBN becomes BN, pretrained links are dropped: nothing
downloads). :func:`build_from_config` builds the model of any project config instead.
"""
import copy
import os
from typing import Optional, Sequence, Union

from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from torch import nn

from repvgg_mm.analysis import LinearClassifierNet
from repvgg_mm.models import RepVGG, arch_channels

ArchSpec = Union[str, dict]


def repvgg_classifier(arch: ArchSpec = 'A0', num_classes: int = 1000) -> nn.Module:
    """Training-time RepVGG + global pooling + linear layer (the network of the paper's table)."""
    return LinearClassifierNet(RepVGG(arch), num_classes)


def torchvision_resnet(depth: int, num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-``depth`` with random weights (nothing downloads)."""
    import torchvision
    builders = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34,
                50: torchvision.models.resnet50, 101: torchvision.models.resnet101}
    if depth not in builders:
        raise KeyError(f'no torchvision ResNet-{depth}; choose one of {sorted(builders)}')
    return builders[depth](weights=None, num_classes=num_classes)


def timm_repvgg(arch: str) -> nn.Module:
    """timm's training-time RepVGG of the same arch (an optional benchmark reference: needs timm)."""
    try:
        import timm
    except ImportError as error:
        raise ImportError('the timm comparison needs timm (pip install timm)') from error
    return timm.create_model(f'repvgg_{arch.lower()}', pretrained=False)


def timm_reparameterize(model: nn.Module) -> nn.Module:
    """timm's own fusion (``timm.utils.reparameterize_model``) of a copy of ``model``."""
    from timm.utils import reparameterize_model
    return reparameterize_model(model.eval(), inplace=False)


def _base_model_config(package: str, relative_path: str) -> dict:
    module = __import__(package)
    path = os.path.join(os.path.dirname(module.__file__), '.mim', 'configs', relative_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{package} does not ship {relative_path} (looked at {path})')
    return Config.fromfile(path).model.to_dict()


def _syncbn_to_bn(cfg):
    """Replace every SyncBN norm config by BN (single-process CPU inference)."""
    if isinstance(cfg, dict):
        return {key: ('BN' if key == 'type' and value == 'SyncBN' else _syncbn_to_bn(value))
                for key, value in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_syncbn_to_bn(item) for item in cfg)
    return cfg


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
    cfg = _drop_pretrained(_syncbn_to_bn(_base_model_config('mmseg',
                                                           '_base_/models/pspnet_r50-d8.py')))
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


def build_in_scope(model_cfg: dict, scope: str) -> nn.Module:
    """Build ``model_cfg`` with the registry of ``scope`` (mmseg, mmdet or repvgg_mm)."""
    import repvgg_mm.models  # noqa: F401  (registers repvgg_mm.RepVGG for the other scopes)
    registries = {'mmseg': 'mmseg.registry', 'mmdet': 'mmdet.registry',
                  'repvgg_mm': 'repvgg_mm.registry'}
    if scope not in registries:
        raise KeyError(f'unknown scope {scope!r}; choose one of {sorted(registries)}')
    if scope == 'mmseg':
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmdet':
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    models = __import__(registries[scope], fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(ConfigDict(copy.deepcopy(model_cfg)))


def build_from_config(config_path: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the ``model`` of a project config (scope from its ``default_scope``)."""
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f'config file not found: {config_path}')
    cfg = Config.fromfile(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'repvgg_mm')
    return build_in_scope(_syncbn_to_bn(cfg.model.to_dict()), scope)
