"""Every classification config loads and builds; A0 runs a forward pass."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from repvgg_mm.models import ARCH_NAMES, RepVGGBlock
from repvgg_mm.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'

ARCHS = [name.lower() for name in ARCH_NAMES]
IMAGENET_CONFIGS = sorted(p.name for p in (CONFIGS / 'imagenet').glob('*.py'))


def test_one_train_and_one_deploy_config_per_arch():
    assert len(ARCHS) == 14
    for arch in ARCHS:
        assert f'repvgg_{arch}.py' in IMAGENET_CONFIGS
        assert f'repvgg_{arch}_deploy.py' in IMAGENET_CONFIGS


@pytest.mark.parametrize('name', IMAGENET_CONFIGS)
def test_imagenet_config_builds(name):
    cfg = Config.fromfile(CONFIGS / 'imagenet' / name)
    assert cfg.default_scope == 'repvgg_mm'
    assert cfg.train_dataloader.dataset.data_root == 'data/imagenet'
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.optim_wrapper.optimizer.lr == 0.1 and cfg.optim_wrapper.optimizer.momentum == 0.9
    init_default_scope('repvgg_mm')
    with torch.device('meta'):  # structure only: no memory, no initialisation cost
        model = MODELS.build(cfg.model)
    block, arch = name[:-len('.py')].split('_')[:2]
    assert model.backbone.arch.lower() == arch and model.backbone.block_type == block
    assert model.head.fc.out_features == 1000
    assert model.backbone.deploy == name.endswith('_deploy.py')


def test_paper_recipe_in_a0():
    cfg = Config.fromfile(CONFIGS / 'imagenet' / 'repvgg_a0.py')
    assert cfg.train_cfg.max_epochs == 120
    assert cfg.param_scheduler.type == 'CosineAnnealingLR'
    assert cfg.param_scheduler.T_max == 120 and cfg.param_scheduler.eta_min == 0
    assert [t.type for t in cfg.train_dataloader.dataset.transforms] == [
        'RandomResizedCrop', 'RandomHorizontalFlip']
    assert [(t.type, t.size) for t in cfg.test_dataloader.dataset.transforms] == [
        ('Resize', 256), ('CenterCrop', 224)]


def test_d2se_recipe():
    cfg = Config.fromfile(CONFIGS / 'imagenet' / 'repvgg_d2se.py')
    assert cfg.train_cfg.max_epochs == 200 and cfg.param_scheduler[-1].end == 200
    assert cfg.test_dataloader.dataset.transforms[-1].size == 320
    assert cfg.model.head.label_smoothing == 0.1


def test_a0_forward_and_fuse_through_config():
    cfg = Config.fromfile(CONFIGS / 'imagenet' / 'repvgg_a0.py')
    init_default_scope('repvgg_mm')
    model = MODELS.build(cfg.model).eval()
    deploy = MODELS.build(Config.fromfile(CONFIGS / 'imagenet' / 'repvgg_a0_deploy.py').model)
    assert all(b.deploy for b in deploy.modules() if isinstance(b, RepVGGBlock))
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 1000)
