"""The model-zoo library: what a config's row says without building it (task, head, arch, dataset,
schedule, test size)."""
import pytest

from repvgg_mm.benchmark.model_zoo import describe, input_size_of
from repvgg_mm.utils.errors import UserError


@pytest.mark.parametrize('config, expected', [
    ('configs/pspnet_repvgg_b2.py',
     ['segmentation', 'PSPHead', 'RepVGG-B2', 'Cityscapes', '80k iters', '1024x2048']),
    ('configs/upernet_repvgg_b2.py',
     ['segmentation', 'UPerHead', 'RepVGG-B2', 'ADE20K', '160k iters', '512x512']),
    ('configs/pspnet_qarepvgg_a0.py',
     ['segmentation', 'PSPHead', 'QARepVGG-A0', 'Cityscapes', '80k iters', '1024x2048']),
    ('configs/detection/mask_rcnn_repvgg_b1g2_fpn_1x_coco.py',
     ['instance segmentation', 'MaskRCNN', 'RepVGG-B1g2', 'COCO', '12 epochs', '800x1333']),
    ('configs/detection/fcos_repvgg_a0_fpn_1x_coco.py',
     ['detection', 'FCOS', 'RepVGG-A0', 'COCO', '12 epochs', '800x1333']),
    ('configs/imagenet/repvgg_a0.py',
     ['classification', 'LinearClsHead', 'RepVGG-A0', 'ImageNet', '120 epochs', '224x224']),
    ('configs/toy/deeplabv3plus_repvgg_a0_toy.py',
     ['segmentation', 'DepthwiseSeparableASPPHead', 'RepVGG-A0', 'toy (embedded)', '500 iters',
      '96x96']),
])
def test_describe(config, expected, repo_root):
    assert describe(config, str(repo_root)).cells()[1:] == expected


@pytest.mark.parametrize('extra, pipeline, size', [
    (dict(img_scale=(96, 64)), [], (64, 96)),  # mmdet scale: (W, H)
    (dict(crop_size=(32, 64)), [], (32, 64)),  # mmseg crop: (H, W)
    ({}, [dict(type='Resize', scale=(1333, 800), keep_ratio=True)], (800, 1333)),
    ({}, [dict(type='Resize', scale=(2048, 512), keep_ratio=True)], (512, 512)),
    ({}, [dict(type='Resize', size=256), dict(type='CenterCrop', size=224)], (224, 224)),
])
def test_input_size_of(extra, pipeline, size):
    from mmengine.config import Config
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=pipeline)), **extra))
    assert input_size_of(cfg) == size


def test_input_size_unknown_is_refused():
    from mmengine.config import Config
    with pytest.raises(UserError, match='cannot tell the test size'):
        input_size_of(Config(dict(test_dataloader=dict(dataset=dict(pipeline=[])))))
