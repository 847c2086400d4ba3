# Mask R-CNN with a RepVGG backbone and FPN, after mmdet's mask-rcnn_r50_fpn: the Faster R-CNN of
# faster_rcnn_repvgg_fpn.py plus a 14x14 RoIAlign and a 4-conv FCN mask head (28x28 masks).
_base_ = ['./faster_rcnn_repvgg_fpn.py']
model = dict(
    type='MaskRCNN',
    data_preprocessor=dict(pad_mask=True),
    roi_head=dict(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=80,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(mask_size=28)),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))
