# DeepLabV3+ with a dilated RepVGG backbone (output stride 8), after mmseg's deeplabv3plus_r50-d8
# model: ASPP on stage 4, the low-level features (c1) from stage 1.
# Head in_channels follow the arch's stage channels; the top-level configs set arch and channels.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='repvgg_mm.RepVGG',
        arch='B2',
        out_indices=(0, 1, 2, 3),
        # stem /2, stage1 /4, stage2 /8; stages 3-4 keep /8 and dilate instead.
        strides=(2, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        norm_cfg=norm_cfg,
        norm_eval=False),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=2560,  # stage 4 of B2
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        c1_in_channels=160,  # stage 1 of B2
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=640,  # stage 3 of B2
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
