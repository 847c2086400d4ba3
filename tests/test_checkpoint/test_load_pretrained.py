"""``init_cfg=dict(type='Pretrained', ...)`` on our backbone with files of every layout."""
import copy
import logging

import pytest
import torch
from mmengine.logging import MMLogger

from repvgg_mm.checkpoint import convert_state_dict, export_state_dict, load_pretrained
from repvgg_mm.models import RepVGG
from repvgg_mm.utils.errors import CheckpointError
from tests.helpers import WRAPPERS, arch_of, classifier_state, logits, outputs_rel_error

LAYOUTS = ('original', 'timm', 'mmpretrain', 'repvgg_mm')


def pretrained(arch, path, deploy=False, prefix='backbone.'):
    model = RepVGG(arch_of(arch), deploy=deploy,
                   init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix=prefix))
    model.init_weights()
    return model.eval()


def save(tmp_path, obj, name='weights.pth'):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize('deploy', [False, True], ids=['train', 'deploy'])
@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('arch', ['plain', 'grouped', 'se'])
def test_round_trip_through_a_file_of_each_layout(tmp_path, random_classifier, images, arch,
                                                  layout, deploy):
    backbone, head = random_classifier(arch, deploy)
    foreign = export_state_dict(classifier_state(backbone, head), layout, target='classifier')
    wrapper = list(WRAPPERS)[(LAYOUTS.index(layout) + deploy) % len(WRAPPERS)]
    path = save(tmp_path, WRAPPERS[wrapper](foreign))

    loaded = pretrained(arch, path, deploy)
    assert outputs_rel_error(backbone, loaded, images) == 0
    converted, detected = convert_state_dict(foreign, target='classifier')
    assert detected == layout
    expected = logits(backbone, head.weight, head.bias, images)
    assert torch.equal(logits(loaded, converted['head.fc.weight'], converted['head.fc.bias'],
                              images), expected)


def test_a0_official_style_file(tmp_path, random_classifier, images):
    """A flat classifier file with no 'backbone.' prefix (as published) loads with the prefix
    set."""
    backbone, head = random_classifier('A0')
    path = save(tmp_path, export_state_dict(classifier_state(backbone, head), 'original',
                                            'classifier'))
    assert outputs_rel_error(backbone, pretrained('A0', path), images) == 0


def test_segmentor_checkpoint_takes_the_prefixed_part(tmp_path, random_classifier, images):
    backbone, head = random_classifier('se')
    state = export_state_dict(classifier_state(backbone, head), 'mmpretrain', 'classifier')
    state['decode_head.conv_seg.weight'] = torch.zeros(3, 8, 1, 1)
    path = save(tmp_path, {'state_dict': state})
    assert outputs_rel_error(backbone, pretrained('se', path), images) == 0
    with pytest.raises(CheckpointError, match='the file: .*decode_head.conv_seg.weight'):
        pretrained('se', path, prefix=None)


def test_safetensors_and_missing_batch_counters(tmp_path, random_classifier, images):
    from safetensors.torch import save_file
    backbone, head = random_classifier('grouped')
    state = export_state_dict(classifier_state(backbone, head), 'timm', 'classifier')
    state = {k: v.contiguous() for k, v in state.items() if not k.endswith('num_batches_tracked')}
    path = tmp_path / 'model.safetensors'
    save_file(state, str(path))
    logger = MMLogger.get_instance('test_checkpoint_counters', log_level=logging.INFO)
    model = RepVGG(arch_of('grouped'))
    messages = []
    logger.info = messages.append
    load_pretrained(model, str(path), prefix='backbone.', logger=logger)
    assert outputs_rel_error(backbone, model, images) == 0
    assert 'timm layout, training-time, classifier head left out' in messages[0]
    assert 'missing BN batch counters set as in the model' in messages[0]


