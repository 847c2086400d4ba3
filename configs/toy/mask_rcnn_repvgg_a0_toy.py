# Mask R-CNN + RepVGG-A0 + FPN trained from scratch on the embedded toy dataset with its instance
# masks (python tools/dataset_converters/make_toy_dense.py) in a few minutes on 2 CPU cores, on a
# 12-epoch "1x" schedule; evaluated on boxes and masks (COCO bbox + segm mAP):
#   python tools/train.py configs/toy/mask_rcnn_repvgg_a0_toy.py
# The Faster R-CNN toy recipe plus mmdet's Mask R-CNN mask branch (14x14 RoIAlign, 4-conv FCN
# head, 28x28 masks), narrowed to the toy FPN's 64 channels.
_base_ = './faster_rcnn_repvgg_a0_toy.py'
fpn_channels = 64
model = dict(
    type='MaskRCNN',
    data_preprocessor=dict(pad_mask=True),
    roi_head=dict(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=fpn_channels,
            featmap_strides=[8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            num_classes=3,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(mask_size=28)),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))
img_scale = (96, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
