# RepVGG image classifier: backbone -> global average pooling -> linear head (ImageNet-1k).
model = dict(
    type='ImageClassifier',
    # ImageNet mean/std in 0-255 RGB, i.e. torchvision's Normalize(mean=[0.485, 0.456, 0.406],
    # std=[0.229, 0.224, 0.225]) after ToTensor; the datasets deliver uint8 RGB tensors.
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
    backbone=dict(type='RepVGG', arch='A0', out_indices=(3, )),
    # in_channels follows the backbone's last stage (1280 for A0, 2560 for B2 ...)
    head=dict(type='LinearClsHead', num_classes=1000, label_smoothing=0.0),
    # > 0: add the paper's custom L2 (0.5 * decay * sum of RepVGGBlock.get_custom_L2) to the loss
    custom_l2_decay=0.0)
