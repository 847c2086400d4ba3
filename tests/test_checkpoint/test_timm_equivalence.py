"""Real timm models (timm 1.0's byobnet RepVGG) load into ours and compute the same outputs."""
import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
from timm.utils import reparameterize_model

from repvgg_mm.arch_settings import BASE_WIDTHS
from repvgg_mm.checkpoint import convert_state_dict, export_state_dict
from repvgg_mm.conversion.arch_matching import infer_arch
from repvgg_mm.models import ARCH_NAMES, RepVGG
from repvgg_mm.utils.compare import max_relative_error
from tests.helpers import NUM_CLASSES, TINY_ARCHS, classifier_state, logits, randomize_

TOLERANCE = 1e-5


def timm_tiny(name):
    """timm's ByobNet RepVGG with the structure of ``TINY_ARCHS[name]`` (as timm's repvgg cfgs)."""
    arch = TINY_ARCHS[name]
    groups = set((arch.get('group_layer_map') or {0: 0}).values()).pop()

    def group_size(channels, block_index):  # timm: groups = in_channels // group_size
        return channels // groups if groups and (block_index + 1) % 2 == 0 else 0

    blocks = tuple(ByoBlockCfg(type='rep', d=d, c=int(c * w), gs=group_size)
                   for d, c, w in zip(arch['num_blocks'], BASE_WIDTHS, arch['width_factor']))
    se = dict(attn_layer='se', attn_kwargs=dict(rd_ratio=1 / 16, rd_divisor=1)) \
        if arch.get('use_se') else {}
    return ByobNet(ByoModelCfg(blocks=blocks, stem_type='rep', stem_chs=16, **se),
                   num_classes=NUM_CLASSES)


def load_ours(arch, path, deploy=False):
    model = RepVGG(arch, deploy=deploy,
                   init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    return model.eval()


def assert_same_as_timm(timm_model, ours, file_state, images):
    with torch.no_grad():
        features, expected = timm_model.forward_features(images), timm_model(images)
    assert max_relative_error(features, ours(images)[-1]) < TOLERANCE
    head, layout = convert_state_dict(file_state, target='classifier')
    assert layout == 'timm'
    got = logits(ours, head['head.fc.weight'], head['head.fc.bias'], images)
    assert max_relative_error(expected, got) < TOLERANCE


@pytest.mark.parametrize('name', ['plain', 'grouped', 'se'])
def test_timm_models_train_and_fused(tmp_path, generator, images, name):
    timm_model = randomize_(timm_tiny(name), generator)
    state = timm_model.state_dict()
    torch.save(state, tmp_path / 'timm.pth')
    assert_same_as_timm(timm_model, load_ours(TINY_ARCHS[name], tmp_path / 'timm.pth'), state,
                        images)

    fused = reparameterize_model(timm_model)
    state = {k: v.contiguous() for k, v in fused.state_dict().items()}
    save_file(state, str(tmp_path / 'model.safetensors'))  # timm's hub format
    ours = load_ours(TINY_ARCHS[name], tmp_path / 'model.safetensors', deploy=True)
    assert_same_as_timm(fused, ours, state, images)


@pytest.mark.parametrize('name', ['grouped', 'se'])
def test_our_weights_load_into_timm(random_classifier, images, name):
    backbone, head = random_classifier(name)
    timm_model = timm_tiny(name).eval()
    timm_model.load_state_dict(export_state_dict(classifier_state(backbone, head), 'timm',
                                                 'classifier'), strict=True)
    with torch.no_grad():
        assert max_relative_error(logits(backbone, head.weight, head.bias, images),
                                  timm_model(images)) < TOLERANCE


def test_timm_repvgg_a0(tmp_path, generator, images):
    timm_model = randomize_(timm.create_model('repvgg_a0', pretrained=False), generator)
    state = timm_model.state_dict()
    torch.save(state, tmp_path / 'repvgg_a0.pth')
    assert_same_as_timm(timm_model, load_ours('A0', tmp_path / 'repvgg_a0.pth'), state, images)


@pytest.mark.parametrize('timm_name', timm.list_models('repvgg_*'))
def test_every_timm_repvgg_arch_has_our_keys_and_shapes(timm_name):
    """Shapes only (meta device): all of timm's RepVGG archs map onto our arch of the same name."""
    with torch.device('meta'):
        state = timm.create_model(timm_name, pretrained=False).state_dict()
    converted, layout = convert_state_dict(state, target='classifier')
    arch = infer_arch({k[len('backbone.'):]: v for k, v in converted.items()
                       if k.startswith('backbone.')})
    assert (layout, arch) == ('timm',
                              {a.lower(): a for a in ARCH_NAMES}[timm_name[len('repvgg_'):]])
