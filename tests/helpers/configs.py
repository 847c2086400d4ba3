"""Tiny model configs for tests: our classifier, mmseg's PSPNet, mmdet's RetinaNet and Faster R-CNN,
each with a RepVGG backbone of :data:`~repvgg_mm.testing.TINY_ARCH` (as ``mmdet.testing``'s
``get_detector_cfg``, but small enough for a 2-core CPU)."""
from repvgg_mm.testing import TINY_ARCH

from .archs import TINY_ARCHS

IMPORTS = dict(imports=['repvgg_mm.models'], allow_failed_imports=False)
MEAN_STD = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


def classifier_cfg(arch=TINY_ARCHS['grouped-se'], num_classes=5, **backbone):
    return dict(default_scope='repvgg_mm', custom_imports=IMPORTS, model=dict(
        type='ImageClassifier', backbone=dict(type='RepVGG', arch=arch, **backbone),
        head=dict(type='LinearClsHead', num_classes=num_classes)))


def pspnet_cfg(norm='SyncBN', num_classes=4):
    norm_cfg = dict(type=norm, requires_grad=True)
    return dict(default_scope='mmseg', custom_imports=IMPORTS, model=dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', pad_val=0, seg_pad_val=255, **MEAN_STD),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(2, 3),
                      strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4), norm_cfg=norm_cfg),
        decode_head=dict(type='PSPHead', in_channels=256, in_index=1, channels=16,
                         pool_scales=(1, 2, 3, 6), num_classes=num_classes, norm_cfg=norm_cfg,
                         align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False)),
        auxiliary_head=dict(type='FCNHead', in_channels=64, in_index=0, channels=8, num_convs=1,
                            num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole')))


def _det_preprocessor():
    return dict(type='DetDataPreprocessor', pad_size_divisor=32, **MEAN_STD)


def _box_coder(stds=(1.0, 1.0, 1.0, 1.0)):
    return dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=list(stds))


def retinanet_cfg(norm='BN', num_classes=3):
    return dict(default_scope='mmdet', custom_imports=IMPORTS, model=dict(
        type='RetinaNet', data_preprocessor=_det_preprocessor(),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(1, 2, 3),
                      frozen_stages=0, norm_eval=True, norm_cfg=dict(type=norm)),
        neck=dict(type='FPN', in_channels=[32, 64, 256], out_channels=16, start_level=0,
                  add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=num_classes, in_channels=16, stacked_convs=1,
            feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
            bbox_coder=_box_coder(),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
            loss_bbox=dict(type='L1Loss')),
        test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=20)))


def faster_rcnn_cfg(norm='SyncBN', num_classes=3):
    return dict(default_scope='mmdet', custom_imports=IMPORTS, model=dict(
        type='FasterRCNN', data_preprocessor=_det_preprocessor(),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(0, 1, 2, 3),
                      frozen_stages=1, norm_eval=True, norm_cfg=dict(type=norm)),
        neck=dict(type='FPN', in_channels=[16, 32, 64, 256], out_channels=16, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=16, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=_box_coder(), loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True),
            loss_bbox=dict(type='L1Loss')),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7,
                                                   sampling_ratio=0),
                                    out_channels=16, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(type='Shared2FCBBoxHead', in_channels=16, fc_out_channels=32,
                           roi_feat_size=7, num_classes=num_classes,
                           bbox_coder=_box_coder((0.1, 0.1, 0.2, 0.2)),
                           loss_cls=dict(type='CrossEntropyLoss'), loss_bbox=dict(type='L1Loss'))),
        train_cfg=None,
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=50, nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))))
