"""QARepVGG: its own training-time structure, exact fusion (float64, random BN statistics) into the
very deploy layout of RepVGG, online fusion, and configs."""
import copy
from pathlib import Path

import pytest
import torch

from repvgg_mm.models import QARepVGGBlock, RepVGG, RepVGGBlock
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.config import build_model, load_config
from tests.helpers import BLOCK_KINDS, TINY_ARCHS, outputs_rel_error

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


def test_training_time_structure():
    block = QARepVGGBlock(8, 8)
    assert block.branch_1x1.norm is None and block.branch_1x1.conv.bias is None
    assert block.branch_3x3.norm is not None and isinstance(block.post_norm, torch.nn.BatchNorm2d)
    assert not hasattr(block, 'branch_identity') and block.has_identity
    assert {k.split('.')[0] for k in block.state_dict()} == {'branch_3x3', 'branch_1x1',
                                                            'post_norm'}
    with pytest.raises(NotImplementedError, match='weight decay'):
        block.get_custom_L2()


@pytest.mark.parametrize('kind', sorted(BLOCK_KINDS))
def test_block_fuses_exactly(kind, generator):
    block = randomize_bn_(QARepVGGBlock(**BLOCK_KINDS[kind]).double(), generator).eval()
    x = torch.randn(2, BLOCK_KINDS[kind]['in_channels'], 9, 11, dtype=torch.float64,
                    generator=generator)
    with torch.no_grad():
        reference = block(x)
        block.switch_to_deploy()
        assert max_relative_error(reference, block(x)) < 1e-12
    assert not hasattr(block, 'post_norm') and block.deploy


@pytest.mark.parametrize('arch', ['A0', 'B1g2', 'D2se', 'grouped-se'])
def test_fused_backbone_is_a_deploy_repvgg(arch, generator):
    arch = TINY_ARCHS.get(arch, arch)
    kwargs = dict(out_indices=(0, 1, 2, 3), strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))
    model = randomize_bn_(RepVGG(arch, block_type='qarepvgg', **kwargs).double(),
                          generator).eval()
    fused = fuse_repvgg_blocks(model)
    plain_deploy = RepVGG(arch, deploy=True, **kwargs).double()
    qa_deploy = RepVGG(arch, deploy=True, block_type='qarepvgg', **kwargs)
    shapes = {k: tuple(v.shape) for k, v in plain_deploy.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in qa_deploy.state_dict().items()}
    plain_deploy.load_state_dict(fused.state_dict(), strict=True)  # no key or shape change
    x = torch.randn(1, 3, 40, 48, dtype=torch.float64, generator=generator)
    assert outputs_rel_error(model, plain_deploy, x) < 1e-10


def test_online_fusion_covers_qarepvgg(generator):
    model = RepVGG(TINY_ARCHS['grouped-se'], block_type='qarepvgg', norm_eval=True,
                   frozen_stages=1)
    model = randomize_bn_(model.double(), generator).train()
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, RepVGGBlock):
            module.online_fusion = 'off'
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=generator)
    outputs = [m(x)[-1] for m in (reference, model)]
    assert max_relative_error(*outputs) < 1e-10
    for out in outputs:
        out.square().sum().backward()
    grads = [{n: p.grad for n, p in m.named_parameters() if p.grad is not None}
             for m in (reference, model)]
    largest = max(g.abs().max() for g in grads[0].values())
    assert set(grads[0]) == set(grads[1]) and len(grads[0]) > 0
    for name, grad in grads[0].items():
        assert ((grads[1][name] - grad).abs().max() / largest).item() < 1e-10, name


def test_unknown_block_type():
    with pytest.raises(ValueError, match='block_type'):
        RepVGG('A0', block_type='mobileone')


@pytest.mark.parametrize('name', ['imagenet/qarepvgg_a0.py', 'imagenet/qarepvgg_a0_deploy.py',
                                  'pspnet_qarepvgg_a0.py'])
def test_configs_build(name):
    cfg = load_config(str(CONFIGS / name))
    cfg.model.backbone.pop('init_cfg', None)
    assert cfg.model.backbone.block_type == 'qarepvgg'
    with torch.device('meta'):
        model = build_model(cfg)
    blocks = [m for m in model.modules() if isinstance(m, RepVGGBlock)]
    assert len(blocks) == 22 and all(isinstance(b, QARepVGGBlock) for b in blocks)
    assert all(b.deploy for b in blocks) == name.endswith('_deploy.py')
    if name.endswith('_deploy.py'):
        plain = load_config(str(CONFIGS / 'imagenet' / 'repvgg_a0_deploy.py'))
        with torch.device('meta'):
            plain_keys = set(build_model(plain).state_dict())
        assert set(model.state_dict()) == plain_keys
