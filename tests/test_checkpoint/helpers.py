"""Small RepVGGs with random weights, and the ways checkpoint files wrap their weights."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.models.backbones.arch_settings import BASE_WIDTHS  # noqa: F401 (re-exported)
from repvgg_mm.reparam.verify import randomize_bn_

# Stem 16, stages 16/32/64/256 channels; 8 blocks. The grouped layers (even, as in the paper) are
# never the first block of a stage, as in all published archs (timm counts groups differently there).
_TINY = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))
TINY_ARCHS = {
    'plain': dict(_TINY),
    'grouped': dict(_TINY, group_layer_map={2: 2, 4: 2, 6: 2}),
    'se': dict(_TINY, use_se=True),
    'grouped-se': dict(_TINY, group_layer_map={2: 2, 4: 2, 6: 2}, use_se=True),
}
NUM_CLASSES = 10

# How files found in the wild hold their weights.
WRAPPERS = {
    'flat': lambda state: dict(state),
    'ddp': lambda state: {f'module.{k}': v for k, v in state.items()},
    'runner': lambda state: {'meta': {'epoch': 1}, 'state_dict': dict(state)},
    'model+ddp': lambda state: {'model': {f'module.{k}': v for k, v in state.items()}},
}


@torch.no_grad()
def randomize_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Random BN statistics and affine parameters, random conv/linear biases; eval mode."""
    randomize_bn_(model, generator)
    norms = {name for name, module in model.named_modules() if isinstance(module, _BatchNorm)}
    for name, param in model.named_parameters():
        if name.endswith('bias') and name.rsplit('.', 1)[0] not in norms:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def arch_of(arch):
    """A tiny arch by its name in TINY_ARCHS; anything else as is."""
    return TINY_ARCHS.get(arch, arch) if isinstance(arch, str) else arch


def classifier_state(backbone: nn.Module, head: nn.Linear):
    """Our classifier layout: ``backbone.*`` + ``head.fc.*``."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({f'head.fc.{k}': v for k, v in head.state_dict().items()})
    return state


@torch.no_grad()
def logits(backbone: nn.Module, weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor):
    """Global-average-pooled last feature map through a Linear."""
    return nn.functional.linear(backbone.eval()(x)[-1].mean((2, 3)), weight, bias)
