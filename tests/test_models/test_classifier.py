"""ImageClassifier and LinearClsHead: forward modes, losses, custom L2 and fusing."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from repvgg_mm.models import ImageClassifier, LinearClsHead, RepVGGBlock, custom_l2
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.compare import max_relative_error

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def build_classifier(num_classes=4, **kwargs):
    init_default_scope('repvgg_mm')
    return ImageClassifier(
        backbone=dict(type='RepVGG', arch=TINY_ARCH),
        head=dict(type='LinearClsHead', num_classes=num_classes),
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=MEAN, std=STD), **kwargs)


def samples(labels):
    return [BaseDataElement(gt_label=torch.tensor(label)) for label in labels]


def test_forward_modes():
    model = build_classifier()
    assert model.head.fc.in_features == model.backbone.out_channels[-1] == 256
    inputs = torch.randn(3, 3, 32, 48)
    logits = model(inputs, mode='tensor')
    assert logits.shape == (3, 4)

    losses = model(inputs, samples([0, 1, 3]), mode='loss')
    assert set(losses) == {'loss_cls'} and losses['loss_cls'].requires_grad

    model.eval()
    preds = model(inputs, samples([0, 1, 3]), mode='predict')
    assert len(preds) == 3
    for pred, row in zip(preds, F.softmax(model(inputs), dim=1)):
        assert torch.allclose(pred.pred_score, row, atol=1e-6)
        assert pred.pred_label == row.argmax() and 'gt_label' in pred
    assert len(model(inputs, mode='predict')) == 3  # without data samples

    with pytest.raises(ValueError, match='mode'):
        model(inputs, mode='features')


def test_train_step_on_uint8_batch():
    """The data preprocessor normalises a uint8 batch as the dataset delivers it."""
    model = build_classifier()
    batch = dict(inputs=torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8),
                 data_samples=samples([1, 2]))
    data = model.data_preprocessor(batch, training=True)
    expected = (batch['inputs'].float() - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD).view(1, 3, 1, 1)
    assert torch.allclose(data['inputs'], expected)
    assert 'loss_cls' in model(**data, mode='loss')


def test_head_in_channels_checked():
    init_default_scope('repvgg_mm')
    with pytest.raises(ValueError, match='in_channels'):
        ImageClassifier(backbone=dict(type='RepVGG', arch=TINY_ARCH),
                        head=dict(type='LinearClsHead', num_classes=3, in_channels=64))


@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_loss_with_label_smoothing(smoothing):
    head = LinearClsHead(num_classes=5, in_channels=8, label_smoothing=smoothing, loss_weight=2.0)
    feats, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    log_p = F.log_softmax(head(feats), dim=1)
    nll = -log_p.gather(1, labels[:, None]).squeeze(1)
    expected = 2.0 * ((1 - smoothing) * nll - smoothing * log_p.mean(dim=1)).mean()
    loss = head.loss(feats, samples(labels.tolist()))['loss_cls']
    assert torch.allclose(loss, expected, atol=1e-6)


def test_head_arguments_checked():
    with pytest.raises(ValueError, match='label_smoothing'):
        LinearClsHead(num_classes=5, in_channels=8, label_smoothing=1.0)
    head = LinearClsHead(num_classes=5, in_channels=8)
    with pytest.raises(ValueError, match='gt_label'):
        head.loss(torch.randn(1, 8), [BaseDataElement()])


def test_custom_l2_loss_term():
    model = build_classifier(custom_l2_decay=1e-4)
    blocks = [m for m in model.backbone.modules() if isinstance(m, RepVGGBlock)]
    losses = model(torch.randn(2, 3, 32, 32), samples([0, 1]), mode='loss')
    # after the forward: the L2 reads the BN running variances that the forward just updated
    expected = 0.5 * 1e-4 * sum(b.get_custom_L2() for b in blocks)
    assert torch.allclose(losses['loss_custom_l2'], expected)
    losses['loss_custom_l2'].backward()
    assert blocks[0].branch_3x3.conv.weight.grad is not None
    with pytest.raises(ValueError, match='RepVGG blocks'):
        custom_l2(torch.nn.Linear(2, 2))


def test_fused_classifier_predicts_the_same(generator):
    model = randomize_bn_(build_classifier(num_classes=10), generator).eval()
    fused = fuse_repvgg_blocks(model)
    inputs = torch.randn(8, 3, 40, 40, generator=generator)
    with torch.no_grad():
        ref, out = model(inputs), fused(inputs)
    assert max_relative_error(ref, out) < 1e-5
    assert torch.equal(ref.argmax(1), out.argmax(1))
    assert all(b.deploy for b in fused.modules() if isinstance(b, RepVGGBlock))