def test_fused_and_training_time_files_need_the_matching_mode(tmp_path, random_classifier):
    fused = save(tmp_path, export_state_dict(
        classifier_state(*random_classifier('plain', deploy=True)), 'original'), 'fused.pth')
    with pytest.raises(CheckpointError, match='fused .*build the backbone with deploy=True'):
        pretrained('plain', fused)
    train = save(tmp_path, export_state_dict(
        classifier_state(*random_classifier('plain')), 'original'), 'train.pth')
    with pytest.raises(CheckpointError, match='training-time .*deploy=False and fuse afterwards'):
        pretrained('plain', train, deploy=True)


def test_missing_keys_are_listed(tmp_path, random_classifier):
    state = export_state_dict(classifier_state(*random_classifier('se')), 'original', 'classifier')
    del state['stage2.1.rbr_identity.running_var'], state['stage0.se.up.bias']
    with pytest.raises(CheckpointError,
                       match=r'original layout.*2 missing: stage2.1.branch_identity'
                             r'.running_var, stem.se.up.conv.bias'):
        pretrained('se', save(tmp_path, state))


def test_unmatched_keys_are_listed(tmp_path, random_classifier):
    state = export_state_dict(classifier_state(*random_classifier('plain')), 'mmpretrain',
                              'classifier')
    state['backbone.stage_1.0.branch_3x3.extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError,
                       match="keys under 'backbone.': 1 of .* mmpretrain RepVGG "
                             r"layout \(the closest\): stage_1.0.branch_3x3.extra"):
        pretrained('plain', save(tmp_path, state))


def test_wrong_arch_is_a_shape_mismatch(tmp_path, random_classifier):
    path = save(tmp_path, export_state_dict(classifier_state(*random_classifier('plain')), 'timm'))
    with pytest.raises(CheckpointError, match='timm layout.*with another shape: stage1'):
        pretrained(dict(arch_of('plain'), width_factor=(0.5, 0.25, 0.25, 0.5)), path)
    with pytest.raises(CheckpointError, match='14 missing: stage2.2.branch_1x1'):
        pretrained(dict(arch_of('plain'), num_blocks=(1, 3, 2, 1)), path)


def test_files_that_are_not_repvgg_checkpoints(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match='notes.pth is not a PyTorch checkpoint'):
        pretrained('plain', text)
    with pytest.raises(CheckpointError, match='is not a checkpoint: it holds a Tensor'):
        pretrained('plain', save(tmp_path, torch.ones(3)))
    resnet = save(tmp_path, {'conv1.weight': torch.ones(1), 'fc.weight': torch.ones(1)})
    with pytest.raises(CheckpointError, match='the file: unknown checkpoint layout'):
        pretrained('plain', resnet)
    with pytest.raises(CheckpointError, match='not found'):
        pretrained('plain', tmp_path / 'missing.pth')


def test_fused_se_file_reproduces_the_training_time_model(tmp_path, random_classifier, images):
    """A fused SE file keeps its SE weights (mmpretrain's fused forward skips them; ours does
    not)."""
    backbone, head = random_classifier('se')
    reference = copy.deepcopy(backbone)
    backbone.switch_to_deploy()
    path = save(tmp_path, {'state_dict': export_state_dict(classifier_state(backbone, head),
                                                           'mmpretrain', 'classifier')})
    assert outputs_rel_error(reference, pretrained('se', path, deploy=True), images) < 1e-5


def test_mmseg_config_points_at_an_original_file(tmp_path, random_classifier, images):
    """A segmentor config names an official-style (original layout, no prefix) file directly."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import repvgg_mm.models  # noqa: F401 (registers repvgg_mm.RepVGG)
    backbone, head = random_classifier('se')
    path = save(tmp_path, export_state_dict(classifier_state(backbone, head), 'original',
                                            'classifier'), 'RepVGG-tiny-train.pth')
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = MODELS.build(dict(
            type='EncoderDecoder',
            backbone=dict(type='repvgg_mm.RepVGG', arch=arch_of('se'),
                          init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                        prefix='backbone.')),
            decode_head=dict(type='FCNHead', in_channels=256, channels=8, num_convs=1,
                             num_classes=3, norm_cfg=dict(type='BN')),
            test_cfg=dict(mode='whole')))
    segmentor.init_weights()
    assert outputs_rel_error(backbone, segmentor.backbone, images) == 0
