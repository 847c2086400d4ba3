"""The fused models ``tools/export_onnx.py`` exports: classifier, segmentor, detector backbone+neck.

Each is built in code (our ``ImageClassifier``; mmseg's PSPNet and mmdet's RetinaNet / Faster R-CNN
base models with a RepVGG backbone) or from a config, optionally loaded strictly from a checkpoint
(training-time or fused keys), then fused and wrapped in :class:`ExportAdapter`.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.checkpoint import load_state_dict_strict, read_checkpoint
from repvgg_mm.reparam import fuse_repvgg_blocks
from repvgg_mm.reparam.verify import randomize_bn_
from . import model_builders
from .onnx_export import ExportAdapter

TARGETS = ('classifier', 'segmentor', 'detector')
DEFAULT_SIZES = {'classifier': (224, 224), 'segmentor': (512, 512), 'detector': (320, 320)}
ENTRIES = {'classifier': 'tensor', 'segmentor': 'tensor', 'detector': 'extract_feat'}


@dataclass
class ExportTarget:
    name: str
    model: nn.Module  # fused, eval mode, one tensor in
    input_shape: Tuple[int, int, int]


def classifier_config(arch='A0', num_classes: int = 1000) -> dict:
    return dict(type='ImageClassifier', backbone=dict(type='RepVGG', arch=arch),
                head=dict(type='LinearClsHead', num_classes=num_classes))


def build_unfused(what: str, arch='A0', config: Optional[str] = None,
                  detector: str = 'retinanet') -> Tuple[nn.Module, str]:
    """The model to export and its name, before any weights are loaded."""
    if what not in TARGETS:
        raise KeyError(f'what must be one of {TARGETS}, got {what!r}')
    if config:
        import os
        name = os.path.splitext(os.path.basename(config))[0]
        return model_builders.build_from_config(config), name
    arch_name = arch if isinstance(arch, str) else 'custom'
    if what == 'classifier':
        return (model_builders.build_in_scope(classifier_config(arch), 'repvgg_mm'),
                f'repvgg_{arch_name.lower()}_classifier')
    if what == 'segmentor':
        return (model_builders.build_in_scope(model_builders.pspnet_config('repvgg', arch),
                                              'mmseg'),
                f'pspnet_repvgg_{arch_name.lower()}')
    return (model_builders.build_in_scope(model_builders.detector_config(detector, arch), 'mmdet'),
            f'{detector}_repvgg_{arch_name.lower()}_backbone_neck')


def load_weights(model: nn.Module, checkpoint: str, logger: MMLogger) -> nn.Module:
    """Load ``checkpoint`` strictly; a file with fused keys first turns the model into its fused
    structure so its keys line up."""
    state = read_checkpoint(checkpoint)
    if any('.branch_fused.' in key for key in state):
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
    model, name = build_unfused(what, arch, config, detector)
    if checkpoint:
        model = load_weights(model, checkpoint, logger)
    else:
        randomize_bn_(model, torch.Generator().manual_seed(seed))
    fused = fuse_repvgg_blocks(model.eval()).eval()
    size = tuple(input_size) if input_size else DEFAULT_SIZES[what]
    height, width = (size[0], size[0]) if len(size) == 1 else size
    return ExportTarget(name, ExportAdapter(fused, ENTRIES[what]), (3, height, width))
