"""Key maps between our layout and the original / timm / mmpretrain layouts."""
import hashlib

import pytest
import torch

from repvgg_mm.checkpoint import (
    LAYOUTS,
    convert_state_dict,
    detect_layout,
    export_state_dict,
    read_state_dict,
    select_weights,
)
from repvgg_mm.utils.errors import CheckpointError
from tests.helpers import WRAPPERS, classifier_state

FOREIGN = ('original', 'timm', 'mmpretrain')

# Digest (sha256 of the sorted 'key:shape' lines, first 16 hex digits) and size of the state dict
# that the real code gives for TINY_ARCHS['grouped-se'] with a 10-class head, training-time and
# fused:
# DingXiaoH's repvgg.py as packaged in repvgg-pytorch 1.0.1 (RepVGG(..., use_se=True),
# repvgg_model_convert) and mmpretrain 1.2.0 (ImageClassifier with its RepVGG and LinearClsHead,
# backbone.switch_to_deploy()). Computed once with those packages installed aside.
REAL_KEY_DIGESTS = {
    ('original', False): ('92396c97b0f4edb2', 145),
    ('original', True): ('e01423475e62c8ab', 50),
    ('mmpretrain', False): ('de49444f7a1fe5c3', 145),
    ('mmpretrain', True): ('06e9b00ceb9e364d', 50),
}
# A few keys of those same state dicts, spelled out.
REAL_KEYS = {
    ('original', False): ['stage0.rbr_dense.bn.running_var', 'stage0.se.down.weight',
                          'stage1.0.rbr_1x1.conv.weight', 'stage3.1.rbr_identity.weight',
                          'linear.bias'],
    ('original', True): ['stage0.rbr_reparam.weight', 'stage4.0.se.up.bias', 'linear.weight'],
    ('mmpretrain', False): ['backbone.stem.branch_3x3.norm.running_mean',
                            'backbone.stage_2.1.branch_norm.num_batches_tracked',
                            'backbone.stage_4.0.se_layer.conv2.conv.weight', 'head.fc.weight'],
    ('mmpretrain', True): ['backbone.stage_1.0.branch_reparam.bias',
                           'backbone.stem.se_layer.conv1.conv.bias', 'head.fc.bias'],
}


def digest(state):
    lines = '\n'.join(f'{k}:{tuple(v.shape)}' for k, v in sorted(state.items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:16], len(state)


@pytest.mark.parametrize('layout,deploy', sorted(REAL_KEY_DIGESTS))
def test_export_gives_the_real_key_sets(random_classifier, layout, deploy):
    exported = export_state_dict(classifier_state(*random_classifier('grouped-se', deploy)),
                                 layout, target='classifier')
    assert set(REAL_KEYS[layout, deploy]) <= set(exported)
    assert digest(exported) == REAL_KEY_DIGESTS[layout, deploy]


@pytest.mark.parametrize('deploy', [False, True])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_every_layout_is_detected_and_maps_back(random_classifier, layout, deploy):
    ours = classifier_state(*random_classifier('grouped-se', deploy))
    foreign = export_state_dict(ours, layout, target='classifier')
    for wrapper in WRAPPERS.values():
        state = select_weights(wrapper(foreign)).state
        parsed = read_state_dict(state)
        assert (parsed.layout.name, parsed.is_deploy, parsed.has_head) == (layout, deploy, True)
        back, detected = convert_state_dict(state, target='classifier')
        assert detected == layout
        assert list(back) == list(ours)
        assert all(back[k] is ours[k] for k in ours)
    backbone, _ = convert_state_dict(foreign, target='backbone')
    assert list(backbone) == [k[len('backbone.'):] for k in ours if k.startswith('backbone.')]


@pytest.mark.parametrize('layout', FOREIGN)
def test_backbone_only_files(random_classifier, layout):
    ours = classifier_state(*random_classifier('plain'))
    foreign = export_state_dict(ours, layout, target='backbone')
    assert not any(k.startswith(('backbone.', 'head.', 'linear.')) for k in foreign)
    assert detect_layout(foreign) == layout
    with pytest.raises(CheckpointError, match='no complete classifier head'):
        convert_state_dict(foreign, target='classifier')


def test_unmatched_keys_are_listed(random_classifier):
    foreign = export_state_dict(classifier_state(*random_classifier('plain')), 'timm', 'classifier')
    foreign['stages.1.0.conv_kxk.extra.weight'] = torch.zeros(1)
    foreign['final_norm.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r'2 of \d+ keys do not fit the timm RepVGG layout '
                                              r'\(the closest\): final_norm.weight, '
                                              r'stages.1.0.conv_kxk.extra.weight'):
        convert_state_dict(foreign)


def test_unknown_layout_and_wrong_explicit_layout(random_classifier):
    resnet_like = {'conv1.weight': torch.zeros(1), 'layer1.0.bn1.weight': torch.zeros(1)}
    with pytest.raises(CheckpointError, match='unknown checkpoint layout.*conv1.weight'):
        convert_state_dict(resnet_like)
    original = export_state_dict(classifier_state(*random_classifier('plain')), 'original',
                                 'classifier')
    with pytest.raises(CheckpointError, match='no key of the checkpoint fits the mmpretrain'):
        convert_state_dict(original, layout='mmpretrain')
    with pytest.raises(CheckpointError, match='unknown checkpoint layout .*choose one of'):
        convert_state_dict(original, layout='caffe')
    with pytest.raises(CheckpointError, match='no tensors'):
        convert_state_dict({})


def test_prefixed_files_allow_only_head_keys_beside_the_backbone(random_classifier):
    state = classifier_state(*random_classifier('plain'))
    state['decode_head.conv_seg.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='1 of .* keys .*decode_head.conv_seg.weight'):
        convert_state_dict(state)
