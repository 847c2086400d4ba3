"""The shipped toy configs (configs/toy) shrunk to :data:`TINY_ARCH`, written to disk with random
'trained' weights: cases for export, ONNX Runtime and INT8 tests."""
import hashlib
import os

import torch

from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.config import load_config, replace_sync_bn

from .cases import trained_model
from .weights import runner_checkpoint

_TINY = {'_delete_': True, **TINY_ARCH}  # stage channels 16, 32, 64, 256
_NECK = {'model.neck.in_channels': [32, 64, 256], 'model.neck.out_channels': 16}
# --cfg-options that shrink configs/toy/<name>_repvgg_a0_toy.py to the tiny arch
TINY_TOY_OPTIONS = {
    'pspnet': {'model.backbone.arch': _TINY, 'model.decode_head.in_channels': 256,
               'model.decode_head.channels': 16, 'model.auxiliary_head.in_channels': 64,
               'model.auxiliary_head.channels': 8},
    'retinanet': {'model.backbone.arch': _TINY, **_NECK, 'model.bbox_head.in_channels': 16,
                  'model.bbox_head.feat_channels': 16, 'model.bbox_head.stacked_convs': 1},
    'mask_rcnn': {'model.backbone.arch': _TINY, **_NECK, 'model.rpn_head.in_channels': 16,
                  'model.rpn_head.feat_channels': 16,
                  'model.roi_head.bbox_roi_extractor.out_channels': 16,
                  'model.roi_head.bbox_head.in_channels': 16,
                  'model.roi_head.bbox_head.fc_out_channels': 32,
                  'model.roi_head.mask_roi_extractor.out_channels': 16,
                  'model.roi_head.mask_head.in_channels': 16,
                  'model.roi_head.mask_head.conv_out_channels': 16,
                  'model.roi_head.mask_head.num_convs': 1},
}


def file_sha256(path) -> str:
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def toy_data_options(name: str, root: str) -> dict:
    """--cfg-options that point a toy config's train and test data at ``root``."""
    options = {f'{split}_dataloader.dataset.data_root': root for split in ('train', 'test')}
    if name != 'pspnet':
        options['test_evaluator.ann_file'] = os.path.join(root, 'annotations',
                                                          'instances_val.json')
    return options


def write_toy_case(repo_root, tmp, name: str, root: str, **extra):
    """``(config, checkpoint)``: the tiny toy config ``name`` (data under ``root``) and a Runner
    checkpoint of random weights whose ``dataset_meta`` is the config's."""
    cfg = load_config(str(repo_root / f'configs/toy/{name}_repvgg_a0_toy.py'),
                      {**TINY_TOY_OPTIONS[name], **toy_data_options(name, root), **extra})
    cfg.model, _ = replace_sync_bn(cfg.model)
    config, checkpoint = str(tmp / f'{name}.py'), str(tmp / f'{name}.pth')
    cfg.dump(config)
    state = trained_model(cfg.to_dict()).state_dict()
    metainfo = cfg.test_dataloader.dataset.metainfo
    torch.save(dict(runner_checkpoint(state), meta=dict(dataset_meta=dict(
        classes=metainfo.classes, palette=metainfo.palette))), checkpoint)
    return config, checkpoint
